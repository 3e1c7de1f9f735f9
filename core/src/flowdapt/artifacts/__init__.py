"""Artifacts: persistent, named folders of files on any fsspec filesystem.

Stage code calls :func:`get_artifact`, :func:`new_artifact`, :func:`list_artifacts` (also
importable as ``flowdapt.compute.artifacts``). Defaults come from the settings' ``storage``
section (protocol ``file``, base path the app dir, so files land in ``<app_dir>/artifacts``)
and from the run context (namespace); outside a run the namespace is
``compute.default_namespace``, so these work in tests and notebooks too.
"""

from __future__ import annotations

from typing import Any

from flowdapt.artifacts.handlers import (
    ValueHandler,
    array_from_artifact,
    array_to_artifact,
    dataframe_from_artifact,
    dataframe_to_artifact,
    find_value_type,
    get_handler_func,
    json_from_artifact,
    json_to_artifact,
    load_object,
    load_value,
    pickle_from_artifact,
    pickle_to_artifact,
    register_handler,
    register_value_handler,
    save_object,
    save_value,
    type_path,
)
from flowdapt.artifacts.interface import (
    METADATA_FILENAME,
    Artifact,
    ArtifactFile,
    file_url_path,
    get_filesystem,
)


def storage_defaults(
    namespace: str = "", protocol: str = "", base_path: str = "", *, settings: Any = None, **params: Any
) -> tuple[str, str, str, dict[str, Any]]:
    """Fill in namespace, protocol, base path and filesystem options from the run context and
    the settings (``storage.protocol``, ``storage.base_path``, ``storage.parameters``); the
    process's settings unless ``settings`` is given (the API server passes its own)."""
    from flowdapt.engine.context import current_run_context
    from flowdapt.settings import get_settings

    settings = settings or get_settings()
    if not namespace:
        ctx = current_run_context()
        namespace = ctx.namespace if ctx is not None else settings.compute.default_namespace
    protocol = protocol or settings.storage.protocol or "file"
    if not base_path:
        base_path = settings.storage.base_path
        if not base_path and protocol in ("file", "local"):
            base_path = str(settings.app_dir)
    merged = {**settings.storage.parameters, **params}
    return namespace, protocol, base_path, merged


def get_artifact(
    name: str,
    namespace: str = "",
    protocol: str = "",
    base_path: str = "",
    *,
    create: bool = False,
    **params: Any,
) -> Artifact:
    """An existing artifact (FileNotFoundError if none), or a new one with ``create=True``."""
    namespace, protocol, base_path, params = storage_defaults(namespace, protocol, base_path, **params)
    try:
        return Artifact.get_artifact(name, namespace, protocol, base_path, **params)
    except FileNotFoundError:
        if not create:
            raise
    try:
        return Artifact.new_artifact(name, namespace, protocol, base_path, **params)
    except FileExistsError:  # another process created it in between
        return Artifact.get_artifact(name, namespace, protocol, base_path, **params)


def new_artifact(
    name: str, namespace: str = "", protocol: str = "", base_path: str = "", **params: Any
) -> Artifact:
    """Create an artifact (FileExistsError if it exists)."""
    namespace, protocol, base_path, params = storage_defaults(namespace, protocol, base_path, **params)
    return Artifact.new_artifact(name, namespace, protocol, base_path, **params)


def list_artifacts(
    namespace: str = "", protocol: str = "", base_path: str = "", **params: Any
) -> list[Artifact]:
    """Every artifact of a namespace, sorted by name."""
    namespace, protocol, base_path, params = storage_defaults(namespace, protocol, base_path, **params)
    return Artifact.list_artifacts(namespace, protocol, base_path, **params)


def check_if_artifact_exists(
    name: str, namespace: str = "", protocol: str = "", base_path: str = "", **params: Any
) -> bool:
    namespace, protocol, base_path, params = storage_defaults(namespace, protocol, base_path, **params)
    params.pop("create", None)
    return Artifact.does_exist(name, namespace, protocol, base_path, **params)


__all__ = [
    "METADATA_FILENAME",
    "Artifact",
    "ArtifactFile",
    "array_from_artifact",
    "array_to_artifact",
    "check_if_artifact_exists",
    "dataframe_from_artifact",
    "dataframe_to_artifact",
    "file_url_path",
    "find_value_type",
    "get_artifact",
    "get_filesystem",
    "get_handler_func",
    "json_from_artifact",
    "json_to_artifact",
    "list_artifacts",
    "load_object",
    "load_value",
    "new_artifact",
    "pickle_from_artifact",
    "pickle_to_artifact",
    "register_handler",
    "register_value_handler",
    "ValueHandler",
    "save_object",
    "save_value",
    "storage_defaults",
    "type_path",
]
