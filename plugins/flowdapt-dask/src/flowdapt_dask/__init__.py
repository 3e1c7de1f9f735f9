"""Flowdapt on Dask: the ``dask`` executor and the ``dask`` cluster memory backend."""

from flowdapt_dask.cluster_memory import DaskClusterMemory, DaskClusterMemoryOptions
from flowdapt_dask.executor import DaskExecutor, DaskExecutorOptions

__all__ = ["DaskClusterMemory", "DaskClusterMemoryOptions", "DaskExecutor", "DaskExecutorOptions"]
