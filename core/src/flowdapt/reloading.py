"""Make a process pick up new code: drop imported modules and the targets resolved from them.

Used after a plugin is installed, upgraded or removed, and when the ``user_modules`` of another app
dir take over. Worker processes are replaced by their executor (see ``Executor.reload``); this
module handles the process it runs in.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import sys
from collections.abc import Iterable


def forget_modules(top_level: Iterable[str]) -> list[str]:
    """Remove ``name`` and ``name.*`` from ``sys.modules`` for each top-level name; clear caches.

    The next import reads the files again, and stage targets are resolved again. Returns the
    module names removed. Objects already holding the old modules keep them.
    """
    from flowdapt.engine.worker import clear_caches

    names = {n for n in top_level if n}
    removed = [
        mod for mod in list(sys.modules) if mod in names or any(mod.startswith(n + ".") for n in names)
    ]
    for mod in removed:
        sys.modules.pop(mod, None)
    importlib.invalidate_caches()
    clear_caches()
    return sorted(removed)


def distribution_packages(distribution: str) -> list[str]:
    """Top-level import names a distribution provides (from its metadata; empty if not installed)."""
    try:
        dist = md.distribution(distribution)
    except md.PackageNotFoundError:
        return []
    top = dist.read_text("top_level.txt")
    if top:
        return sorted({line.strip() for line in top.splitlines() if line.strip()})
    names = set()
    for file in dist.files or []:
        parts = file.parts
        if not parts or parts[0].endswith((".dist-info", ".egg-info", ".pth")) or parts[0] in ("..", "bin"):
            continue
        if len(parts) == 1:
            if parts[0].endswith(".py"):
                names.add(parts[0][:-3])
        elif parts[0].isidentifier():
            names.add(parts[0])
    return sorted(names)


__all__ = ["distribution_packages", "forget_modules"]
