"""The shipped cluster-memory conformance suite (flowdapt.testing.conformance.cluster_memory) on
LMDB, with no options: the environment is <app_dir>/cluster_memory.lmdb, new for every test."""

from __future__ import annotations

import pytest

from flowdapt.plugins import BUILTIN_PLUGINS
from flowdapt.testing.conformance import Backend
from flowdapt.testing.conformance.cluster_memory import ClusterMemoryConformance


@pytest.fixture(scope="module")
def flowdapt_cluster_memory_backend():
    return Backend("cluster_memory", "lmdb", plugins=(*BUILTIN_PLUGINS, ("lmdb", "flowdapt_lmdb.plugin")))


class TestLMDBClusterMemory(ClusterMemoryConformance):
    pass
