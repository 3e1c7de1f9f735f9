"""What a cluster executor ships to remote workers: the driver's own code paths and plugin packages."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path


def worker_sys_path() -> list[str]:
    """The driver's sys.path entries a worker on this machine would miss (not site-packages, not stdlib)."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    keep: list[str] = []
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if (
            "site-packages" in real
            or "dist-packages" in real
            or any(real.startswith(p + os.sep) for p in prefixes)
        ):
            continue
        if real not in keep:
            keep.append(real)
    return keep


def plugin_package_dirs(plugins, skip: set[str], executor: str) -> list[str]:
    """Directories of the loaded plugins' top-level packages, except those in ``skip``: what a
    cluster executor ships to remote workers (``ship_plugins``)."""
    skip = set(skip)
    packages: list[str] = []
    for info in plugins.plugins.values():
        top = info.module.split(".")[0]
        if not info.loaded or top in skip:
            continue
        skip.add(top)
        try:
            module = importlib.import_module(top)
        except Exception as exc:  # removed or broken since it was loaded: nothing to ship
            logging.getLogger(__name__).warning(
                "not shipping plugin package %s to %s workers: %s", top, executor, exc
            )
            continue
        if getattr(module, "__file__", None):
            packages.append(str(Path(module.__file__).parent))
    return packages


def zip_packages(directories: list[str]) -> bytes:
    """A zip of package directories (each at the archive's top level, by its own name), without
    bytecode caches: code an executor ships to remote workers, extracted there onto ``sys.path``."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for directory in sorted(directories):
            root = Path(directory)
            for file in sorted(root.rglob("*")):
                if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                    archive.write(file, Path(root.name) / file.relative_to(root))
    return buffer.getvalue()


def unpack_packages(directory: str, load: Callable[[], bytes]) -> None:
    """The other end of :func:`zip_packages`, on a worker: the zip ``load()`` returns is unpacked
    into ``directory`` (only if it is not there yet: its name carries the content's key) and the
    directory is put first on ``sys.path``. The unpacking is atomic, so workers sharing a disk
    that unpack the same code at once never import a half-written copy."""
    import io
    import shutil
    import zipfile

    if not os.path.isdir(directory):
        partial = f"{directory}.{os.getpid()}"
        with zipfile.ZipFile(io.BytesIO(load())) as archive:
            archive.extractall(partial)
        try:
            os.rename(partial, directory)
        except OSError:  # another worker was first: its copy is the same
            shutil.rmtree(partial, ignore_errors=True)
    if directory in sys.path:
        sys.path.remove(directory)
    sys.path.insert(0, directory)
    importlib.invalidate_caches()
