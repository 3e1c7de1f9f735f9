"""Flowdapt on Dask: the ``dask`` executor and the ``dask`` cluster memory backend.

Names are imported lazily, so loading the plugin (every ``flowdapt`` command does) stays cheap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "DaskClusterMemory": "flowdapt_dask.cluster_memory",
    "DaskClusterMemoryOptions": "flowdapt_dask.cluster_memory",
    "DaskExecutor": "flowdapt_dask.executor",
    "DaskExecutorOptions": "flowdapt_dask.options",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
