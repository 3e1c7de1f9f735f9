"""Flowdapt on Ray: the ``ray`` executor and the ``ray`` cluster memory backend.

Names are imported lazily, so loading the plugin (every ``flowdapt`` command does) stays cheap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "RayClusterMemory": "flowdapt_ray.cluster_memory",
    "RayClusterMemoryOptions": "flowdapt_ray.cluster_memory",
    "RayExecutor": "flowdapt_ray.executor",
    "RayExecutorOptions": "flowdapt_ray.executor",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
