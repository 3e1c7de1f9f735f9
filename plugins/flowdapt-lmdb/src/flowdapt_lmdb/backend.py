"""LMDB cluster memory: one memory-mapped environment per app dir, shared by every process there.

Why LMDB: readers never block (MVCC over a memory map), so a ``get`` is a B-tree lookup plus
one copy out of the map, with no server process, socket or serialization round trip in between;
writers are serialized by a robust cross-process mutex, so any number of worker processes (Local
pools, Dask and Ray workers on the node) read and write the same keys safely.

Layout (named databases inside one environment):

``data``  ``ns\\0key`` -> ``<d expires_at>`` + codec record (pickle 5, out-of-band buffers)
``meta``  ``ns\\0key`` -> ``<QdQ size, expires_at, last_access_ns>``
``lru``   ``>Q last_access_ns`` + ``ns\\0key`` -> ``b""`` (oldest first: eviction order)
``ttl``   ``>Q expires_at_us`` + ``ns\\0key`` -> ``b""`` (soonest first: expiry order)
``info``  counters: bytes held, evictions, expirations

Reads do not write: the last-access time that drives LRU eviction is recorded per process and
flushed in batches (on that process's next write, or at most every ``touch_interval`` seconds),
so LRU order is exact to within that interval.

Fork safety: an LMDB environment handle must not be used in a child after ``fork``. Every
operation checks the process id; a child closes its copy of the inherited handle (which touches
only the child's own state, since no read transaction is cached) and opens its own. Forking while
another thread of the same process is inside a call is not supported.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from pathlib import Path
from typing import Any, Literal

import lmdb
from pydantic import BaseModel, ConfigDict, Field

from flowdapt.object_store import codec
from flowdapt.object_store.base import (
    ClusterMemory,
    ClusterMemoryFullError,
    check_key,
    check_namespace,
    full_message,
)

_EXPIRES = struct.Struct("<d")
_META = struct.Struct("<QdQ")
_BE = struct.Struct(">Q")
_COUNTER = struct.Struct("<Q")
_SEP = b"\x00"
_BYTES = b"bytes"
_EVICTIONS = b"evictions"
_EXPIRATIONS = b"expirations"
MAX_FULL_KEY = 480  # LMDB's default key limit is 511 bytes; the lru index adds 8.
MiB = 1 << 20


class LMDBOptions(BaseModel):
    """Options of the ``lmdb`` cluster memory (``cluster_memory.options`` in the settings)."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        default=None, description="environment directory (default: <app_dir>/cluster_memory.lmdb)"
    )
    max_size: int = Field(
        default=2 << 30, gt=0, description="bytes of stored values held at most (default 2 GiB)"
    )
    map_size: int | None = Field(
        default=None,
        gt=0,
        description="LMDB map size (virtual; the file grows as used). Default 2 x max_size + 64 MiB, "
        "headroom for B-tree pages and free-page fragmentation",
    )
    eviction: Literal["lru", "none"] = Field(
        default="lru", description="lru: drop least recently used values to make room; none: refuse the put"
    )
    default_ttl: float | None = Field(
        default=None, gt=0, description="seconds a value lives unless put sets ttl"
    )
    sync: bool = Field(default=False, description="fsync on every commit (durable across OS crashes; slower)")
    writemap: bool = Field(default=False, description="write through the memory map (faster puts, less safe)")
    readahead: bool = Field(default=False, description="OS readahead on the map (off suits random access)")
    max_readers: int = Field(
        default=1024, gt=0, description="concurrent read transactions across all processes"
    )
    touch_interval: float = Field(
        default=1.0,
        ge=0,
        description="seconds between flushes of a process's last-access times (LRU accuracy)",
    )


class _Env:
    """An open environment and its databases, owned by one process."""

    __slots__ = ("env", "pid", "data", "meta", "lru", "ttl", "info", "path", "users")

    def __init__(self, path: str, options: LMDBOptions):
        map_size = options.map_size or 2 * options.max_size + 64 * MiB
        Path(path).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.env = lmdb.open(
            path,
            map_size=map_size,
            subdir=True,
            max_dbs=8,
            max_readers=options.max_readers,
            sync=options.sync,
            metasync=options.sync,
            writemap=options.writemap,
            readahead=options.readahead,
            # No cached read transactions: a forked child closing its copy of this handle would
            # abort them, and their reader slots are shared with this (parent) process.
            max_spare_txns=0,
            mode=0o600,
        )
        self.env.reader_check()  # slots left by processes that died mid-read
        self.data = self.env.open_db(b"data")
        self.meta = self.env.open_db(b"meta")
        self.lru = self.env.open_db(b"lru")
        self.ttl = self.env.open_db(b"ttl")
        self.info = self.env.open_db(b"info")
        self.pid = os.getpid()
        self.path = path
        self.users = 0


