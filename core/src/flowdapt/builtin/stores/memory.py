"""The in-memory document store: same semantics as SQLite, gone when the process exits.

Documents are kept serialized (JSON text) and parsed on every read, exactly like the SQLite
store, so callers never share mutable objects with the store and both stores normalize values
the same way. One ``threading.Lock`` guards every dict: methods never await while holding it, so
it is safe from any number of tasks, event loops and threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from flowdapt.builtin.stores._common import (
    FINAL_STATES,
    as_uid,
    check_kind,
    dump_resource,
    dump_run,
    from_epoch,
    load_resource,
    load_resources,
    load_run,
    micros,
    name_conflict,
    not_found,
    run_conflict,
    server_record,
    state_values,
    uid_conflict,
)
from flowdapt.resources.base import Resource
from flowdapt.resources.run import WorkflowRun
from flowdapt.storage import DocumentStore, RunLogRecord
from flowdapt.storage.memory_logs import MemoryRunLogs


class MemoryStoreOptions(BaseModel):
    """``database.options`` of the ``memory`` backend: none."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class _Doc:
    name: str
    doc: str


@dataclass
class _Run:
    seq: int
    name: str
    workflow: str
    state: str
    started_at: int
    doc: str
    #: The run-queue lease beside the document: holder and expiry (``time.time()`` seconds).
    lease_owner: str | None = None
    lease_expires: float | None = None


