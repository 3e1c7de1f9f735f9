"""Built-in ``memory`` cluster memory: a dict in this process.

Useful where every stage runs in one process (the Local executor in ``thread`` or ``inline``
mode, tests, notebooks). Worker *processes* do not see each other's memory: use ``lmdb``
(flowdapt-lmdb, the default) there. Values are encoded like LMDB's by default, so a value read
back is a copy, exactly as on every other backend; ``serialize: false`` stores live references
(fastest; a mutation after ``put`` is then visible to readers).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowdapt.hookspecs import hookimpl
from flowdapt.object_store import codec
from flowdapt.object_store.base import (
    ClusterMemory,
    ClusterMemoryFullError,
    check_key,
    check_namespace,
    full_message,
)


class MemoryClusterMemoryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_size: int = Field(default=1 << 30, gt=0, description="bytes of encoded values held at most")
    eviction: Literal["lru", "none"] = Field(
        default="lru", description="lru: drop least recently used values to make room; none: refuse the put"
    )
    default_ttl: float | None = Field(
        default=None, gt=0, description="seconds a value lives unless put sets ttl"
    )
    serialize: bool = Field(
        default=True, description="store encoded copies (true) or live references (false)"
    )


class _Entry:
    __slots__ = ("value", "size", "expires")

    def __init__(self, value: Any, size: int, expires: float):
        self.value = value
        self.size = size
        self.expires = expires


class MemoryClusterMemory(ClusterMemory):
    name = "memory"
    #: Each process has its own dict: workers in other processes never see it.
    shared_between_processes = False

    def __init__(self, options: MemoryClusterMemoryOptions | None = None):
        self.options = options or MemoryClusterMemoryOptions()
        self._lock = threading.Lock()
        # (namespace, key) -> entry, oldest access first: the LRU order.
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._namespaces: dict[str, set[str]] = {}
        self._bytes = 0
        self._evictions = 0
        self._expirations = 0

    # -- helpers (lock held) -------------------------------------------------------------

    def _drop(self, full: tuple[str, str]) -> _Entry:
        entry = self._entries.pop(full)
        self._bytes -= entry.size
        keys = self._namespaces.get(full[0])
        if keys is not None:
            keys.discard(full[1])
            if not keys:
                del self._namespaces[full[0]]
        return entry

    def _live(self, full: tuple[str, str]) -> _Entry | None:
        entry = self._entries.get(full)
        if entry is None:
            return None
        if entry.expires and entry.expires <= time.time():
            self._drop(full)
            self._expirations += 1
            return None
        return entry

    def _purge_expired(self) -> None:
        now = time.time()
        expired = [k for k, e in self._entries.items() if e.expires and e.expires <= now]
        for full in expired:
            self._drop(full)
        self._expirations += len(expired)

    # -- contract ------------------------------------------------------------------------

    def put(self, key: str, value: Any, *, namespace: str = "default", ttl: float | None = None) -> None:
        check_key(key)
        check_namespace(namespace)
        if self.options.serialize:
            stored: Any = codec.encode(value)
            size = len(stored)
        else:
            stored = value
            size = _rough_size(value)
        ttl = ttl if ttl is not None else self.options.default_ttl
        expires = time.time() + ttl if ttl else 0.0
        limit = self.options.max_size
        full = (namespace, key)
        with self._lock:
            old = self._entries.get(full)
            needed = self._bytes - (old.size if old else 0) + size
            if needed > limit:
                self._purge_expired()
                old = self._entries.get(full)
                needed = self._bytes - (old.size if old else 0) + size
            if needed > limit:
                if size > limit or self.options.eviction == "none":
                    used = None if size > limit else self._bytes
                    raise ClusterMemoryFullError(
                        full_message(key, namespace, size, used, limit, self.options.eviction, "memory")
                    )
                for victim in list(self._entries):
                    if needed <= limit:
                        break
                    if victim == full:
                        continue
                    needed -= self._drop(victim).size
                    self._evictions += 1
            if full in self._entries:
                self._drop(full)
            self._entries[full] = _Entry(stored, size, expires)
            self._namespaces.setdefault(namespace, set()).add(key)
            self._bytes += size

    def get(self, key: str, *, namespace: str = "default") -> Any:
        full = (namespace, key)
        with self._lock:
            entry = self._live(full)
            if entry is None:
                raise KeyError(key)
            self._entries.move_to_end(full)
            stored = entry.value
        return codec.decode(stored) if self.options.serialize else stored

    def delete(self, key: str, *, namespace: str = "default") -> bool:
        full = (namespace, key)
        with self._lock:
            if self._live(full) is None:
                return False
            self._drop(full)
            return True

    def exists(self, key: str, *, namespace: str = "default") -> bool:
        with self._lock:
            return self._live((namespace, key)) is not None

    def clear(self, namespace: str | None = None) -> None:
        with self._lock:
            if namespace is None:
                self._entries.clear()
                self._namespaces.clear()
                self._bytes = 0
                return
            for key in list(self._namespaces.get(namespace, ())):
                self._drop((namespace, key))

    def keys(self, namespace: str = "default") -> list[str]:
        with self._lock:
            names = list(self._namespaces.get(namespace, ()))
            return sorted(k for k in names if self._live((namespace, k)) is not None)

    def namespaces(self) -> list[str]:
        with self._lock:
            return sorted(self._namespaces)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "backend": self.name,
                "keys": len(self._entries),
                "bytes": self._bytes,
                "max_bytes": self.options.max_size,
                "evictions": self._evictions,
                "expirations": self._expirations,
                "namespaces": len(self._namespaces),
            }


def _rough_size(value: Any) -> int:
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    import sys

    return sys.getsizeof(value)


@hookimpl
def flowdapt_register_cluster_memory(register):
    register(
        "memory",
        lambda options, settings=None: MemoryClusterMemory(options),
        MemoryClusterMemoryOptions,
    )
