"""The cluster-memory contract: fast, ephemeral, shared by every worker of a deployment.

Backends register through ``flowdapt_register_cluster_memory`` (LMDB on one machine, Ray's object
store, Dask). ``tests/conformance/test_cluster_memory.py`` is the contract every backend passes.
Stage code does not use this directly: it calls ``flowdapt.object_store.put/get``.
"""

from __future__ import annotations

import abc
from typing import Any


class ClusterMemoryFullError(MemoryError):
    """The value does not fit (size limit reached even after eviction). The object store's
    ``fallback`` strategy then writes the value to artifacts instead."""


class ClusterMemory(abc.ABC):
    """Synchronous key/value store with namespaces. Missing keys raise ``KeyError``."""

    name: str = "cluster_memory"

    @abc.abstractmethod
    def put(self, key: str, value: Any, *, namespace: str = "default", ttl: float | None = None) -> None: ...

    @abc.abstractmethod
    def get(self, key: str, *, namespace: str = "default") -> Any: ...

    @abc.abstractmethod
    def delete(self, key: str, *, namespace: str = "default") -> bool:
        """True when the key existed."""

    @abc.abstractmethod
    def exists(self, key: str, *, namespace: str = "default") -> bool: ...

    @abc.abstractmethod
    def clear(self, namespace: str | None = None) -> None:
        """Remove every key of a namespace, or of all namespaces when None."""

    @abc.abstractmethod
    def keys(self, namespace: str = "default") -> list[str]: ...

    def stats(self) -> dict[str, Any]:
        """Keys, bytes, evictions...: reported by the API's status."""
        return {}

    def close(self) -> None:
        """Release connections/handles. The backend may be reopened lazily afterwards."""