_pid = os.getpid()  # kept current across fork, so every operation checks it without a syscall


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)

# One environment per path per process: LMDB forbids opening the same files twice in a process.
_envs: dict[str, _Env] = {}
_envs_lock = threading.Lock()


def _acquire(path: str, options: LMDBOptions) -> _Env:
    pid = os.getpid()
    with _envs_lock:
        handle = _envs.get(path)
        if handle is not None and handle.pid != pid:
            # Inherited across fork: never use it here. close() in the child releases only this
            # process's view (py-lmdb does not touch the parent's reader slots or locks).
            try:
                handle.env.close()
            except Exception:  # noqa: BLE001 - the child must be able to reopen whatever happened
                pass
            handle = None
        if handle is None:
            handle = _Env(path, options)
            _envs[path] = handle
        handle.users += 1
        return handle


def _release(handle: _Env) -> None:
    with _envs_lock:
        handle.users -= 1
        if handle.users <= 0 and _envs.get(handle.path) is handle and handle.pid == os.getpid():
            del _envs[handle.path]
            handle.env.close()


def _counter(txn, db, name: bytes) -> int:
    raw = txn.get(name, db=db)
    return _COUNTER.unpack(raw)[0] if raw is not None else 0


def _add(txn, db, name: bytes, delta: int) -> int:
    value = max(_counter(txn, db, name) + delta, 0)
    txn.put(name, _COUNTER.pack(value), db=db)
    return value


