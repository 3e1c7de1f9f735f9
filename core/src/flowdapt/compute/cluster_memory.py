"""The original's ``flowdapt.compute.cluster_memory`` helpers, on the configured backend.

``backend`` names a registered cluster-memory backend (``lmdb``, ``memory``, ``ray``, ``dask``);
the original's executor names are accepted too: ``local`` means the configured backend.
"""

from __future__ import annotations

from typing import Any

from flowdapt.object_store import cluster_memory, resolve_namespace
from flowdapt.object_store.base import ClusterMemory, ClusterMemoryFullError


def get_cluster_memory_backend(backend: str | None = None, **kwargs: Any) -> ClusterMemory:
    name = None if backend in (None, "", "local") else backend
    return cluster_memory(backend=name, options=kwargs or None)


def put_in_cluster_memory(
    key: str, value: Any, *, namespace: str = "", backend: str | None = None, **kw: Any
) -> None:
    get_cluster_memory_backend(backend, **kw).put(key, value, namespace=resolve_namespace(namespace))


def get_from_cluster_memory(key: str, *, namespace: str = "", backend: str | None = None, **kw: Any) -> Any:
    return get_cluster_memory_backend(backend, **kw).get(key, namespace=resolve_namespace(namespace))


def delete_from_cluster_memory(
    key: str, *, namespace: str = "", backend: str | None = None, **kw: Any
) -> bool:
    return get_cluster_memory_backend(backend, **kw).delete(key, namespace=resolve_namespace(namespace))


def check_for_key_in_cluster_memory(
    key: str, *, namespace: str = "", backend: str | None = None, **kw: Any
) -> bool:
    return get_cluster_memory_backend(backend, **kw).exists(key, namespace=resolve_namespace(namespace))


__all__ = [
    "ClusterMemory",
    "ClusterMemoryFullError",
    "check_for_key_in_cluster_memory",
    "delete_from_cluster_memory",
    "get_cluster_memory_backend",
    "get_from_cluster_memory",
    "put_in_cluster_memory",
]
