"""Entry point ``dask`` (group ``flowdapt.plugins``): the Dask executor and Dask cluster memory."""

from __future__ import annotations

from flowdapt.hookspecs import hookimpl


@hookimpl
def flowdapt_register_executors(register):
    from flowdapt_dask.options import DaskExecutorOptions

    def factory(options: DaskExecutorOptions, settings=None):
        from flowdapt_dask.executor import DaskExecutor

        return DaskExecutor(options, settings)

    register("dask", factory, DaskExecutorOptions)


@hookimpl
def flowdapt_register_cluster_memory(register):
    from flowdapt_dask.cluster_memory import DaskClusterMemory, DaskClusterMemoryOptions

    def factory(options: DaskClusterMemoryOptions, settings=None) -> DaskClusterMemory:
        return DaskClusterMemory(options)

    register("dask", factory, DaskClusterMemoryOptions)