class LMDBClusterMemory(ClusterMemory):
    name = "lmdb"

    def __init__(self, path: str | os.PathLike[str], options: LMDBOptions | None = None):
        self.options = options or LMDBOptions()
        self.path = os.path.realpath(os.fspath(path))
        self._handle: _Env | None = None
        self._pending: dict[bytes, int] = {}
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()

    # -- environment -----------------------------------------------------------------------

    def _env(self) -> _Env:
        handle = self._handle
        if handle is not None and handle.pid == _pid:
            return handle
        with self._lock:
            handle = self._handle
            if handle is None or handle.pid != os.getpid():
                if handle is not None and handle.pid != os.getpid():
                    self._pending = {}  # the parent's touches are the parent's to flush
                self._handle = handle = _acquire(self.path, self.options)
            return handle

    def close(self) -> None:
        handle = self._handle
        if handle is None or handle.pid != os.getpid():
            self._handle = None
            return
        try:
            self._flush_touches()
        finally:
            self._handle = None
            _release(handle)

    # -- keys ------------------------------------------------------------------------------

    @staticmethod
    def _full(key: str, namespace: str) -> bytes:
        full = namespace.encode() + _SEP + key.encode()
        if len(full) > MAX_FULL_KEY:
            raise ValueError(
                f"key '{key[:60]}...' in namespace '{namespace[:60]}' is too long for LMDB cluster memory: "
                f"{len(full)} bytes, the limit is {MAX_FULL_KEY} bytes for namespace and key together"
            )
        return full

    # -- write path ------------------------------------------------------------------------

    def _drop(self, txn, h: _Env, full: bytes, meta_raw: bytes) -> int:
        """Delete one entry and its index rows; returns its size."""
        size, expires, last = _META.unpack(meta_raw)
        txn.delete(full, db=h.data)
        txn.delete(full, db=h.meta)
        txn.delete(_BE.pack(last) + full, db=h.lru)
        if expires:
            txn.delete(_BE.pack(int(expires * 1e6)) + full, db=h.ttl)
        return size

    def _purge_expired(self, txn, h: _Env) -> int:
        now_us = int(time.time() * 1e6)
        freed = 0
        count = 0
        cursor = txn.cursor(db=h.ttl)
        doomed = []
        for index_key, _ in cursor:
            if _BE.unpack_from(index_key, 0)[0] > now_us:
                break
            doomed.append(bytes(index_key[8:]))
        for full in doomed:
            meta_raw = txn.get(full, db=h.meta)
            if meta_raw is None:
                continue
            freed += self._drop(txn, h, full, bytes(meta_raw))
            count += 1
        if count:
            _add(txn, h.info, _EXPIRATIONS, count)
        return freed

    def _evict(self, txn, h: _Env, amount: int, keep: bytes) -> int:
        """Drop least recently used entries (never ``keep``) until ``amount`` bytes are freed."""
        freed = 0
        count = 0
        victims = []
        cursor = txn.cursor(db=h.lru)
        for index_key, _ in cursor:
            if freed >= amount:
                break
            full = bytes(index_key[8:])
            if full == keep:
                continue
            meta_raw = txn.get(full, db=h.meta)
            if meta_raw is None:
                continue
            victims.append((full, bytes(meta_raw)))
            freed += _META.unpack(meta_raw)[0]
        for full, meta_raw in victims:
            self._drop(txn, h, full, meta_raw)
            count += 1
        if count:
            _add(txn, h.info, _EVICTIONS, count)
        return freed

    def _apply_touches(self, txn, h: _Env, touches: dict[bytes, int]) -> None:
        for full, stamp in touches.items():
            meta_raw = txn.get(full, db=h.meta)
            if meta_raw is None:
                continue
            size, expires, last = _META.unpack(meta_raw)
            if stamp <= last:
                continue
            txn.delete(_BE.pack(last) + full, db=h.lru)
            txn.put(_BE.pack(stamp) + full, b"", db=h.lru)
            txn.put(full, _META.pack(size, expires, stamp), db=h.meta)

    def _take_touches(self) -> dict[bytes, int]:
        touches, self._pending = self._pending, {}
        self._last_flush = time.monotonic()
        return touches

    def _flush_touches(self) -> None:
        if not self._pending:
            return
        h = self._env()
        touches = self._take_touches()
        with h.env.begin(write=True) as txn:
            self._apply_touches(txn, h, touches)

    def put(self, key: str, value: Any, *, namespace: str = "default", ttl: float | None = None) -> None:
        check_key(key)
        check_namespace(namespace)
        full = self._full(key, namespace)
        ttl = ttl if ttl is not None else self.options.default_ttl
        now = time.time()
        expires = now + ttl if ttl else 0.0
        parts = codec.encode_parts(value)
        record = b"".join([_EXPIRES.pack(expires), *parts])  # the one copy of every buffer
        size = len(record)
        limit = self.options.max_size
        if size > limit:
            raise ClusterMemoryFullError(
                full_message(key, namespace, size, None, limit, self.options.eviction, "lmdb")
            )
        h = self._env()
        stamp = time.time_ns()
        for attempt in range(4):
            try:
                self._put_txn(h, full, record, size, expires, stamp, key, namespace)
                return
            except lmdb.MapFullError:
                # The byte count allows it, but the map has no free pages left: pages freed in a
                # transaction are reusable only after it commits (and once no reader still sees
                # them). Clear dead readers, free room in a transaction of its own, retry.
                h.env.reader_check()
                if self.options.eviction == "none" or attempt == 3:
                    break
                self._make_room(h, size * (attempt + 1), keep=full)
        with h.env.begin(buffers=True) as txn:
            used = _counter(txn, h.info, _BYTES)
        raise ClusterMemoryFullError(
            full_message(key, namespace, size, used, limit, self.options.eviction, "lmdb")
            + f" (the LMDB map of {h.env.info()['map_size'] / MiB:.0f} MiB is full: raise "
            f"cluster_memory.options.map_size, or end long-running readers)"
        )

    def _make_room(self, h: _Env, amount: int, keep: bytes) -> None:
        try:
            with h.env.begin(write=True, buffers=True) as txn:
                freed = self._purge_expired(txn, h)
                if freed < amount:
                    freed += self._evict(txn, h, amount - freed, keep=keep)
                _add(txn, h.info, _BYTES, -freed)
        except lmdb.MapFullError:  # even the bookkeeping has no page left; the retry reports it
            pass

    def _put_txn(self, h, full, record, size, expires, stamp, key, namespace) -> None:
        touches = self._take_touches() if self._pending else None
        with h.env.begin(write=True, buffers=True) as txn:
            if touches:
                self._apply_touches(txn, h, touches)
            limit = self.options.max_size
            used = _counter(txn, h.info, _BYTES)
            old = txn.get(full, db=h.meta)
            old = bytes(old) if old is not None else None
            old_size = _META.unpack(old)[0] if old is not None else 0
            needed = used - old_size + size
            if needed > limit:
                used -= self._purge_expired(txn, h)
                old = txn.get(full, db=h.meta)
                old = bytes(old) if old is not None else None
                old_size = _META.unpack(old)[0] if old is not None else 0
                needed = used - old_size + size
            if needed > limit:
                if self.options.eviction == "none":
                    raise ClusterMemoryFullError(
                        full_message(key, namespace, size, used, limit, "none", "lmdb")
                    )
                if self.options.eviction == "lru":
                    freed = self._evict(txn, h, needed - limit, keep=full)
                    used -= freed
                    needed -= freed
                if needed > limit:
                    raise ClusterMemoryFullError(
                        full_message(key, namespace, size, used, limit, self.options.eviction, "lmdb")
                    )
            if old is not None:
                self._drop(txn, h, full, old)
            txn.put(full, record, db=h.data)
            txn.put(full, _META.pack(size, expires, stamp), db=h.meta)
            txn.put(_BE.pack(stamp) + full, b"", db=h.lru)
            if expires:
                txn.put(_BE.pack(int(expires * 1e6)) + full, b"", db=h.ttl)
            txn.put(_BYTES, _COUNTER.pack(max(needed, 0)), db=h.info)

    # -- read path -------------------------------------------------------------------------

    def get(self, key: str, *, namespace: str = "default") -> Any:
        full = self._full(key, namespace)
        h = self._env()
        with h.env.begin(buffers=True) as txn:
            view = txn.get(full, db=h.data)
            if view is None:
                raise KeyError(key)
            expires = _EXPIRES.unpack_from(view, 0)[0]
            if expires and expires <= time.time():
                raise KeyError(key)
            value = codec.decode(view, 8)
        self._pending[full] = time.time_ns()
        if time.monotonic() - self._last_flush > self.options.touch_interval or len(self._pending) > 4096:
            self._flush_touches()
        return value

    def exists(self, key: str, *, namespace: str = "default") -> bool:
        full = self._full(key, namespace)
        h = self._env()
        with h.env.begin(buffers=True) as txn:
            meta_raw = txn.get(full, db=h.meta)
            if meta_raw is None:
                return False
            expires = _META.unpack(meta_raw)[1]
        return not expires or expires > time.time()

    def delete(self, key: str, *, namespace: str = "default") -> bool:
        full = self._full(key, namespace)
        h = self._env()
        self._pending.pop(full, None)
        with h.env.begin(write=True, buffers=True) as txn:
            meta_raw = txn.get(full, db=h.meta)
            if meta_raw is None:
                return False
            meta_raw = bytes(meta_raw)
            expires = _META.unpack(meta_raw)[1]
            size = self._drop(txn, h, full, meta_raw)
            _add(txn, h.info, _BYTES, -size)
        return not expires or expires > time.time()

    def _scan(self, txn, h: _Env, prefix: bytes):
        cursor = txn.cursor(db=h.meta)
        if not cursor.set_range(prefix):
            return
        for full, meta_raw in cursor:
            if not bytes(full[: len(prefix)]) == prefix:
                break
            yield bytes(full), meta_raw

    def keys(self, namespace: str = "default") -> list[str]:
        prefix = namespace.encode() + _SEP
        h = self._env()
        now = time.time()
        out = []
        with h.env.begin(buffers=True) as txn:
            for full, meta_raw in self._scan(txn, h, prefix):
                expires = _META.unpack(meta_raw)[1]
                if not expires or expires > now:
                    out.append(full[len(prefix) :].decode())
        return out

    def namespaces(self) -> list[str]:
        h = self._env()
        found = []
        with h.env.begin(buffers=True) as txn:
            cursor = txn.cursor(db=h.meta)
            ok = cursor.first()
            while ok:
                full = bytes(cursor.key())
                ns = full.split(_SEP, 1)[0]
                found.append(ns.decode())
                ok = cursor.set_range(ns + b"\x01")
        return found

    def clear(self, namespace: str | None = None) -> None:
        h = self._env()
        self._pending = {}
        with h.env.begin(write=True, buffers=True) as txn:
            if namespace is None:
                for db in (h.data, h.meta, h.lru, h.ttl):
                    txn.drop(db, delete=False)
                txn.put(_BYTES, _COUNTER.pack(0), db=h.info)
                return
            prefix = namespace.encode() + _SEP
            doomed = list(self._scan(txn, h, prefix))
            freed = 0
            for full, meta_raw in doomed:
                freed += self._drop(txn, h, full, bytes(meta_raw))
            _add(txn, h.info, _BYTES, -freed)

    def stats(self) -> dict[str, Any]:
        h = self._env()
        with h.env.begin(buffers=True) as txn:
            keys = txn.stat(h.meta)["entries"]
            used = _counter(txn, h.info, _BYTES)
            evictions = _counter(txn, h.info, _EVICTIONS)
            expirations = _counter(txn, h.info, _EXPIRATIONS)
        info = h.env.info()
        try:
            file_bytes = os.stat(os.path.join(self.path, "data.mdb")).st_blocks * 512
        except OSError:
            file_bytes = 0
        return {
            "backend": self.name,
            "path": self.path,
            "keys": keys,
            "bytes": used,
            "max_bytes": self.options.max_size,
            "evictions": evictions,
            "expirations": expirations,
            "map_size": info["map_size"],
            "file_bytes": file_bytes,
            "readers": info["num_readers"],
        }
