"""The document store contract (``flowdapt.storage.DocumentStore``): every store passes it.

Resources (create/get/list/update/delete, unique names, renames), compare-and-set annotations,
runs (paging, filters, counts, retention), naive UTC timestamps, persistence, and concurrent
tasks, threads and OS processes on the same data. Only the ABC is used.

Run it against any registered store::

    pytest --pyargs flowdapt.testing.conformance --flowdapt-store 'postgres:dsn=postgresql://localhost/t,schema=t_{unique}'

or subclass :class:`DocumentStoreConformance` as ``Test...`` in a module that overrides the
``flowdapt_store_backend`` fixture (docs/plugins.md). Each test builds its stores through the
plugin registry for a fresh app dir; the options must point at an *empty, isolated* store per
test (the default file under ``{app_dir}``, a ``{unique}`` schema or database on a shared
server), and two stores built from the same options must see the same data.

What a store lacks makes the suite skip, never weaken, a test: the store object's ``persistent``
(a reopened store sees what an earlier one wrote) and ``shared`` (several handles, in threads or
processes, use the same data at once) attributes, both True unless the store says otherwise, and
``run_queue`` (leases on runs and cluster membership: ``claim_runs`` ... ``list_servers``), False
unless the store says it has one.
The tests are coroutines: the suite needs pytest-asyncio (strict or auto mode).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import uuid4

import pytest

from flowdapt.errors import ConflictError, ResourceNotFoundError
from flowdapt.resources import KINDS, RunState, WorkflowRun
from flowdapt.resources.base import Resource
from flowdapt.resources.loader import parse_resource
from flowdapt.resources.run import RunError, StageRun, StageState
from flowdapt.storage import DocumentStore

try:  # the cases are coroutines; without pytest-asyncio they skip (the module still imports)
    from pytest_asyncio import fixture as async_fixture

    HAVE_PYTEST_ASYNCIO = True
except ImportError:  # pragma: no cover - pytest-asyncio is in every Flowdapt test environment
    async_fixture = pytest.fixture
    HAVE_PYTEST_ASYNCIO = False

KIND_NAMES = ("workflow", "config", "trigger_rule")

__all__ = ["T0", "DocumentStoreConformance", "log_record", "make_resource", "make_run", "race_in_threads", "same"]


# -- builders ------------------------------------------------------------------------------


def make_resource(kind: str, name: str, **extra) -> Resource:
    specs = {
        "workflow": {"stages": [{"name": "load", "target": "json.loads"}, {"name": "dump", "target": "json.dumps", "depends_on": ["load"]}]},
        "config": {"selector": {"type": "name", "value": "some_workflow"}, "data": {"alpha": 1, "nested": {"b": [1, 2]}}},
        "trigger_rule": {"type": "schedule", "rule": ["*/5 * * * *"], "action": {"target": "run_workflow", "parameters": {"workflow": "x"}}},
    }
    metadata = {"name": name, "annotations": extra.pop("annotations", {"team": "ml"})}
    metadata.update(extra)
    return parse_resource({"kind": kind, "metadata": metadata, "spec": specs[kind]})


def make_run(workflow: str = "wf", started_at: datetime | None = None, state: str = "finished", **extra) -> WorkflowRun:
    return WorkflowRun(
        workflow=workflow,
        started_at=started_at or datetime(2024, 1, 1),
        state=state,
        **extra,
    )


def same(a, b) -> bool:
    return a.model_dump(mode="json") == b.model_dump(mode="json")


T0 = datetime(2024, 5, 1, 12, 0, 0)


def race_in_threads(stores_for_threads, action, *, open_first: bool = True):
    """Run ``action(store, i)`` in one thread (and event loop) per store, released together.

    With ``open_first`` the stores are opened before the release, else opening is part of the race.
    """
    barrier = threading.Barrier(len(stores_for_threads))
    results: list = [None] * len(stores_for_threads)

    def worker(i: int, s: DocumentStore) -> None:
        async def go():
            if open_first:
                await s.open()
            barrier.wait()
            if not open_first:
                await s.open()
            try:
                return await action(s, i)
            finally:
                if own_handles:
                    await s.close()

        try:
            results[i] = asyncio.run(go())
        except Exception as exc:
            results[i] = exc

    own_handles = len({id(s) for s in stores_for_threads}) > 1
    threads = [threading.Thread(target=worker, args=(i, s)) for i, s in enumerate(stores_for_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


async def _create_or_conflict(s: DocumentStore, i: int):
    try:
        await s.create(make_resource("trigger_rule", "contested", annotations={"thread": str(i)}))
        return "won"
    except ConflictError:
        return "conflict"


def _run_processes(backend, app_dir: Path, sync: Path, count: int, action: str, *args: str) -> list[dict]:
    """Start ``count`` worker processes on the same store, open them together, release them together."""
    sync.mkdir(parents=True, exist_ok=True)
    spec = backend.spec(app_dir)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flowdapt.testing.conformance._store_worker", spec, str(sync), str(i), action, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    try:
        for name in ("started", "ready"):
            deadline = time.monotonic() + 90
            while not all((sync / f"{name}-{i}").exists() for i in range(count)):
                dead = [p for p in procs if p.poll() is not None]
                if dead:
                    out, err = dead[0].communicate()
                    raise AssertionError(f"worker exited early: {out} {err}")
                assert time.monotonic() < deadline, f"workers not {name} in time"
                time.sleep(0.005)
            (sync / ("go-open" if name == "started" else "go")).touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


class DocumentStoreConformance:
    """The document-store conformance cases; subclass it as ``Test...`` to collect them."""

    @pytest.fixture
    def backend(self, flowdapt_store_backend):
        if not HAVE_PYTEST_ASYNCIO:
            pytest.skip("the document-store conformance suite needs pytest-asyncio")
        return flowdapt_store_backend

    @pytest.fixture
    def app_dir(self, tmp_path, monkeypatch):
        import os

        for key in list(os.environ):
            if key.startswith("FLOWDAPT__"):
                monkeypatch.delenv(key)
        path = tmp_path / "app"
        path.mkdir()
        return path

    @async_fixture
    async def make_store(self, backend, app_dir):
        """Build another (unopened) handle on this test's store; each is closed at teardown."""
        made: list[DocumentStore] = []

        def make() -> DocumentStore:
            store = backend.make(app_dir)
            assert isinstance(store, DocumentStore)
            made.append(store)
            return store

        yield make
        for store in made:
            await store.close()

    @async_fixture
    async def store(self, make_store):
        s = make_store()
        await s.open()
        yield s
        await s.close()

    @pytest.fixture
    def require(self, backend, make_store):
        """``require("shared")``: skip unless the store declares the capability."""
        probe: list[DocumentStore] = []

        def check(capability: str) -> None:
            if not probe:
                probe.append(make_store())
            if not backend.capability(probe[0], capability):
                pytest.skip(f"{backend.test_id} is not {capability}")

        return check

    # -- resources: CRUD and lookups -----------------------------------------------------------

    @pytest.mark.parametrize("kind", KIND_NAMES)
    @pytest.mark.asyncio
    async def test_create_then_get_by_uid_and_by_name(self, store, kind):
        resource = make_resource(kind, "first")
        created = await store.create(resource)
        assert isinstance(created, KINDS[kind])
        assert same(created, resource)
        by_uid = await store.get(kind, str(resource.uid))
        by_name = await store.get(kind, "first")
        assert isinstance(by_uid, KINDS[kind]) and isinstance(by_name, KINDS[kind])
        assert same(by_uid, resource) and same(by_name, resource)
        assert by_uid.spec == resource.spec

    @pytest.mark.parametrize("kind", KIND_NAMES)
    @pytest.mark.asyncio
    async def test_get_missing_is_none(self, store, kind):
        await store.create(make_resource(kind, "present"))
        assert await store.get(kind, "absent") is None
        assert await store.get(kind, str(uuid4())) is None
        other = next(k for k in KIND_NAMES if k != kind)
        assert await store.get(other, "present") is None

    @pytest.mark.asyncio
    async def test_returned_objects_are_copies(self, store):
        resource = make_resource("config", "cfg")
        await store.create(resource)
        got = await store.get("config", "cfg")
        got.spec.data["alpha"] = 999
        got.metadata.annotations["team"] = "changed"
        again = await store.get("config", "cfg")
        assert again.spec.data["alpha"] == 1 and again.metadata.annotations["team"] == "ml"

    @pytest.mark.parametrize("kind", KIND_NAMES)
    @pytest.mark.asyncio
    async def test_list_is_creation_order_and_per_kind(self, store, kind):
        names = ["zeta", "alpha", "mid", "beta"]
        for name in names:
            await store.create(make_resource(kind, name))
        other = next(k for k in KIND_NAMES if k != kind)
        await store.create(make_resource(other, "elsewhere"))
        listed = await store.list(kind)
        assert [r.name for r in listed] == names
        assert all(isinstance(r, KINDS[kind]) for r in listed)
        assert [r.name for r in await store.list(other)] == ["elsewhere"]

    @pytest.mark.asyncio
    async def test_list_of_empty_kind(self, store):
        assert await store.list("workflow") == []

    @pytest.mark.parametrize("kind", KIND_NAMES)
    @pytest.mark.asyncio
    async def test_name_is_unique_per_kind(self, store, kind):
        await store.create(make_resource(kind, "dup"))
        with pytest.raises(ConflictError) as info:
            await store.create(make_resource(kind, "dup"))
        assert "dup" in str(info.value) and "already exists" in str(info.value)
        assert len(await store.list(kind)) == 1
        for other in KIND_NAMES:  # the same name in another kind is fine
            if other != kind:
                await store.create(make_resource(other, "dup"))
                assert (await store.get(other, "dup")).kind == other

    @pytest.mark.asyncio
    async def test_uid_is_unique_per_kind(self, store):
        first = make_resource("workflow", "one")
        await store.create(first)
        clone = make_resource("workflow", "two", uid=str(first.uid))
        with pytest.raises(ConflictError):
            await store.create(clone)
        assert [r.name for r in await store.list("workflow")] == ["one"]

    # -- resources: update and delete -----------------------------------------------------------

    @pytest.mark.parametrize("kind", KIND_NAMES)
    @pytest.mark.asyncio
    async def test_update_replaces_by_uid(self, store, kind):
        original = await store.create(make_resource(kind, "orig", annotations={"a": "1", "b": "2"}))
        await store.create(make_resource(kind, "later"))
        changed = original.model_copy(deep=True)
        changed.metadata.annotations = {"c": "3"}
        changed.metadata.updated_at = T0
        updated = await store.update(changed)
        assert same(updated, changed)
        got = await store.get(kind, str(original.uid))
        assert got.metadata.annotations == {"c": "3"}  # replaced wholesale, not merged
        assert got.metadata.updated_at == T0
        # Updating does not move it in creation order.
        assert [r.name for r in await store.list(kind)] == ["orig", "later"]

    @pytest.mark.asyncio
    async def test_update_renames(self, store):
        created = await store.create(make_resource("workflow", "old-name"))
        renamed = created.model_copy(deep=True)
        renamed.metadata.name = "new-name"
        await store.update(renamed)
        assert await store.get("workflow", "old-name") is None
        assert (await store.get("workflow", "new-name")).uid == created.uid
        # The old name is free again.
        await store.create(make_resource("workflow", "old-name"))

    @pytest.mark.asyncio
    async def test_update_renaming_onto_existing_name_conflicts(self, store):
        a = await store.create(make_resource("workflow", "a"))
        await store.create(make_resource("workflow", "b"))
        clash = a.model_copy(deep=True)
        clash.metadata.name = "b"
        with pytest.raises(ConflictError):
            await store.update(clash)
        assert (await store.get("workflow", str(a.uid))).name == "a"
        assert sorted(r.name for r in await store.list("workflow")) == ["a", "b"]

    @pytest.mark.asyncio
    async def test_update_missing_raises_not_found(self, store):
        with pytest.raises(ResourceNotFoundError):
            await store.update(make_resource("config", "ghost"))
        # Same uid under another kind is another resource.
        wf = await store.create(make_resource("workflow", "w"))
        as_config = make_resource("config", "w", uid=str(wf.uid))
        with pytest.raises(ResourceNotFoundError):
            await store.update(as_config)

    @pytest.mark.parametrize("kind", KIND_NAMES)
    @pytest.mark.asyncio
    async def test_delete_returns_deleted_resource(self, store, kind):
        a = await store.create(make_resource(kind, "a"))
        b = await store.create(make_resource(kind, "b"))
        deleted = await store.delete(kind, "a")
        assert isinstance(deleted, KINDS[kind]) and same(deleted, a)
        deleted = await store.delete(kind, str(b.uid))
        assert same(deleted, b)
        assert await store.list(kind) == []
        assert await store.delete(kind, "a") is None
        assert await store.delete(kind, str(uuid4())) is None
        await store.create(make_resource(kind, "a"))  # the name can be reused

    @pytest.mark.asyncio
    async def test_delete_only_touches_its_kind(self, store):
        await store.create(make_resource("workflow", "same"))
        await store.create(make_resource("config", "same"))
        assert (await store.delete("config", "same")).kind == "config"
        assert (await store.get("workflow", "same")) is not None

    # -- resources: concurrency ---------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_concurrent_tasks_creating_one_name_exactly_one_wins(self, store):
        async def attempt(i: int):
            try:
                return await store.create(make_resource("workflow", "contested", annotations={"i": str(i)}))
            except ConflictError as exc:
                return exc

        results = await asyncio.gather(*[attempt(i) for i in range(40)])
        winners = [r for r in results if not isinstance(r, ConflictError)]
        assert len(winners) == 1
        assert sum(isinstance(r, ConflictError) for r in results) == 39
        stored = await store.list("workflow")
        assert len(stored) == 1 and stored[0].uid == winners[0].uid

    @pytest.mark.asyncio
    async def test_concurrent_tasks_creating_distinct_names_all_land(self, store):
        await asyncio.gather(*[store.create(make_resource("config", f"c{i}")) for i in range(40)])
        assert sorted(r.name for r in await store.list("config")) == sorted(f"c{i}" for i in range(40))

    @pytest.mark.asyncio
    async def test_threads_sharing_one_store_one_name_exactly_one_wins(self, make_store):
        shared = make_store()
        await shared.open()
        results = await asyncio.to_thread(race_in_threads, [shared] * 8, _create_or_conflict)
        assert sorted(map(str, results)) == ["conflict"] * 7 + ["won"], results
        assert len(await shared.list("trigger_rule")) == 1
        await shared.close()

    @pytest.mark.asyncio
    async def test_threads_with_own_store_handles_one_name_exactly_one_wins(self, require, backend, make_store):
        require("shared")
        handles = [make_store() for _ in range(6)]
        results = await asyncio.to_thread(race_in_threads, handles, _create_or_conflict)
        assert sorted(map(str, results)) == ["conflict"] * 5 + ["won"], results
        check = make_store()
        await check.open()
        assert len(await check.list("trigger_rule")) == 1

    @pytest.mark.asyncio
    async def test_processes_racing_to_create_one_name_exactly_one_wins(self, require, backend, app_dir, tmp_path):
        require("shared")
        # The processes also open a brand-new store together (creating the schema concurrently).
        results = await asyncio.to_thread(
            _run_processes, backend, app_dir, tmp_path / "sync", 4, "create", "workflow", "contested"
        )
        outcomes = sorted(r["outcome"] for r in results)
        assert outcomes == ["conflict", "conflict", "conflict", "won"], results
        assert all("already exists" in r["error"] for r in results if r["outcome"] == "conflict")
        store = backend.make(app_dir)
        async with store:
            stored = await store.list("workflow")
            assert len(stored) == 1
            winner = next(r for r in results if r["outcome"] == "won")
            assert str(stored[0].uid) == winner["uid"]

    @pytest.mark.asyncio
    async def test_processes_writing_at_once_lose_nothing(self, require, backend, app_dir, tmp_path):
        require("shared")
        results = await asyncio.to_thread(
            _run_processes, backend, app_dir, tmp_path / "sync", 3, "create_many", "config", "bulk", "30"
        )
        assert all(r["outcome"] == "done" for r in results), results
        store = backend.make(app_dir)
        async with store:
            names = {r.name for r in await store.list("config")}
        assert names == {f"bulk-{p}-{i}" for p in range(3) for i in range(30)}

    # -- compare_and_set_annotation -----------------------------------------------------------

    @pytest.mark.asyncio
    async def test_compare_and_set_annotation_semantics(self, store):
        created = await store.create(make_resource("trigger_rule", "rule", annotations={"keep": "me"}))
        uid = str(created.uid)
        key = "flowdapt.ai/last_fired"
        assert await store.compare_and_set_annotation("trigger_rule", uid, key, None, "t1") is True
        assert await store.compare_and_set_annotation("trigger_rule", uid, key, None, "t2") is False
        assert await store.compare_and_set_annotation("trigger_rule", uid, key, "wrong", "t2") is False
        got = await store.get("trigger_rule", uid)
        assert got.metadata.annotations == {"keep": "me", key: "t1"}
        assert await store.compare_and_set_annotation("trigger_rule", uid, key, "t1", "t2") is True
        got = await store.get("trigger_rule", "rule")
        assert got.metadata.annotations == {"keep": "me", key: "t2"}
        # Nothing else changed.
        assert got.spec == created.spec and got.metadata.updated_at == created.metadata.updated_at
        # Missing resource (or another kind): nobody wins.
        assert await store.compare_and_set_annotation("trigger_rule", str(uuid4()), key, None, "x") is False
        assert await store.compare_and_set_annotation("workflow", uid, key, "t2", "x") is False

    @pytest.mark.asyncio
    async def test_compare_and_set_annotation_concurrent_tasks_one_winner(self, store):
        created = await store.create(make_resource("trigger_rule", "rule"))
        results = await asyncio.gather(
            *[
                store.compare_and_set_annotation("trigger_rule", str(created.uid), "flowdapt.ai/fired", None, f"w{i}")
                for i in range(30)
            ]
        )
        assert results.count(True) == 1
        winner = results.index(True)
        got = await store.get("trigger_rule", "rule")
        assert got.metadata.annotations["flowdapt.ai/fired"] == f"w{winner}"

    @pytest.mark.asyncio
    async def test_compare_and_set_annotation_concurrent_threads_one_winner(self, require, backend, make_store):
        require("shared")
        setup = make_store()
        await setup.open()
        created = await setup.create(make_resource("trigger_rule", "rule"))
        handles = [make_store() for _ in range(6)]

        async def cas(s, i):
            return await s.compare_and_set_annotation("trigger_rule", str(created.uid), "k", None, f"t{i}")

        results = await asyncio.to_thread(race_in_threads, handles, cas)
        assert results.count(True) == 1, results
        assert (await setup.get("trigger_rule", "rule")).metadata.annotations["k"] == f"t{results.index(True)}"

    @pytest.mark.asyncio
    async def test_compare_and_set_annotation_concurrent_processes_one_winner(self, require, backend, app_dir, tmp_path):
        require("shared")
        store = backend.make(app_dir)
        async with store:
            created = await store.create(make_resource("trigger_rule", "rule"))
        results = await asyncio.to_thread(
            _run_processes, backend, app_dir, tmp_path / "sync", 4, "cas", "trigger_rule", str(created.uid), "flowdapt.ai/fired"
        )
        assert sorted(r["outcome"] for r in results) == ["lost", "lost", "lost", "won"], results
        async with backend.make(app_dir) as again:
            value = (await again.get("trigger_rule", "rule")).metadata.annotations["flowdapt.ai/fired"]
        assert value == f"writer-{[r['outcome'] for r in results].index('won')}"

    # -- runs ---------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_run_create_get_by_uid_and_name(self, store):
        run = make_run(
            state="failed",
            result=["ValueError", "boom"],
            stages={"load": StageRun(state=StageState.failed, items_total=3, items_done=3, items_failed=1)},
            error=RunError(type="ValueError", message="boom", stage="load", traceback="tb"),
            finished_at=datetime(2024, 1, 1, 0, 1),
        )
        created = await store.create_run(run)
        assert isinstance(created, WorkflowRun) and same(created, run)
        assert same(await store.get_run(str(run.uid)), run)
        assert same(await store.get_run(run.name), run)
        assert await store.get_run("no-such-run") is None
        assert await store.get_run(str(uuid4())) is None

    @pytest.mark.asyncio
    async def test_run_create_duplicate_conflicts(self, store):
        run = await store.create_run(make_run())
        with pytest.raises(ConflictError):
            await store.create_run(run)
        with pytest.raises(ConflictError):  # another run with the same name
            await store.create_run(make_run(name=run.name))
        assert await store.count_runs() == 1

    @pytest.mark.asyncio
    async def test_update_run_replaces_and_upserts(self, store):
        run = await store.create_run(make_run(state="running", started_at=T0))
        run.state = RunState.finished
        run.finished_at = T0 + timedelta(seconds=5)
        run.result = {"answer": 42, "items": [1, 2, 3]}
        updated = await store.update_run(run)
        assert same(updated, run)
        got = await store.get_run(str(run.uid))
        assert got.state == RunState.finished and got.result == {"answer": 42, "items": [1, 2, 3]}
        assert got.duration == 5
        # The indexed columns follow the document.
        assert [r.uid for r in await store.list_runs(state="finished")] == [run.uid]
        assert await store.list_runs(state="running") == []
        # Absent: inserted.
        fresh = make_run(state="pending")
        await store.update_run(fresh)
        assert same(await store.get_run(fresh.name), fresh)
        assert await store.count_runs() == 2

    @pytest.mark.asyncio
    async def test_update_run_onto_another_runs_name_conflicts(self, store):
        a = await store.create_run(make_run())
        b = await store.create_run(make_run())
        b.name = a.name
        with pytest.raises(ConflictError):
            await store.update_run(b)

    @pytest.mark.asyncio
    async def test_delete_run_returns_it(self, store):
        run = await store.create_run(make_run())
        other = await store.create_run(make_run())
        assert same(await store.delete_run(run.name), run)
        assert same(await store.delete_run(str(other.uid)), other)
        assert await store.delete_run(run.name) is None
        assert await store.count_runs() == 0

    @pytest.mark.asyncio
    async def test_list_runs_newest_first_with_limit_and_offset(self, store):
        runs = [make_run(started_at=T0 + timedelta(minutes=i)) for i in (3, 0, 4, 1, 2)]
        for run in runs:
            await store.create_run(run)
        newest_first = sorted(runs, key=lambda r: r.started_at, reverse=True)
        assert [r.uid for r in await store.list_runs()] == [r.uid for r in newest_first]
        assert [r.uid for r in await store.list_runs(limit=2)] == [r.uid for r in newest_first[:2]]
        assert [r.uid for r in await store.list_runs(limit=2, offset=2)] == [r.uid for r in newest_first[2:4]]
        assert [r.uid for r in await store.list_runs(offset=4)] == [newest_first[4].uid]
        assert await store.list_runs(offset=10) == []
        assert await store.list_runs(limit=0) == []

    @pytest.mark.asyncio
    async def test_list_runs_pages_are_stable_with_equal_start_times(self, store):
        runs = [await store.create_run(make_run(started_at=T0)) for _ in range(7)]
        seen = []
        for offset in range(0, 7, 3):
            seen += [r.uid for r in await store.list_runs(limit=3, offset=offset)]
        assert sorted(map(str, seen)) == sorted(str(r.uid) for r in runs)
        assert len(set(seen)) == 7

    @pytest.mark.asyncio
    async def test_list_runs_filters_and_count(self, store):
        specs = [
            ("alpha", "finished", 0),
            ("alpha", "failed", 1),
            ("alpha", "running", 2),
            ("beta", "finished", 3),
            ("beta", "pending", 4),
            ("beta", "cancelled", 5),
        ]
        for workflow, state, minute in specs:
            await store.create_run(make_run(workflow, T0 + timedelta(minutes=minute), state))

        async def names(**filters):
            listed = await store.list_runs(**filters)
            counted = {k: v for k, v in filters.items() if k not in ("limit", "offset")}
            assert await store.count_runs(**counted) == len(await store.list_runs(**counted))
            return [(r.workflow, str(r.state)) for r in listed]

        assert await names(workflow="alpha") == [("alpha", "running"), ("alpha", "failed"), ("alpha", "finished")]
        assert await names(workflow="alpha", limit=1, offset=1) == [("alpha", "failed")]
        assert await names(state="finished") == [("beta", "finished"), ("alpha", "finished")]
        assert await names(state=RunState.pending) == [("beta", "pending")]
        assert await names(state=["failed", "cancelled"]) == [("beta", "cancelled"), ("alpha", "failed")]
        assert await names(state=[]) == await names()  # an empty list does not filter
        assert await names(since=T0 + timedelta(minutes=4)) == [("beta", "cancelled"), ("beta", "pending")]
        assert await names(workflow="beta", state=["finished", "pending"], since=T0 + timedelta(minutes=3, seconds=30)) == [
            ("beta", "pending")
        ]
        assert await names(workflow="gamma") == []
        assert await store.count_runs() == 6
        assert await store.count_runs(workflow="alpha", state=["finished", "running"]) == 2
        assert await store.count_runs(since=T0 + timedelta(minutes=10)) == 0

    @pytest.mark.asyncio
    async def test_delete_runs_before_removes_only_old_finished_runs(self, store):
        old_finished = await store.create_run(make_run(started_at=T0, state="finished"))
        old_failed = await store.create_run(make_run(started_at=T0 + timedelta(minutes=1), state="failed"))
        old_cancelled = await store.create_run(make_run(started_at=T0 + timedelta(minutes=2), state="cancelled"))
        old_running = await store.create_run(make_run(started_at=T0, state="running"))
        old_pending = await store.create_run(make_run(started_at=T0, state="pending"))
        new_finished = await store.create_run(make_run(started_at=T0 + timedelta(hours=1), state="finished"))
        deleted = await store.delete_runs_before(T0 + timedelta(minutes=30))
        assert deleted == 3
        remaining = {r.uid for r in await store.list_runs()}
        assert remaining == {old_running.uid, old_pending.uid, new_finished.uid}
        for gone in (old_finished, old_failed, old_cancelled):
            assert await store.get_run(str(gone.uid)) is None
        assert await store.delete_runs_before(T0 + timedelta(minutes=30)) == 0

    @pytest.mark.asyncio
    async def test_concurrent_run_writes(self, store):
        runs = [make_run(started_at=T0 + timedelta(seconds=i), state="running") for i in range(30)]
        await asyncio.gather(*[store.create_run(r) for r in runs])
        for r in runs:
            r.state = RunState.finished
        await asyncio.gather(*[store.update_run(r) for r in runs])
        assert await store.count_runs(state="finished") == 30
        assert [r.uid for r in await store.list_runs(limit=3)] == [r.uid for r in runs[::-1][:3]]

    # -- timestamps -------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_timestamps_are_naive_utc(self, store):
        plus_two = timezone(timedelta(hours=2))
        aware = datetime(2024, 3, 1, 14, 0, 0, 123456, tzinfo=plus_two)
        resource = make_resource("workflow", "tz", created_at=aware.isoformat(), updated_at=aware.isoformat())
        await store.create(resource)
        got = await store.get("workflow", "tz")
        assert got.metadata.created_at == datetime(2024, 3, 1, 12, 0, 0, 123456)
        assert got.metadata.created_at.tzinfo is None and got.metadata.updated_at.tzinfo is None
        assert got.to_document()["metadata"]["created_at"] == "2024-03-01T12:00:00.123456"

        run = make_run(started_at=aware, finished_at=aware + timedelta(seconds=1))
        await store.create_run(run)
        got_run = await store.get_run(run.name)
        assert got_run.started_at == datetime(2024, 3, 1, 12, 0, 0, 123456) and got_run.started_at.tzinfo is None
        assert got_run.finished_at.tzinfo is None
        # Aware `since`/`before` arguments are compared in UTC too.
        assert len(await store.list_runs(since=datetime(2024, 3, 1, 12, 0, tzinfo=UTC))) == 1
        assert len(await store.list_runs(since=datetime(2024, 3, 1, 14, 0, 1, tzinfo=plus_two))) == 0
        assert await store.count_runs(since=datetime(2024, 3, 1, 12, 0)) == 1
        assert await store.delete_runs_before(datetime(2024, 3, 1, 14, 0, tzinfo=plus_two)) == 0
        assert await store.delete_runs_before(datetime(2024, 3, 1, 14, 1, tzinfo=plus_two)) == 1

    # -- persistence ----------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_data_survives_close_and_reopen(self, require, backend, make_store):
        require("persistent")
        first = make_store()
        await first.open()
        resources = {kind: await first.create(make_resource(kind, f"keep-{kind}")) for kind in KIND_NAMES}
        await first.compare_and_set_annotation("trigger_rule", str(resources["trigger_rule"].uid), "k", None, "v")
        runs = [await first.create_run(make_run(started_at=T0 + timedelta(minutes=i))) for i in range(3)]
        await first.close()

        second = make_store()
        await second.open()
        for kind, resource in resources.items():
            got = await second.get(kind, f"keep-{kind}")
            assert got is not None and got.uid == resource.uid and got.spec == resource.spec
        assert (await second.get("trigger_rule", "keep-trigger_rule")).metadata.annotations["k"] == "v"
        assert [r.uid for r in await second.list_runs()] == [r.uid for r in reversed(runs)]
        with pytest.raises(ConflictError):  # constraints survive too
            await second.create(make_resource("workflow", "keep-workflow"))
        await second.close()

        # Reopening the same handle works as well.
        await second.open()
        assert len(await second.list("config")) == 1
        await second.close()


    # -- run queue: leases and cluster membership ----------------------------------------------
    # Lease times are judged by the store's clock; the tests only use lease lengths and sleeps.

    @pytest.fixture
    def queue(self, require, store):
        require("run_queue")
        return store

    @staticmethod
    async def _pending(store: DocumentStore, count: int, **extra) -> list[WorkflowRun]:
        # Created in this order; started_at runs backwards to show that claims follow creation.
        return [
            await store.create_run(make_run(state="pending", started_at=T0 - timedelta(minutes=i), **extra))
            for i in range(count)
        ]

    @pytest.mark.asyncio
    async def test_run_queue_claims_pending_runs_oldest_created_first_once(self, queue):
        pending = await self._pending(queue, 3)
        for state in ("running", "finished", "failed", "cancelled"):
            await queue.create_run(make_run(state=state))
        before = datetime.now(UTC).replace(tzinfo=None)
        first = await queue.claim_runs("a", 30, limit=2)
        assert [r.uid for r in first] == [r.uid for r in pending[:2]]
        assert all(isinstance(r, WorkflowRun) and str(r.state) == "pending" for r in first)
        assert same(first[0], pending[0])
        second = await queue.claim_runs("b", 30, limit=5)
        assert [r.uid for r in second] == [pending[2].uid]
        assert await queue.claim_runs("c", 30, limit=5) == []
        assert await queue.claim_runs("c", 30, limit=0) == []
        owner, expires = await queue.get_lease(str(pending[0].uid))
        assert owner == "a" and expires.tzinfo is None
        # The store's clock may differ a little from this process's: allow for it.
        assert timedelta(seconds=20) < expires - before < timedelta(seconds=40)
        assert (await queue.get_lease(str(pending[2].uid)))[0] == "b"
        assert await queue.get_lease(str(uuid4())) is None

    @pytest.mark.asyncio
    async def test_run_queue_claims_chosen_runs_only(self, queue):
        pending = await self._pending(queue, 3)
        wanted = str(pending[2].uid)
        (taken,) = await queue.claim_runs("canceller", 30, limit=5, uids=[wanted])
        assert str(taken.uid) == wanted and (await queue.get_lease(wanted))[0] == "canceller"
        assert await queue.claim_runs("other", 30, limit=5, uids=[wanted]) == []  # held now
        assert await queue.claim_runs("other", 30, limit=5, uids=[]) == []
        assert await queue.claim_runs("other", 30, limit=5, uids=[str(uuid4())]) == []
        rest = await queue.claim_runs("other", 30, limit=5)
        assert {str(r.uid) for r in rest} == {str(r.uid) for r in pending[:2]}

    @pytest.mark.asyncio
    async def test_run_queue_lease_stays_beside_the_document(self, queue):
        (run,) = await self._pending(queue, 1)
        (claimed,) = await queue.claim_runs("a", 30)
        claimed.state = RunState.running
        claimed.stages = {"load": StageRun(state=StageState.running)}
        await queue.update_run(claimed)
        assert (await queue.get_lease(str(run.uid)))[0] == "a"  # update_run keeps the lease
        got = await queue.get_run(str(run.uid))
        assert same(got, claimed)  # and the lease is not in the run's document
        # A run back in pending with a live lease is still held.
        claimed.state = RunState.pending
        await queue.update_run(claimed)
        assert await queue.claim_runs("b", 30) == []
        await queue.delete_run(str(run.uid))
        assert await queue.get_lease(str(run.uid)) is None
        assert await queue.claim_runs("b", 30) == []

    @pytest.mark.asyncio
    async def test_run_queue_renew_and_release(self, queue):
        runs = await self._pending(queue, 3)
        uids = [str(r.uid) for r in runs]
        assert {str(r.uid) for r in await queue.claim_runs("a", 30, limit=2)} == set(uids[:2])
        await queue.claim_runs("b", 30)
        assert await queue.renew_leases("a", uids + [str(uuid4())], 120) == set(uids[:2])
        owner, expires = await queue.get_lease(uids[0])
        assert owner == "a" and expires - datetime.now(UTC).replace(tzinfo=None) > timedelta(seconds=90)
        assert await queue.renew_leases("b", uids[:2], 60) == set()
        assert await queue.renew_leases("a", [], 60) == set()
        await queue.release_lease("b", uids[0])  # not b's: nothing happens
        assert (await queue.get_lease(uids[0]))[0] == "a"
        await queue.release_lease("a", uids[0])
        assert await queue.get_lease(uids[0]) is None
        await queue.release_lease("a", uids[0])  # twice is fine
        await queue.release_lease("a", str(uuid4()))
        # Released while still pending: another server can take it.
        assert [str(r.uid) for r in await queue.claim_runs("c", 30)] == [uids[0]]

    @pytest.mark.asyncio
    async def test_run_queue_expired_leases_are_taken_over(self, queue):
        runs = await self._pending(queue, 4)
        await queue.claim_runs("dead", 0.3, limit=3)  # a holder that will stop renewing
        await queue.claim_runs("alive", 60)
        running = await queue.get_run(str(runs[1].uid))
        running.state = RunState.running
        await queue.update_run(running)
        finished = await queue.get_run(str(runs[2].uid))
        finished.state = RunState.finished
        await queue.update_run(finished)
        assert await queue.claim_expired("heir", 30) == []  # not expired yet
        await asyncio.sleep(0.6)
        taken = await queue.claim_expired("heir", 30)
        # The expired pending and running runs, not the finished one nor the live lease.
        assert {str(r.uid) for r in taken} == {str(runs[0].uid), str(runs[1].uid)}
        assert {str(r.uid): str(r.state) for r in taken}[str(runs[1].uid)] == "running"
        assert (await queue.get_lease(str(runs[0].uid)))[0] == "heir"
        assert (await queue.get_lease(str(runs[3].uid)))[0] == "alive"
        assert await queue.claim_expired("other", 30) == []
        # The dead holder comes back: it no longer holds them.
        assert await queue.renew_leases("dead", [str(runs[0].uid), str(runs[1].uid)], 30) == set()
        await queue.release_lease("dead", str(runs[0].uid))
        assert (await queue.get_lease(str(runs[0].uid)))[0] == "heir"
        # A pending run whose lease expired is not claim_runs' (its holder may have started it):
        # claim_expired takes it; one never leased is not something claim_expired takes.
        fresh = await queue.create_run(make_run(state="pending"))
        await queue.claim_runs("brief", 0.2)
        await asyncio.sleep(0.4)
        assert await queue.claim_runs("next", 30, limit=5) == []
        assert [str(r.uid) for r in await queue.claim_expired("next", 30, limit=5)] == [str(fresh.uid)]
        late = await queue.create_run(make_run(state="pending"))
        assert str(late.uid) not in {str(r.uid) for r in await queue.claim_expired("x", 30, limit=50)}
        assert await queue.claim_expired("x", 30, limit=0) == []

    @pytest.mark.asyncio
    async def test_run_queue_concurrent_tasks_claim_each_run_once(self, queue):
        runs = await self._pending(queue, 12)
        results = await asyncio.gather(*[queue.claim_runs(f"o{i}", 30, limit=2) for i in range(20)])
        claimed = [str(r.uid) for batch in results for r in batch]
        assert sorted(claimed) == sorted(str(r.uid) for r in runs)

    @pytest.mark.asyncio
    async def test_run_queue_threads_with_own_handles_claim_each_run_once(self, require, queue, make_store):
        require("shared")
        runs = await self._pending(queue, 24)
        handles = [make_store() for _ in range(4)]

        async def drain(s, i):
            got = []
            while batch := await s.claim_runs(f"thread-{i}", 30, limit=1):
                got += [str(r.uid) for r in batch]
            return got

        results = await asyncio.to_thread(race_in_threads, handles, drain)
        assert not any(isinstance(r, Exception) for r in results), results
        claimed = [uid for got in results for uid in got]
        assert sorted(claimed) == sorted(str(r.uid) for r in runs)
        for i, got in enumerate(results):
            for uid in got:
                assert (await queue.get_lease(uid))[0] == f"thread-{i}"

    @pytest.mark.asyncio
    async def test_run_queue_processes_claim_each_run_exactly_once(self, require, queue, backend, app_dir, tmp_path):
        require("shared")
        runs = await self._pending(queue, 60)
        results = await asyncio.to_thread(_run_processes, backend, app_dir, tmp_path / "sync", 4, "claim", "30", "1")
        assert all(r["outcome"] == "done" for r in results), results
        claimed = [uid for r in results for uid in r["uids"]]
        assert len(claimed) == len(set(claimed)) == 60, "a run was claimed twice or not at all"
        assert set(claimed) == {str(r.uid) for r in runs}
        for index, result in enumerate(results):
            for uid in result["uids"][:5]:
                assert (await queue.get_lease(uid))[0] == f"worker-{index}"

    @pytest.mark.asyncio
    async def test_run_queue_processes_take_over_expired_runs_exactly_once(self, require, queue, backend, app_dir, tmp_path):
        require("shared")
        runs = await self._pending(queue, 30)
        assert len(await queue.claim_runs("killed", 0.2, limit=30)) == 30
        await asyncio.sleep(0.4)
        results = await asyncio.to_thread(
            _run_processes, backend, app_dir, tmp_path / "sync", 4, "claim_expired", "30", "2"
        )
        assert all(r["outcome"] == "done" for r in results), results
        taken = [uid for r in results for uid in r["uids"]]
        assert sorted(taken) == sorted(str(r.uid) for r in runs)
        for run in runs:
            assert (await queue.get_lease(str(run.uid)))[0].startswith("worker-")

    @pytest.mark.asyncio
    async def test_cluster_membership_heartbeats_and_expiry(self, queue):
        assert await queue.list_servers() == []
        info = {"name": "api-1", "host": "h1", "pid": 11, "services": ["api"], "url": "http://h1:8080",
                "started_at": "2024-05-01T12:00:00"}
        before = datetime.now(UTC).replace(tzinfo=None)
        await queue.heartbeat_server("s-b", info, 30)
        await queue.heartbeat_server("s-a", {**info, "name": "compute-1", "services": ["compute"]}, 30)
        listed = await queue.list_servers()
        assert [s["server_id"] for s in listed] == ["s-a", "s-b"]
        b = listed[1]
        assert {k: v for k, v in b.items() if k not in ("server_id", "last_seen")} == info
        assert b["last_seen"].tzinfo is None and abs(b["last_seen"] - before) < timedelta(seconds=10)
        # An upsert replaces the record.
        await queue.heartbeat_server("s-b", {**info, "services": ["api", "triggers"]}, 30)
        assert [s["services"] for s in await queue.list_servers()] == [["compute"], ["api", "triggers"]]
        # A short ttl that is not renewed: the server drops out of the listing.
        await queue.heartbeat_server("s-c", info, 0.2)
        assert len(await queue.list_servers()) == 3
        await asyncio.sleep(0.4)
        assert [s["server_id"] for s in await queue.list_servers()] == ["s-a", "s-b"]
        await queue.heartbeat_server("s-c", info, 30)  # back again
        assert len(await queue.list_servers()) == 3
        await queue.remove_server("s-a")
        await queue.remove_server("s-a")
        await queue.remove_server("never-there")
        assert [s["server_id"] for s in await queue.list_servers()] == ["s-b", "s-c"]

    @pytest.mark.asyncio
    async def test_cluster_membership_is_shared_between_handles(self, require, queue, make_store):
        require("shared")
        other = make_store()
        await other.open()
        await other.heartbeat_server("elsewhere", {"name": "x", "services": ["compute"]}, 30)
        assert [s["server_id"] for s in await queue.list_servers()] == ["elsewhere"]
        (run,) = await self._pending(queue, 1)
        assert [r.uid for r in await other.claim_runs("other", 30)] == [run.uid]
        assert await queue.claim_runs("here", 30) == []

    # -- run logs (capability ``run_logs``) -----------------------------------------------------

    @pytest.fixture
    def logs_store(self, store):
        if not getattr(store, "run_logs", False):
            pytest.skip(f"{type(store).__name__} does not store run logs (run_logs = False)")
        return store

    @pytest.mark.asyncio
    async def test_run_logs_round_trip_in_seq_order(self, logs_store):
        store = logs_store
        run = await store.create_run(make_run())
        uid = str(run.uid)
        records = [
            log_record(1, "load", "hello", time=1000.0),
            log_record(2, "map", "item line", item=7, time=1001.5),
            log_record(3, "map", "careful", stream="log", level=30, logger="user.mod", time=1002.0),
        ]
        await store.append_run_logs(uid, records[:2])
        await store.append_run_logs(uid, records[2:])
        got = await store.read_run_logs(uid)
        assert [r.seq for r in got] == [1, 2, 3]
        for want, have in zip(records, got, strict=True):
            assert (have.stage, have.item, have.stream, have.level, have.logger, have.message) == (
                want.stage, want.item, want.stream, want.level, want.logger, want.message,
            )
            assert abs(have.time - want.time) < 1e-3
        assert await store.read_run_logs(str(uuid4())) == []

    @pytest.mark.asyncio
    async def test_run_logs_filters(self, logs_store):
        store = logs_store
        uid = str((await store.create_run(make_run())).uid)
        await store.append_run_logs(
            uid,
            [
                log_record(1, "a", "a1", time=10.0),
                log_record(2, "b", "b1", level=30, stream="stderr", time=20.0),
                log_record(3, "a", "a2", level=40, stream="log", logger="x", time=30.0),
                log_record(4, "b", "b2", time=40.0),
            ],
        )

        async def seqs(**filters):
            return [r.seq for r in await store.read_run_logs(uid, **filters)]

        assert await seqs(stage="a") == [1, 3]
        assert await seqs(min_level=30) == [2, 3]
        assert await seqs(after_seq=2) == [3, 4]
        assert await seqs(since=25.0) == [3, 4]
        assert await seqs(limit=2) == [1, 2]
        assert await seqs(stage="b", after_seq=2, limit=5) == [4]
        assert await seqs(stage="none") == []

    @pytest.mark.asyncio
    async def test_run_logs_bound_drops_oldest_with_a_marker(self, logs_store):
        store = logs_store
        uid = str((await store.create_run(make_run())).uid)
        bound = 20_000
        seq = 0
        for _batch in range(10):
            batch = []
            for _ in range(50):
                seq += 1
                batch.append(log_record(seq, "noisy", f"line {seq} " + "x" * 100, time=float(seq)))
            await store.append_run_logs(uid, batch, max_bytes=bound)
        got = await store.read_run_logs(uid)
        marker, kept = got[0], got[1:]
        assert marker.seq == 0 and marker.stream == "flowdapt"
        assert sum(r.size for r in kept) <= bound
        assert kept[-1].seq == seq, "the newest records are kept"
        assert [r.seq for r in kept] == list(range(kept[0].seq, seq + 1)), "what is kept is contiguous"
        dropped = kept[0].seq - 1
        assert f"{dropped} earlier log record" in marker.message
        # A filtered read still says the log was cut; after_seq=0 leaves the marker out.
        assert (await store.read_run_logs(uid, stage="noisy", limit=1))[0].seq == 0
        assert (await store.read_run_logs(uid, after_seq=0, limit=1))[0].seq == kept[0].seq

    @pytest.mark.asyncio
    async def test_run_logs_marker_counts_what_the_caller_dropped(self, logs_store):
        store = logs_store
        uid = str((await store.create_run(make_run())).uid)
        await store.append_run_logs(uid, [log_record(5, "s", "kept", time=50.0)], max_bytes=10_000, dropped=(4, 400))
        got = await store.read_run_logs(uid)
        assert [r.seq for r in got] == [0, 5]
        assert got[0].message.startswith("4 earlier log record(s) (400 bytes)")
        # Later drops, the store's own and the caller's, add up in the one marker.
        await store.append_run_logs(uid, [log_record(6 + i, "s", "z" * 500, time=60.0 + i) for i in range(30)], max_bytes=10_000)
        await store.append_run_logs(uid, [], max_bytes=10_000, dropped=(1, 100))
        got = await store.read_run_logs(uid)
        marker, kept = got[0], got[1:]
        dropped_here = kept[0].seq - 5  # seq 5 and every seq before the first kept one
        assert marker.message.startswith(f"{4 + dropped_here + 1} earlier log record(s)")
        assert [r.seq for r in got if r.seq == 0] == [0]

    @pytest.mark.asyncio
    async def test_trim_run_logs(self, logs_store):
        store = logs_store
        uid = str((await store.create_run(make_run())).uid)
        await store.append_run_logs(uid, [log_record(i, "s", "y" * 200, time=float(i)) for i in range(1, 101)])
        assert await store.trim_run_logs(uid, 10**9) == 0
        dropped = await store.trim_run_logs(uid, 5_000)
        got = await store.read_run_logs(uid)
        assert dropped > 0 and got[0].seq == 0 and got[1].seq == dropped + 1
        assert sum(r.size for r in got[1:]) <= 5_000

    @pytest.mark.asyncio
    async def test_run_logs_go_with_their_run(self, logs_store):
        store = logs_store
        old = await store.create_run(make_run(started_at=T0, state="finished"))
        live = await store.create_run(make_run(started_at=T0, state="running"))
        deleted = await store.create_run(make_run(started_at=T0 + timedelta(days=2)))
        kept = await store.create_run(make_run(started_at=T0 + timedelta(days=2)))
        for run in (old, live, deleted, kept):
            await store.append_run_logs(str(run.uid), [log_record(1, "s", f"from {run.name}")], max_bytes=10_000)
        await store.delete_run(deleted.name)
        assert await store.read_run_logs(str(deleted.uid)) == []
        assert await store.delete_runs_before(T0 + timedelta(days=1)) == 1
        assert await store.read_run_logs(str(old.uid)) == []
        assert [r.message for r in await store.read_run_logs(str(live.uid))] == [f"from {live.name}"]
        assert await store.delete_run_logs(str(kept.uid)) == 1
        assert await store.read_run_logs(str(kept.uid)) == []
        assert await store.get_run(kept.name) is not None, "deleting a log leaves the run"
        # A run created again under a deleted run's uid starts with an empty log and fresh totals.
        await store.append_run_logs(str(kept.uid), [log_record(1, "s", "again")], max_bytes=10_000)
        assert [r.seq for r in await store.read_run_logs(str(kept.uid))] == [1]

    @pytest.mark.asyncio
    async def test_run_logs_store_any_text(self, logs_store):
        store = logs_store
        uid = str((await store.create_run(make_run())).uid)
        texts = [
            "bad \udcff\udcfe bytes",  # undecodable bytes as surrogate escapes
            "nul \x00 inside",
            "emoji \U0001f600 and accents éà",
            "",
        ]
        await store.append_run_logs(uid, [log_record(i + 1, "s", t) for i, t in enumerate(texts)])
        got = [r.message for r in await store.read_run_logs(uid)]
        assert got[0] == "bad \ufffd\ufffd bytes"
        assert got[1:] == texts[1:]

    @pytest.mark.asyncio
    async def test_run_logs_concurrent_appends_to_several_runs(self, logs_store):
        store = logs_store
        runs = [await store.create_run(make_run()) for _ in range(4)]

        async def write(run, n=25):
            for i in range(1, n + 1):
                await store.append_run_logs(str(run.uid), [log_record(i, "s", f"{run.name} {i}")], max_bytes=10**6)

        await asyncio.gather(*(write(r) for r in runs))
        for run in runs:
            got = await store.read_run_logs(str(run.uid))
            assert [r.message for r in got] == [f"{run.name} {i}" for i in range(1, 26)]


def log_record(
    seq: int,
    stage: str | None,
    message: str,
    *,
    item: int | None = None,
    stream: str = "stdout",
    level: int = 20,
    logger: str = "",
    time: float = 1_700_000_000.0,
):
    from flowdapt.storage import RunLogRecord

    return RunLogRecord(seq, time, stage, item, stream, level, logger, message)
