"""Make a process pick up new code: drop imported modules and the targets resolved from them.

Used after a plugin is installed, upgraded or removed, and when the ``user_modules`` of another app
dir take over. Worker processes are replaced by their executor (see ``Executor.reload``); this
module handles the process it runs in.
"""

from __future__ import annotations

import importlib.metadata as md

from flowdapt.engine.worker import forget_modules


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
