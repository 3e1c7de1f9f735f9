"""Object store: share values between stages and runs, by key, in a namespace.

``put``/``get``/``delete``/``exists``/``keys``/``clear`` work the same inside a stage on every
executor and outside a run (tests, notebooks). Where a value lives is the *strategy*:

- ``cluster_memory``: fast and shared by every worker, bounded (size limit, TTL, LRU eviction),
  not meant to outlive the deployment. Backend from ``cluster_memory.backend`` (``auto``: ``lmdb`` on one
  machine; ``ray``/``dask`` on their clusters; ``memory`` in-process).
- ``artifact``: a file per value under ``storage`` (local disk, S3...): persistent, slower.
- ``fallback`` (the default, ``object_store.default_strategy``): cluster memory first; artifacts
  when cluster memory cannot hold the value (too big, full) or does not have the key (evicted,
  expired, or a fresh deployment). With ``write_through`` (``object_store.write_through`` or per
  call) every put goes to both, so values survive restarts and a get after a restart warms
  cluster memory again.

The namespace defaults to the run's namespace inside a stage, else ``compute.default_namespace``.
A missing key raises :class:`ObjectNotFoundError`, a ``KeyError`` that names key and namespace.
"""

from flowdapt.object_store.artifact_side import artifact_name, default_load_hook, default_save_hook
from flowdapt.object_store.base import ClusterMemory, ClusterMemoryFullError
from flowdapt.object_store.errors import ObjectNotFoundError
from flowdapt.object_store.memory import cluster_memory
from flowdapt.object_store.store import (
    Strategy,
    clear,
    delete,
    exists,
    get,
    keys,
    put,
    reset_cluster_memory,
    resolve_namespace,
    stats,
)

__all__ = [
    "ClusterMemory",
    "ClusterMemoryFullError",
    "ObjectNotFoundError",
    "Strategy",
    "artifact_name",
    "clear",
    "cluster_memory",
    "default_load_hook",
    "default_save_hook",
    "delete",
    "exists",
    "get",
    "keys",
    "put",
    "reset_cluster_memory",
    "resolve_namespace",
    "stats",
]
