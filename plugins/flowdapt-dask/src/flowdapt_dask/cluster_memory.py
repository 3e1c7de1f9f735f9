"""Cluster memory on a Dask cluster: any picklable value, held by one actor on a worker.

The first backend to need it creates a Dask actor (``_Holder``) on a worker and publishes it
under a dataset name, so every client and task of the cluster finds the same one (creation is
guarded by a cluster-wide lock). A ``put``/``get`` is one direct call to that worker. The
original accepted only Dask collections, pandas and numpy; this takes anything picklable,
encoded like every other backend's values, so a value read back is a private copy. If the
worker holding the actor dies, its values are gone: cluster memory is ephemeral.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowdapt.object_store.base import ClusterMemory, check_key, check_namespace

try:  # the object store's shared encoding (one copy of each buffer each way)
    from flowdapt.object_store import codec as _codec
except ImportError:  # pragma: no cover - older core
    _codec = None

SEP = "\x00"


def _encode(value: Any) -> bytes:
    if _codec is not None:
        return _codec.encode(value)
    import cloudpickle

    return cloudpickle.dumps(value, protocol=5)


def _decode(record: bytes) -> Any:
    if _codec is not None:
        return _codec.decode(record)
    import cloudpickle

    return cloudpickle.loads(record)


class DaskClusterMemoryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None, description="scheduler to connect to when no Dask executor or worker is in this process"
    )
    name: str = Field(default="flowdapt-cluster-memory", description="dataset name of the holder actor")
    prefix: str = Field(
        default="", description="isolates this deployment's keys from others sharing the holder"
    )
    default_ttl: float | None = Field(default=None, gt=0, description="seconds a value lives unless put sets ttl")
    connect_timeout: float = Field(default=10.0, gt=0)


class _Holder:
    """The actor: ``namespace -> key -> (record, expires)``. Methods may run in parallel threads."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, tuple[bytes, float]]] = {}
        self.lock = threading.Lock()
        self.expired = 0

    def _live(self, namespace: str, key: str):
        keys = self.entries.get(namespace)
        entry = keys.get(key) if keys else None
        if entry is None:
            return None
        if entry[1] and entry[1] <= time.time():
            del keys[key]
            if not keys:
                del self.entries[namespace]
            self.expired += 1
            return None
        return entry

    def put(self, namespace: str, key: str, record: bytes, expires: float) -> None:
        with self.lock:
            self.entries.setdefault(namespace, {})[key] = (record, expires)

    def get(self, namespace: str, key: str):
        with self.lock:
            entry = self._live(namespace, key)
        return None if entry is None else entry[0]

    def exists(self, namespace: str, key: str) -> bool:
        with self.lock:
            return self._live(namespace, key) is not None

    def delete(self, namespace: str, key: str) -> bool:
        with self.lock:
            if self._live(namespace, key) is None:
                return False
            keys = self.entries[namespace]
            del keys[key]
            if not keys:
                del self.entries[namespace]
            return True

    def clear(self, namespace: str | None, prefix: str) -> None:
        with self.lock:
            if namespace is not None:
                self.entries.pop(namespace, None)
                return
            for ns in [ns for ns in self.entries if ns.startswith(prefix)]:
                del self.entries[ns]

    def keys(self, namespace: str) -> list[str]:
        with self.lock:
            return [k for k in list(self.entries.get(namespace, {})) if self._live(namespace, k) is not None]

    def namespaces(self, prefix: str) -> list[str]:
        with self.lock:
            found = [ns for ns in list(self.entries) if ns.startswith(prefix)]
            return sorted(ns for ns in found if any(self._live(ns, k) for k in list(self.entries.get(ns, {}))))

    def stats(self, prefix: str) -> dict[str, Any]:
        with self.lock:
            held = [keys for ns, keys in self.entries.items() if ns.startswith(prefix)]
            return {
                "keys": sum(len(k) for k in held),
                "bytes": sum(len(e[0]) for k in held for e in k.values()),
                "namespaces": len(held),
                "expired": self.expired,
                "evictions": 0,
            }


