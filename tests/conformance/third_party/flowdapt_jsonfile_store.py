"""A third-party document store, written the way a plugin outside Flowdapt would write it.

Everything lives in one JSON file (``path``, default ``<app_dir>/documents.json``). Each
operation takes an exclusive ``flock`` on ``<path>.lock``, reads the file, changes it and
replaces it atomically, so handles in any number of threads and processes share the data and
nothing is lost on close. It uses only public Flowdapt names (``DocumentStore``, the errors, the
resource models) and registers through ``flowdapt_register_document_stores`` like any plugin.

Slow by design (a whole-file rewrite per write); it exists to prove that a store Flowdapt never
saw passes the shipped conformance suite by name (tests/conformance/test_third_party_store.py).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pluggy
from pydantic import BaseModel, ConfigDict

from flowdapt.errors import ConflictError, ResourceNotFoundError
from flowdapt.resources import KINDS, RunState, WorkflowRun
from flowdapt.resources.base import Resource, to_naive_utc
from flowdapt.storage import DocumentStore

hookimpl = pluggy.HookimplMarker("flowdapt")
T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1)
_FINAL = {s.value for s in RunState if s.is_final}


class JSONFileStoreOptions(BaseModel):
    """``database.options`` of the ``jsonfile`` store."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = None


def _micros(value: datetime) -> int:
    delta = to_naive_utc(value) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _uid(identifier: Any) -> str | None:
    try:
        return str(UUID(str(identifier)))
    except (ValueError, TypeError):
        return None


def _states(state: str | list[str] | None) -> set[str] | None:
    if state is None:
        return None
    values = {str(state)} if isinstance(state, str) else {str(s) for s in state}
    return values or None


