"""The original's ``flowdapt.compute.executor.ray``: :class:`RayExecutor` (needs ``flowdapt-ray``).

``RayExecutor(cluster_address=None, cpus="auto", gpus=None, resources=None, ...)`` takes the
original's keyword arguments and is our Ray executor with the matching options
(:class:`flowdapt_ray.RayExecutorOptions`). Arguments of the original that have no counterpart
here (its reconnect and actor tuning) are accepted and ignored. Ray is imported when the
executor starts, not when this module is.
"""

from __future__ import annotations

from typing import Any

from flowdapt.compute.executor.base import EnvironmentInfo

try:
    from flowdapt_ray.executor import RayExecutor as _RayExecutor
    from flowdapt_ray.options import RayExecutorOptions
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        f"flowdapt.compute.executor.ray needs the Ray plugin: pip install flowdapt-ray ({exc})"
    ) from exc

__all__ = ["ExecuteStrategy", "RayExecutor"]


class ExecuteStrategy:
    """The original's strategy names (ours always runs each stage as soon as its inputs are ready)."""

    GROUP_BY_GROUP = "group_by_group"
    ALL_AT_ONCE = "all_at_once"


# The original's argument -> our option, where the two differ in name or form.
_RENAMED = {"cluster_address": "address"}
_IGNORED = {
    "container", "cluster_memory_actor", "mapper_actor", "runtime_env_config", "connection_monitor_interval",
    "max_reconnect_retries", "base_reconnect_delay", "max_reconnect_delay", "ping_timeout",
    "ping_failure_threshold",
}


class RayExecutor(_RayExecutor):
    def __init__(self, *, settings: Any = None, **kwargs: Any) -> None:
        options: dict[str, Any] = {}
        for name, value in kwargs.items():
            if name in _IGNORED or value is None or value == "auto":
                continue
            options[_RENAMED.get(name, name)] = value
        super().__init__(RayExecutorOptions(**options), settings)

    def environment_info(self) -> EnvironmentInfo:  # type: ignore[override]
        return EnvironmentInfo(super().environment_info())