class DaskClusterMemory(ClusterMemory):
    name = "dask"

    def __init__(self, options: DaskClusterMemoryOptions | None = None):
        self.options = options or DaskClusterMemoryOptions()
        self._own_client = None
        self._lock = threading.Lock()
        self._prefix = f"{self.options.prefix}{SEP}" if self.options.prefix else ""
        self._holders: dict[int, Any] = {}  # id(client) -> actor proxy

    def _ns(self, namespace: str) -> str:
        check_namespace(namespace)
        return self._prefix + namespace

    def _client(self):
        """Inside a worker: the worker's client. In a driver: the running Dask executor's client,
        else one connected to ``address``."""
        from distributed import get_worker

        try:
            get_worker()
        except ValueError:
            pass
        else:
            from distributed import get_client

            return get_client()
        from flowdapt_dask.executor import active_client

        client = active_client()
        if client is not None and client.status == "running":
            return client
        with self._lock:
            if self._own_client is None or self._own_client.status != "running":
                if not self.options.address:
                    raise ConnectionError(
                        "cluster memory 'dask' has no Dask cluster to use in this process: run with executor "
                        "'dask', or set cluster_memory.options.address to a scheduler address"
                    )
                from distributed import Client

                self._own_client = Client(
                    self.options.address, timeout=self.options.connect_timeout, set_as_default=False
                )
            return self._own_client

    def _call(self, method: str, *args: Any) -> Any:
        client = self._client()
        # The actor proxy binds to the "current" client; ours may not be the process default.
        with client.as_current():
            return getattr(self._holder(client), method)(*args).result()

    def _holder(self, client):
        holder = self._holders.get(id(client))
        if holder is not None:
            return holder
        from distributed import Lock

        name = self.options.name
        future = client.get_dataset(name, default=None)
        if future is None:
            with Lock(f"{name}-create", scheduler_rpc=client.scheduler, loop=client.loop):
                future = client.get_dataset(name, default=None)
                if future is None:
                    future = client.submit(_Holder, actor=True, key=f"{name}-{uuid.uuid4().hex}", pure=False)
                    future.result()
                    client.publish_dataset(**{name: future})
        holder = future.result()
        self._holders[id(client)] = holder
        return holder

    def put(self, key: str, value: Any, *, namespace: str = "default", ttl: float | None = None) -> None:
        check_key(key)
        namespace = self._ns(namespace)
        record = _encode(value)
        ttl = ttl if ttl is not None else self.options.default_ttl
        expires = time.time() + ttl if ttl else 0.0
        self._call("put", namespace, key, record, expires)

    def get(self, key: str, *, namespace: str = "default") -> Any:
        check_key(key)
        record = self._call("get", self._ns(namespace), key)
        if record is None:
            raise KeyError(key)
        return _decode(record)

    def exists(self, key: str, *, namespace: str = "default") -> bool:
        check_key(key)
        return self._call("exists", self._ns(namespace), key)

    def delete(self, key: str, *, namespace: str = "default") -> bool:
        check_key(key)
        return self._call("delete", self._ns(namespace), key)

    def clear(self, namespace: str | None = None) -> None:
        self._call("clear", None if namespace is None else self._ns(namespace), self._prefix)

    def keys(self, namespace: str = "default") -> list[str]:
        return sorted(self._call("keys", self._ns(namespace)))

    def namespaces(self) -> list[str]:
        found = self._call("namespaces", self._prefix)
        return [ns[len(self._prefix) :] for ns in found]

    def stats(self) -> dict[str, Any]:
        return {"backend": self.name, **self._call("stats", self._prefix)}

    def close(self) -> None:
        with self._lock:
            client, self._own_client = self._own_client, None
            self._holders.clear()
        if client is not None:
            client.close()
