"""The original's ``flowdapt.compute.executor.dask``: :class:`DaskExecutor` (needs ``flowdapt-dask``).

``DaskExecutor(cluster_address=None, cpus="auto", threads="auto", memory="auto", ...)`` takes the
original's keyword arguments and is our Dask executor with the matching options
(:class:`flowdapt_dask.DaskExecutorOptions`). ``scheduler_host``/``scheduler_scheme``,
``dashboard_port`` and ``adaptive`` have no counterpart and are ignored. Dask is imported when
the executor starts, not when this module is.
"""

from __future__ import annotations

from typing import Any

from flowdapt.compute.executor.base import EnvironmentInfo

try:
    from flowdapt_dask.options import DaskExecutorOptions
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        f"flowdapt.compute.executor.dask needs the Dask plugin: pip install flowdapt-dask ({exc})"
    ) from exc

__all__ = ["DaskExecutor"]

_IGNORED = {"scheduler_host", "scheduler_scheme", "dashboard_port", "adaptive"}


def _options(kwargs: dict[str, Any]) -> DaskExecutorOptions:
    options: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name in _IGNORED or value is None or value == "auto":
            continue
        if name == "gpus" and value == "disabled":
            continue
        options[name] = value
    return DaskExecutorOptions(**options)


def __getattr__(name: str) -> Any:
    # The executor class is built on first use: its module imports Dask.
    if name == "DaskExecutor":
        from flowdapt_dask.executor import DaskExecutor as _DaskExecutor

        class DaskExecutor(_DaskExecutor):
            def __init__(self, *, settings: Any = None, **kwargs: Any) -> None:
                super().__init__(_options(kwargs), settings)

            def environment_info(self) -> EnvironmentInfo:  # type: ignore[override]
                return EnvironmentInfo(super().environment_info())

        DaskExecutor.__module__ = __name__
        globals()["DaskExecutor"] = DaskExecutor
        return DaskExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
