"""The cluster-memory contract: fast, ephemeral, shared by every worker of a deployment.

Backends register through ``flowdapt_register_cluster_memory`` (LMDB on one machine, Ray's object
store, Dask). ``flowdapt.testing.conformance.cluster_memory`` is the contract every backend passes.
Stage code does not use this directly: it calls ``flowdapt.object_store.put/get``.
"""

from __future__ import annotations

import abc
from typing import Any


class ClusterMemoryFullError(MemoryError):
    """The value does not fit (size limit reached even after eviction). The object store's
    ``fallback`` strategy then writes the value to artifacts instead."""


def check_key(key: Any) -> None:
    """Keys are non-empty strings without NUL characters (backends use NUL as a separator)."""
    if not isinstance(key, str) or not key or "\x00" in key:
        raise ValueError(f"object store keys must be non-empty strings without NUL characters, got {key!r}")


def check_namespace(namespace: Any) -> None:
    if not isinstance(namespace, str) or not namespace or "\x00" in namespace:
        raise ValueError(
            f"object store namespaces must be non-empty strings without NUL characters, got {namespace!r}"
        )


def full_message(
    key: str, namespace: str, size: int, used: int | None, limit: int, eviction: str, backend: str
) -> str:
    """The message of a :class:`ClusterMemoryFullError`: what did not fit, why, and what to do."""
    mib = 1 << 20
    held = (
        f"; {used / mib:.1f} of {limit / mib:.1f} MiB used"
        if used is not None
        else f"; limit {limit / mib:.1f} MiB"
    )
    if size > limit:
        why = "the value alone is larger than the limit"
    elif eviction == "none":
        why = "eviction is off (eviction: none)"
    else:
        why = "not enough could be evicted"
    return (
        f"cluster memory ({backend}) is full: cannot store '{key}' in namespace '{namespace}' "
        f"({size / mib:.1f} MiB{held}; {why}). "
        f"Raise cluster_memory.options.max_size, delete keys, or put with strategy 'fallback' "
        f"or 'artifact' to store large values as artifacts."
    )


class ClusterMemory(abc.ABC):
    """Synchronous key/value store with namespaces. Missing keys raise ``KeyError``."""

    name: str = "cluster_memory"

    # What the backend can do; the conformance suite (flowdapt.testing.conformance) skips the
    # cases a backend declares it cannot pass, and the object store may warn on a mismatch.
    #: Other OS processes that build the backend from the same options see the same data.
    shared_between_processes: bool = True
    #: ``put(..., ttl=seconds)`` expires values.
    supports_ttl: bool = True
    #: ``stats()`` reports exact ``keys``, ``bytes`` and ``evictions``.
    exact_stats: bool = True

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

    def namespaces(self) -> list[str]:
        """Namespaces that hold at least one key (backends that can list them override this)."""
        return []

    def stats(self) -> dict[str, Any]:
        """Keys, bytes, evictions...: reported by the API's status."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional for backends that hold nothing
        """Release connections/handles. The backend may be reopened lazily afterwards."""
