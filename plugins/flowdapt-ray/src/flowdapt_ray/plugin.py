"""Entry point ``ray`` (group ``flowdapt.plugins``): the Ray executor and Ray cluster memory."""

from __future__ import annotations

from flowdapt.hookspecs import hookimpl


@hookimpl
def flowdapt_register_executors(register):
    from flowdapt_ray.options import RayExecutorOptions

    def factory(options: RayExecutorOptions, settings=None):
        from flowdapt_ray.executor import RayExecutor

        return RayExecutor(options, settings)

    register("ray", factory, RayExecutorOptions)


@hookimpl
def flowdapt_register_cluster_memory(register):
    from flowdapt_ray.cluster_memory import RayClusterMemory, RayClusterMemoryOptions

    def factory(options: RayClusterMemoryOptions, settings=None) -> RayClusterMemory:
        return RayClusterMemory(options)

    register("ray", factory, RayClusterMemoryOptions)
