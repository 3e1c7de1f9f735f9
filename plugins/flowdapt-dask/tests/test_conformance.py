"""The shipped conformance suites (flowdapt.testing.conformance) on this plugin's backends, which
conftest.py picks: the Dask executor on a LocalCluster and, when CI exports
FLOWDAPT_TEST_DASK_ADDRESS, on a separately started cluster; the Dask cluster memory on a shared
cluster with one key prefix per test."""

from __future__ import annotations

from flowdapt.testing.conformance.cluster_memory import ClusterMemoryConformance
from flowdapt.testing.conformance.executors import ExecutorConformance


class TestDaskExecutor(ExecutorConformance):
    pass


class TestDaskClusterMemory(ClusterMemoryConformance):
    pass