class MemoryStore(DocumentStore):
    """Resources and runs in dicts; for tests, ``flowdapt exec`` and throw-away servers."""

    #: Each store object has its own dicts: nothing survives it, nothing is shared with another.
    persistent = False
    shared = False
    run_queue = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: kind -> uid -> document (dicts keep insertion order: creation order).
        self._resources: dict[str, dict[str, _Doc]] = {}
        #: kind -> name -> uid.
        self._names: dict[str, dict[str, str]] = {}
        self._runs: dict[str, _Run] = {}
        self._run_names: dict[str, str] = {}
        self._seq = 0
        #: server_id -> (info, last_seen, expires), times in ``time.time()`` seconds.
        self._servers: dict[str, tuple[dict[str, Any], float, float]] = {}

        self._logs = MemoryRunLogs()

    def __repr__(self) -> str:
        return "MemoryStore()"

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def upgrade(self) -> tuple[int, int]:
        """Nothing is ever stored in an older schema."""
        return self.schema_version, self.schema_version

    async def stored_version(self) -> int:
        return self.schema_version

    # -- resources -----------------------------------------------------------------------

    def _find(self, kind: str, identifier: str) -> tuple[str, _Doc] | None:
        docs = self._resources.get(kind)
        if not docs:
            return None
        uid = as_uid(identifier)
        if uid is not None and uid in docs:
            return uid, docs[uid]
        uid = self._names[kind].get(identifier)
        return None if uid is None else (uid, docs[uid])

    async def create(self, resource: Resource) -> Resource:
        kind = check_kind(resource)
        uid, name, doc = str(resource.uid), resource.name, dump_resource(resource)
        with self._lock:
            docs = self._resources.setdefault(kind, {})
            names = self._names.setdefault(kind, {})
            if name in names:
                raise name_conflict(kind, name)
            if uid in docs:
                raise uid_conflict(kind, uid)
            docs[uid] = _Doc(name, doc)
            names[name] = uid
        return load_resource(kind, doc)

    async def get(self, kind: str, identifier: str) -> Resource | None:
        with self._lock:
            found = self._find(kind, str(identifier))
        return None if found is None else load_resource(kind, found[1].doc)

    async def list(self, kind: str) -> list[Resource]:
        with self._lock:
            docs = [d.doc for d in self._resources.get(kind, {}).values()]
        return load_resources(kind, docs)

    async def update(self, resource: Resource) -> Resource:
        kind = check_kind(resource)
        uid, name, doc = str(resource.uid), resource.name, dump_resource(resource)
        with self._lock:
            docs = self._resources.get(kind, {})
            current = docs.get(uid)
            if current is None:
                raise not_found(kind, uid)
            names = self._names[kind]
            if name != current.name:
                if name in names:
                    raise name_conflict(kind, name)
                del names[current.name]
                names[name] = uid
            docs[uid] = _Doc(name, doc)
        return load_resource(kind, doc)

    async def delete(self, kind: str, identifier: str) -> Resource | None:
        with self._lock:
            found = self._find(kind, str(identifier))
            if found is None:
                return None
            uid, entry = found
            del self._resources[kind][uid]
            del self._names[kind][entry.name]
        return load_resource(kind, entry.doc)

    async def compare_and_set_annotation(
        self, kind: str, uid: str, key: str, expected: str | None, value: str
    ) -> bool:
        with self._lock:
            found = self._find(kind, str(uid))
            if found is None:
                return False
            entry = found[1]
            data = orjson.loads(entry.doc)
            annotations = data.setdefault("metadata", {}).setdefault("annotations", {})
            if annotations.get(key) != expected:
                return False
            annotations[key] = str(value)
            entry.doc = orjson.dumps(data).decode()
            return True

    # -- runs ----------------------------------------------------------------------------

    def _find_run(self, identifier: str) -> tuple[str, _Run] | None:
        uid = as_uid(identifier)
        if uid is not None and uid in self._runs:
            return uid, self._runs[uid]
        uid = self._run_names.get(identifier)
        return None if uid is None else (uid, self._runs[uid])

    def _entry(self, run: WorkflowRun, seq: int) -> _Run:
        return _Run(seq, run.name, run.workflow, str(run.state), micros(run.started_at), dump_run(run))

    async def create_run(self, run: WorkflowRun) -> WorkflowRun:
        uid = str(run.uid)
        with self._lock:
            if uid in self._runs:
                raise run_conflict(run, "uid")
            if run.name in self._run_names:
                raise run_conflict(run, "name")
            self._seq += 1
            entry = self._entry(run, self._seq)
            self._runs[uid] = entry
            self._run_names[run.name] = uid
        return load_run(entry.doc)

    async def update_run(self, run: WorkflowRun) -> WorkflowRun:
        uid = str(run.uid)
        with self._lock:
            current = self._runs.get(uid)
            owner = self._run_names.get(run.name)
            if owner is not None and owner != uid:
                raise run_conflict(run, "name")
            if current is None:
                self._seq += 1
                entry = self._entry(run, self._seq)
            else:
                entry = self._entry(run, current.seq)
                entry.lease_owner, entry.lease_expires = current.lease_owner, current.lease_expires
                if current.name != run.name:
                    del self._run_names[current.name]
            self._runs[uid] = entry
            self._run_names[run.name] = uid
        return load_run(entry.doc)

    async def get_run(self, identifier: str) -> WorkflowRun | None:
        with self._lock:
            found = self._find_run(str(identifier))
        return None if found is None else load_run(found[1].doc)

    async def delete_run(self, identifier: str) -> WorkflowRun | None:
        with self._lock:
            found = self._find_run(str(identifier))
            if found is None:
                return None
            uid, entry = found
            del self._runs[uid]
            del self._run_names[entry.name]
        self._logs.delete(uid)
        return load_run(entry.doc)

    def _matching(
        self, workflow: str | None, state: str | list[str] | None, since: datetime | None
    ) -> list[_Run]:
        states = state_values(state)
        state_set = set(states) if states is not None else None
        since_us = micros(since) if since is not None else None
        return [
            r
            for r in self._runs.values()
            if (workflow is None or r.workflow == workflow)
            and (state_set is None or r.state in state_set)
            and (since_us is None or r.started_at >= since_us)
        ]

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        state: str | list[str] | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[WorkflowRun]:
        with self._lock:
            runs = self._matching(workflow, state, since)
        runs.sort(key=lambda r: (r.started_at, r.seq), reverse=True)
        start = max(0, int(offset or 0))
        stop = None if limit is None or limit < 0 else start + int(limit)
        return [load_run(r.doc) for r in runs[start:stop]]

    async def count_runs(
        self, *, workflow: str | None = None, state: str | list[str] | None = None, since: datetime | None = None
    ) -> int:
        with self._lock:
            return len(self._matching(workflow, state, since))

    async def delete_runs_before(self, before: datetime) -> int:
        before_us = micros(before)
        final = set(FINAL_STATES)
        with self._lock:
            doomed = [uid for uid, r in self._runs.items() if r.started_at < before_us and r.state in final]
            for uid in doomed:
                entry = self._runs.pop(uid)
                del self._run_names[entry.name]
        self._logs.delete_many(doomed)
        return len(doomed)

    # -- run queue --------------------------------------------------------------------------

    def _take(self, owner: str, lease_seconds: float, limit: int, eligible, order) -> list[WorkflowRun]:
        now = time.time()
        with self._lock:
            chosen = sorted((r for r in self._runs.values() if eligible(r, now)), key=order)[: max(0, int(limit))]
            for entry in chosen:
                entry.lease_owner, entry.lease_expires = str(owner), now + float(lease_seconds)
            docs = [entry.doc for entry in chosen]
        return [load_run(doc) for doc in docs]

    async def claim_runs(
        self, owner: str, lease_seconds: float, limit: int = 1, *, uids: list[str] | None = None
    ) -> list[WorkflowRun]:
        among = None if uids is None else {str(uid) for uid in uids}

        def eligible(r: _Run, now: float) -> bool:
            if among is not None and not any(self._runs.get(uid) is r for uid in among):
                return False
            return r.state == "pending" and r.lease_owner is None

        return self._take(owner, lease_seconds, limit, eligible, lambda r: r.seq)

    async def claim_expired(self, owner: str, lease_seconds: float, limit: int = 10) -> list[WorkflowRun]:
        def eligible(r: _Run, now: float) -> bool:
            return r.state not in FINAL_STATES and r.lease_owner is not None and r.lease_expires < now

        return self._take(owner, lease_seconds, limit, eligible, lambda r: (r.lease_expires, r.seq))

    async def renew_leases(self, owner: str, uids: list[str], lease_seconds: float) -> set[str]:
        now = time.time()
        held: set[str] = set()
        with self._lock:
            for uid in uids:
                entry = self._runs.get(str(uid))
                if entry is not None and entry.lease_owner == owner:
                    entry.lease_expires = now + float(lease_seconds)
                    held.add(str(uid))
        return held

    async def release_lease(self, owner: str, uid: str) -> None:
        with self._lock:
            entry = self._runs.get(str(uid))
            if entry is not None and entry.lease_owner == owner:
                entry.lease_owner = entry.lease_expires = None

    async def get_lease(self, uid: str) -> tuple[str, datetime] | None:
        with self._lock:
            entry = self._runs.get(str(uid))
            if entry is None or entry.lease_owner is None:
                return None
            return entry.lease_owner, from_epoch(entry.lease_expires)

    async def heartbeat_server(self, server_id: str, info: dict[str, Any], ttl_seconds: float) -> None:
        now = time.time()
        record = orjson.loads(orjson.dumps(info))  # a copy, JSON values only (as stores that serialize)
        with self._lock:
            self._servers[str(server_id)] = (record, now, now + float(ttl_seconds))

    async def list_servers(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            live = [(sid, rec) for sid, rec in self._servers.items() if rec[2] > now]
        return [server_record(sid, orjson.loads(orjson.dumps(info)), from_epoch(seen)) for sid, (info, seen, _) in sorted(live)]

    async def remove_server(self, server_id: str) -> None:
        with self._lock:
            self._servers.pop(str(server_id), None)

    # -- run logs ------------------------------------------------------------------------

    run_logs = True

    async def append_run_logs(
        self,
        run_uid: str,
        records: Sequence[RunLogRecord],
        *,
        max_bytes: int | None = None,
        dropped: tuple[int, int] = (0, 0),
    ) -> None:
        self._logs.append(str(run_uid), records, max_bytes, dropped)

    async def read_run_logs(
        self,
        run_uid: str,
        *,
        stage: str | None = None,
        min_level: int | None = None,
        after_seq: int | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[RunLogRecord]:
        return self._logs.read(
            str(run_uid), stage=stage, min_level=min_level, after_seq=after_seq, since=since, limit=limit
        )

    async def trim_run_logs(self, run_uid: str, max_bytes: int) -> int:
        return self._logs.trim(str(run_uid), max_bytes)

    async def delete_run_logs(self, run_uid: str) -> int:
        return self._logs.delete(str(run_uid))
