"""The shipped cluster-memory conformance suite (flowdapt.testing.conformance.cluster_memory) on
the built-in in-process memory. LMDB, Ray and Dask run the same suite in their plugins' tests.
"""

from __future__ import annotations

import pytest

from flowdapt.plugins import BUILTIN_PLUGINS
from flowdapt.testing.conformance import Backend
from flowdapt.testing.conformance.cluster_memory import ClusterMemoryConformance


@pytest.fixture(scope="module")
def flowdapt_cluster_memory_backend():
    return Backend("cluster_memory", "memory", plugins=tuple(BUILTIN_PLUGINS))


class TestMemoryClusterMemory(ClusterMemoryConformance):
    pass
