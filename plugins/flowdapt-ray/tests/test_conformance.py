"""The shipped conformance suites (flowdapt.testing.conformance) on this plugin's backends, which
conftest.py picks: the Ray executor on a local instance and, when CI exports
FLOWDAPT_TEST_RAY_ADDRESS, on a separately started cluster; the Ray cluster memory on a shared
cluster with one key prefix per test."""

from __future__ import annotations

from flowdapt.testing.conformance.cluster_memory import ClusterMemoryConformance
from flowdapt.testing.conformance.executors import ExecutorConformance


class TestRayExecutor(ExecutorConformance):
    pass


class TestRayClusterMemory(ClusterMemoryConformance):
    pass
