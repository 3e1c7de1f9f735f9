"""Flowdapt on Ray: the ``ray`` executor and the ``ray`` cluster memory backend."""

from flowdapt_ray.cluster_memory import RayClusterMemory, RayClusterMemoryOptions
from flowdapt_ray.executor import RayExecutor, RayExecutorOptions

__all__ = ["RayClusterMemory", "RayClusterMemoryOptions", "RayExecutor", "RayExecutorOptions"]
