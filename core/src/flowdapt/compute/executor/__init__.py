"""The original's ``flowdapt.compute.executor`` paths: ``.local.LocalExecutor``,
``.ray.RayExecutor``, ``.dask.DaskExecutor``, with the original's constructor arguments.

Each is our executor of that backend; Ray and Dask need the ``flowdapt-ray`` / ``flowdapt-dask``
plugin and are imported only when their module is.
"""

from flowdapt.compute.executor.base import Executor

__all__ = ["Executor"]
