"""Conformance suites that ship with Flowdapt: any executor, document store or cluster memory
proves itself against the same contract the built-in ones pass.

- :class:`~flowdapt.testing.conformance.executors.ExecutorConformance`: workflow semantics,
  identical run records to the reference executor (Local, inline);
- :class:`~flowdapt.testing.conformance.document_stores.DocumentStoreConformance`: the
  ``DocumentStore`` contract;
- :class:`~flowdapt.testing.conformance.cluster_memory.ClusterMemoryConformance`: the
  ``ClusterMemory`` contract.

Each suite builds its backend through the plugin registry from a
:class:`~flowdapt.testing.conformance.backends.Backend` (registry name, options, plugins),
which a fixture provides: ``flowdapt_executor_backend``, ``flowdapt_store_backend`` and
``flowdapt_cluster_memory_backend`` (from the ``flowdapt.testing`` pytest plugin). By default
they read the pytest options ``--flowdapt-executor``, ``--flowdapt-store`` and
``--flowdapt-cluster-memory`` (``NAME[:key=value,...]``), so::

    pytest --pyargs flowdapt.testing.conformance --flowdapt-store sqlite
    pytest --pyargs flowdapt.testing.conformance --flowdapt-executor ray:address=127.0.0.1:6379

runs the suites (the ones whose option is not given skip). A plugin's own tests subclass a
suite as ``Test...`` and override the fixture instead; docs/plugins.md shows both.
"""

from flowdapt.testing.conformance.backends import Backend, parse_backend_spec, unique_for

__all__ = ["Backend", "parse_backend_spec", "unique_for"]