class JSONFileStore(DocumentStore):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._open = False

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open = True

    async def close(self) -> None:
        self._open = False

    # -- one locked read-modify-write per operation, off the event loop ------------------------

    @contextmanager
    def _locked(self):
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"seq": 0, "resources": {}, "runs": {}}

    def _save(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".documents-")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, self.path)

    async def _do(self, change: Callable[[dict[str, Any]], T], *, write: bool = False) -> T:
        if not self._open:
            raise RuntimeError(f"JSONFileStore {self.path} is not open")

        def run() -> T:
            with self._locked():
                data = self._load()
                result = change(data)
                if write:
                    self._save(data)
                return result

        return await asyncio.to_thread(run)

    # -- resources -------------------------------------------------------------------------------

    @staticmethod
    def _find(docs: list[dict[str, Any]], identifier: str) -> dict[str, Any] | None:
        uid = _uid(identifier)
        return next((d for d in docs if d["uid"] == uid), None) or next(
            (d for d in docs if d["name"] == identifier), None
        )

    @staticmethod
    def _conflict(kind: str, name: str) -> ConflictError:
        return ConflictError(f"{kind} with name `{name}` already exists", resource=f"{kind}/{name}", field="metadata.name")

    @staticmethod
    def _resource(kind: str, doc: dict[str, Any]) -> Resource:
        return KINDS.get(kind, Resource).model_validate(doc)

    async def create(self, resource: Resource) -> Resource:
        kind, uid, name, doc = resource.kind, str(resource.uid), resource.name, resource.to_document()
        doc = json.loads(json.dumps(doc, default=str))

        def change(data):
            docs = data["resources"].setdefault(kind, [])
            if any(d["name"] == name for d in docs):
                raise self._conflict(kind, name)
            if any(d["uid"] == uid for d in docs):
                raise ConflictError(f"{kind} with uid {uid} already exists", resource=f"{kind}/{uid}", field="metadata.uid")
            docs.append({"uid": uid, "name": name, "doc": doc})

        await self._do(change, write=True)
        return self._resource(kind, doc)

    async def get(self, kind: str, identifier: str) -> Resource | None:
        found = await self._do(lambda data: self._find(data["resources"].get(kind, []), str(identifier)))
        return None if found is None else self._resource(kind, found["doc"])

    async def list(self, kind: str) -> list[Resource]:
        docs = await self._do(lambda data: [d["doc"] for d in data["resources"].get(kind, [])])
        return [self._resource(kind, doc) for doc in docs]

    async def update(self, resource: Resource) -> Resource:
        kind, uid, name = resource.kind, str(resource.uid), resource.name
        doc = json.loads(json.dumps(resource.to_document(), default=str))

        def change(data):
            docs = data["resources"].get(kind, [])
            current = next((d for d in docs if d["uid"] == uid), None)
            if current is None:
                raise ResourceNotFoundError(f"{kind} '{uid}' not found")
            if any(d["name"] == name and d["uid"] != uid for d in docs):
                raise self._conflict(kind, name)
            current.update(name=name, doc=doc)

        await self._do(change, write=True)
        return self._resource(kind, doc)

    async def delete(self, kind: str, identifier: str) -> Resource | None:
        def change(data):
            docs = data["resources"].get(kind, [])
            found = self._find(docs, str(identifier))
            if found is not None:
                docs.remove(found)
            return found

        found = await self._do(change, write=True)
        return None if found is None else self._resource(kind, found["doc"])

    async def compare_and_set_annotation(self, kind: str, uid: str, key: str, expected: str | None, value: str) -> bool:
        def change(data):
            found = self._find(data["resources"].get(kind, []), str(uid))
            if found is None:
                return False
            annotations = found["doc"].setdefault("metadata", {}).setdefault("annotations", {})
            if annotations.get(key) != expected:
                return False
            annotations[key] = str(value)
            return True

        return await self._do(change, write=True)

    # -- runs ----------------------------------------------------------------------------------

    @staticmethod
    def _find_run(runs: dict[str, Any], identifier: str) -> tuple[str, dict[str, Any]] | None:
        uid = _uid(identifier)
        if uid is not None and uid in runs:
            return uid, runs[uid]
        return next(((u, r) for u, r in runs.items() if r["name"] == identifier), None)

    @staticmethod
    def _entry(run: WorkflowRun, seq: int) -> dict[str, Any]:
        return {
            "seq": seq,
            "name": run.name,
            "workflow": run.workflow,
            "state": str(run.state),
            "started_at": _micros(run.started_at),
            "doc": run.model_dump_json(),
        }

    @staticmethod
    def _run_conflict(run: WorkflowRun, field: str) -> ConflictError:
        value = run.name if field == "name" else str(run.uid)
        return ConflictError(f"a workflow run with {field} `{value}` already exists", resource=f"workflow_run/{value}", field=field)

    async def create_run(self, run: WorkflowRun) -> WorkflowRun:
        uid = str(run.uid)

        def change(data):
            runs = data["runs"]
            if uid in runs:
                raise self._run_conflict(run, "uid")
            if any(r["name"] == run.name for r in runs.values()):
                raise self._run_conflict(run, "name")
            data["seq"] += 1
            runs[uid] = self._entry(run, data["seq"])
            return runs[uid]["doc"]

        return WorkflowRun.model_validate_json(await self._do(change, write=True))

    async def update_run(self, run: WorkflowRun) -> WorkflowRun:
        uid = str(run.uid)

        def change(data):
            runs = data["runs"]
            if any(r["name"] == run.name and u != uid for u, r in runs.items()):
                raise self._run_conflict(run, "name")
            if uid in runs:
                seq = runs[uid]["seq"]
            else:
                data["seq"] += 1
                seq = data["seq"]
            runs[uid] = self._entry(run, seq)
            return runs[uid]["doc"]

        return WorkflowRun.model_validate_json(await self._do(change, write=True))

    async def get_run(self, identifier: str) -> WorkflowRun | None:
        found = await self._do(lambda data: self._find_run(data["runs"], str(identifier)))
        return None if found is None else WorkflowRun.model_validate_json(found[1]["doc"])

    async def delete_run(self, identifier: str) -> WorkflowRun | None:
        def change(data):
            found = self._find_run(data["runs"], str(identifier))
            if found is not None:
                del data["runs"][found[0]]
            return found

        found = await self._do(change, write=True)
        return None if found is None else WorkflowRun.model_validate_json(found[1]["doc"])

    @staticmethod
    def _matching(data, workflow: str | None, state, since: datetime | None) -> list[dict[str, Any]]:
        states = _states(state)
        since_us = None if since is None else _micros(since)
        return [
            r
            for r in data["runs"].values()
            if (workflow is None or r["workflow"] == workflow)
            and (states is None or r["state"] in states)
            and (since_us is None or r["started_at"] >= since_us)
        ]

    async def list_runs(self, *, workflow=None, state=None, since=None, limit=None, offset=0) -> list[WorkflowRun]:
        runs = await self._do(lambda data: self._matching(data, workflow, state, since))
        runs.sort(key=lambda r: (r["started_at"], r["seq"]), reverse=True)
        start = max(0, int(offset or 0))
        stop = None if limit is None or limit < 0 else start + int(limit)
        return [WorkflowRun.model_validate_json(r["doc"]) for r in runs[start:stop]]

    async def count_runs(self, *, workflow=None, state=None, since=None) -> int:
        return await self._do(lambda data: len(self._matching(data, workflow, state, since)))

    async def delete_runs_before(self, before: datetime) -> int:
        before_us = _micros(before)

        def change(data):
            doomed = [u for u, r in data["runs"].items() if r["started_at"] < before_us and r["state"] in _FINAL]
            for uid in doomed:
                del data["runs"][uid]
            return len(doomed)

        return await self._do(change, write=True)


@hookimpl
def flowdapt_register_document_stores(register):
    def factory(options: JSONFileStoreOptions, settings=None) -> JSONFileStore:
        if options.path:
            path = Path(options.path)
        elif settings is not None:
            path = Path(settings.app_dir) / "documents.json"
        else:
            raise ValueError("the jsonfile store needs options.path or settings with an app_dir")
        return JSONFileStore(path)

    register("jsonfile", factory, JSONFileStoreOptions)
