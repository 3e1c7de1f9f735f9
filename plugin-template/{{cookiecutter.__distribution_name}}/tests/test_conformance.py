"""Flowdapt's conformance suites on every backend this plugin registers.

A plugin that registers an executor, a document store or a cluster memory proves it the way the
built-in ones do: each suite below runs on every backend of its kind that this plugin registers,
built through the plugin registry by name. A suite is collected only when the plugin registers a
backend of its kind (this template's stages and workflows register none). The document-store
suite needs ``pytest-asyncio`` and the cluster-memory suite ``numpy`` in the test environment.

Options: a backend is built with the options in ``OPTIONS`` (empty by default). They must give
an *empty, isolated* backend per test; ``{app_dir}`` (the test's fresh app dir) and ``{unique}``
(an id unique to the test) expand per test, e.g.
``OPTIONS = {"mystore": {"dsn": "postgresql://localhost/test", "schema": "t_{unique}"}}``.
The same suites run from the command line against any installed backend:
``pytest --pyargs flowdapt.testing.conformance --flowdapt-store NAME[:key=value,...]``.
"""

from __future__ import annotations

import pytest
from flowdapt.plugins import create_plugin_system
from flowdapt.testing.conformance import Backend
from flowdapt.testing.conformance.cluster_memory import ClusterMemoryConformance
from flowdapt.testing.conformance.document_stores import DocumentStoreConformance
from flowdapt.testing.conformance.executors import ExecutorConformance

PLUGIN = "{{ cookiecutter.__slug }}"

#: Options per registered backend name ({app_dir} and {unique} expand per test).
OPTIONS: dict[str, dict] = {}


def own_backends(kind: str) -> list[Backend]:
    """A Backend for each ``kind`` this plugin registers (built with its ``OPTIONS``)."""
    system = create_plugin_system()
    mine = [name for name in system.names(kind) if system.get(kind, name).plugin == PLUGIN]
    return [Backend(kind, name, OPTIONS.get(name, {}), id=name) for name in mine]


EXECUTORS = own_backends("executors")
STORES = own_backends("document_stores")
CLUSTER_MEMORY = own_backends("cluster_memory")

# Each suite is collected only when this plugin registers a backend of its kind.

if EXECUTORS:

    @pytest.fixture(scope="module", params=EXECUTORS, ids=lambda b: b.test_id)
    def flowdapt_executor_backend(request):
        return request.param

    class TestExecutor(ExecutorConformance):
        pass


if STORES:

    @pytest.fixture(scope="module", params=STORES, ids=lambda b: b.test_id)
    def flowdapt_store_backend(request):
        return request.param

    class TestDocumentStore(DocumentStoreConformance):
        pass


if CLUSTER_MEMORY:

    @pytest.fixture(scope="module", params=CLUSTER_MEMORY, ids=lambda b: b.test_id)
    def flowdapt_cluster_memory_backend(request):
        return request.param

    class TestClusterMemory(ClusterMemoryConformance):
        pass
