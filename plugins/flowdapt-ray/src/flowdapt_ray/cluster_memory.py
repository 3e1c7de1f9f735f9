"""Cluster memory on Ray's object store: any picklable value, shared by every worker of a cluster.

Values live in Ray's object store, owned by one detached named actor (so they outlive the task
or driver that put them); the actor keeps only the index ``(namespace, key) -> object ref``. A
``put`` is one call to the actor (which puts the value); a ``get`` one call plus one ``ray.get``.

Values are stored encoded like every other backend's (pickle 5, out-of-band buffers), so a value
read back is a private, writable copy on every backend; ``zero_copy: true`` stores them as Ray
objects instead (numpy arrays come back read-only and shared, without a copy).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowdapt.object_store.base import ClusterMemory, check_key, check_namespace

try:  # the object store's shared encoding (one copy of each buffer each way)
    from flowdapt.object_store import codec as _codec
except ImportError:  # pragma: no cover - older core
    _codec = None


class RayClusterMemoryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None,
        description="Ray cluster to connect to when this process is not connected yet (default 'auto')",
    )
    actor_name: str = Field(default="flowdapt-cluster-memory", description="name of the index actor")
    namespace: str = Field(default="flowdapt", description="Ray namespace of the actor")
    prefix: str = Field(
        default="", description="isolates this deployment's keys from others sharing the cluster and actor"
    )
    zero_copy: bool = Field(default=False, description="store Ray objects as-is (read-only numpy on get)")
    default_ttl: float | None = Field(default=None, gt=0, description="seconds a value lives unless put sets ttl")


class _Index:
    """The actor: ``(namespace, key) -> ([ref], expires, size)``. Async, so calls never block each other."""

    #: Seconds a replaced or deleted value's ref is kept: a reader that got the ref just before
    #: must still be able to fetch it (Ray frees an object as soon as its owner drops the ref,
    #: even while a borrower is about to read it).
    RETIRE_GRACE = 30.0

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, tuple[list[Any], float, int]]] = {}
        self.expired = 0
        self.retired: list[tuple[float, list[Any]]] = []

    def _retire(self, entry) -> None:
        now = time.monotonic()
        if entry is not None:
            self.retired.append((now, entry[0]))
        if self.retired and self.retired[0][0] < now - self.RETIRE_GRACE:
            self.retired = [item for item in self.retired if item[0] >= now - self.RETIRE_GRACE]

    def _live(self, namespace: str, key: str):
        keys = self.entries.get(namespace)
        if not keys:
            return None
        entry = keys.get(key)
        if entry is None:
            return None
        if entry[1] and entry[1] <= time.time():
            self._retire(keys.pop(key))
            if not keys:
                del self.entries[namespace]
            self.expired += 1
            return None
        return entry

    async def put(self, namespace: str, key: str, value: Any, expires: float, size: int) -> None:
        import ray

        # Put by the actor, so the actor owns the object: it outlives the task that sent it.
        keys = self.entries.setdefault(namespace, {})
        self._retire(keys.get(key))
        keys[key] = ([ray.put(value)], expires, size)

    async def get(self, namespace: str, key: str):
        entry = self._live(namespace, key)
        return None if entry is None else entry[0]

    async def exists(self, namespace: str, key: str) -> bool:
        return self._live(namespace, key) is not None

    async def delete(self, namespace: str, key: str) -> bool:
        found = self._live(namespace, key) is not None
        if found:
            keys = self.entries[namespace]
            self._retire(keys.pop(key))
            if not keys:
                del self.entries[namespace]
        return found

    async def clear(self, namespace: str | None, prefix: str = "") -> None:
        doomed = [namespace] if namespace is not None else [ns for ns in self.entries if ns.startswith(prefix)]
        for ns in doomed:
            for entry in self.entries.pop(ns, {}).values():
                self._retire(entry)

    async def keys(self, namespace: str) -> list[str]:
        return [k for k in list(self.entries.get(namespace, {})) if self._live(namespace, k) is not None]

    async def namespaces(self, prefix: str = "") -> list[str]:
        return sorted(ns for ns in list(self.entries) if ns.startswith(prefix) and await self.keys(ns))

    async def stats(self, prefix: str = "") -> dict[str, Any]:
        held = [keys for ns, keys in self.entries.items() if ns.startswith(prefix)]
        return {
            "keys": sum(len(k) for k in held),
            "bytes": sum(e[2] for k in held for e in k.values()),
            "namespaces": len(held),
            "expired": self.expired,
            "evictions": 0,
        }


class RayClusterMemory(ClusterMemory):
    name = "ray"

    def __init__(self, options: RayClusterMemoryOptions | None = None):
        self.options = options or RayClusterMemoryOptions()
        self._actor = None
        self._lock = threading.Lock()
        self._prefix = f"{self.options.prefix}\x00" if self.options.prefix else ""

    def _ns(self, namespace: str) -> str:
        check_namespace(namespace)
        return self._prefix + namespace

    # -- connection --------------------------------------------------------------------------

    def _index(self):
        actor = self._actor
        if actor is not None:
            return actor
        with self._lock:
            if self._actor is None:
                from flowdapt_ray.executor import enable_token_auth_if_available

                enable_token_auth_if_available()  # read by Ray when it is first imported
                import ray

                if not ray.is_initialized():
                    from flowdapt_ray.executor import check_reachable

                    address = self.options.address or "auto"
                    if address != "auto":
                        check_reachable(address, 10.0)
                    from flowdapt_ray.executor import _ray_thread

                    try:
                        _ray_thread().submit(
                            ray.init, address=address, namespace=self.options.namespace, log_to_driver=False
                        ).result()
                    except ConnectionError as exc:
                        raise ConnectionError(
                            f"cluster memory 'ray' found no Ray cluster to connect to ({exc}); run with "
                            "executor 'ray' or set cluster_memory.options.address"
                        ) from None
                # Detached: the values outlive drivers; ``get_if_exists`` makes every process share one.
                self._actor = (
                    ray.remote(_Index)
                    .options(
                        name=self.options.actor_name,
                        namespace=self.options.namespace,
                        lifetime="detached",
                        get_if_exists=True,
                        num_cpus=0,
                        max_concurrency=1000,
                    )
                    .remote()
                )
            return self._actor

    # -- ClusterMemory -----------------------------------------------------------------------

    def put(self, key: str, value: Any, *, namespace: str = "default", ttl: float | None = None) -> None:
        import ray

        check_key(key)
        namespace = self._ns(namespace)
        actor = self._index()
        if self.options.zero_copy or _codec is None:
            stored, size = value, 0
            if _codec is None and not self.options.zero_copy:
                import cloudpickle

                stored = cloudpickle.dumps(value, protocol=5)
                size = len(stored)
        else:
            import numpy as np

            record = _codec.encode(value)
            size = len(record)
            stored = np.frombuffer(record, dtype=np.uint8)
        ttl = ttl if ttl is not None else self.options.default_ttl
        expires = time.time() + ttl if ttl else 0.0
        ray.get(actor.put.remote(namespace, key, stored, expires, size))

    def get(self, key: str, *, namespace: str = "default") -> Any:
        import ray

        check_key(key)
        refs = ray.get(self._index().get.remote(self._ns(namespace), key))
        if refs is None:
            raise KeyError(key)
        stored = ray.get(refs[0])
        if self.options.zero_copy:
            return stored
        if _codec is None:
            import cloudpickle

            return cloudpickle.loads(stored)
        return _codec.decode(memoryview(stored))

    def delete(self, key: str, *, namespace: str = "default") -> bool:
        import ray

        check_key(key)
        return ray.get(self._index().delete.remote(self._ns(namespace), key))

    def exists(self, key: str, *, namespace: str = "default") -> bool:
        import ray

        check_key(key)
        return ray.get(self._index().exists.remote(self._ns(namespace), key))

    def clear(self, namespace: str | None = None) -> None:
        import ray

        ray.get(self._index().clear.remote(None if namespace is None else self._ns(namespace), self._prefix))

    def keys(self, namespace: str = "default") -> list[str]:
        import ray

        return sorted(ray.get(self._index().keys.remote(self._ns(namespace))))

    def namespaces(self) -> list[str]:
        import ray

        found = ray.get(self._index().namespaces.remote(self._prefix))
        return [ns[len(self._prefix) :] for ns in found]

    def stats(self) -> dict[str, Any]:
        import ray

        return {"backend": self.name, **ray.get(self._index().stats.remote(self._prefix))}

    def close(self) -> None:
        self._actor = None

    def destroy(self) -> None:
        """Kill the index actor: every value of this cluster memory is dropped."""
        import ray

        actor = self._index()
        ray.kill(actor)
        self._actor = None
