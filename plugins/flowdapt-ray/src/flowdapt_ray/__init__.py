"""Flowdapt on Ray: the ``ray`` executor and the ``ray`` cluster memory backend.

Names are imported lazily, so loading the plugin (every ``flowdapt`` command does) stays cheap.
"""

from __future__ import annotations

import os
from typing import Any

# Ray (2.47+) starts workers with the driver's `uv run` command line when it finds one among the
# driver's parent processes, so workers would run in whatever uv project that command names, not in
# the interpreter the server runs in (a plugin installed into the server's environment would then be
# missing on them). Flowdapt manages the workers' environment itself; Ray reads this when `ray` is
# first imported. Set RAY_ENABLE_UV_RUN_RUNTIME_ENV=1 yourself to get Ray's behaviour back.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

_EXPORTS = {
    "RayClusterMemory": "flowdapt_ray.cluster_memory",
    "RayClusterMemoryOptions": "flowdapt_ray.cluster_memory",
    "RayExecutor": "flowdapt_ray.executor",
    "RayExecutorOptions": "flowdapt_ray.options",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
