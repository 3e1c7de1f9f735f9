"""The document store contract (``flowdapt.storage.DocumentStore``): every store passes this.

Parameterized over ``stores.STORE_BACKENDS`` (SQLite, memory; plugins add theirs there). The
generic part uses only the ABC; the last section covers what is specific to the SQLite store
(file location, WAL, indexes, schema migrations, ``flowdapt db``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import uuid4

import pytest

from flowdapt.errors import ConfigurationError, ConflictError, ResourceNotFoundError
from flowdapt.plugins import create_plugin_system
from flowdapt.resources import KINDS, RunState, WorkflowRun
from flowdapt.resources.base import Resource
from flowdapt.resources.loader import parse_resource
from flowdapt.resources.run import RunError, StageRun, StageState
from flowdapt.storage import DocumentStore

HERE = Path(__file__).parent


def _load_stores_module():
    name = "flowdapt_conformance_stores"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "stores.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


stores = _load_stores_module()

KIND_NAMES = ("workflow", "config", "trigger_rule")


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(params=stores.selected_backends(), ids=lambda b: b.test_id)
def backend(request):
    reason = request.param.available()
    if reason:
        pytest.skip(f"{request.param.test_id}: {reason}")
    return request.param


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("FLOWDAPT__"):
            monkeypatch.delenv(key)
    path = tmp_path / "app"
    path.mkdir()
    return path


@pytest.fixture
async def make_store(backend, app_dir):
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


@pytest.fixture
async def store(make_store):
    s = make_store()
    await s.open()
    yield s
    await s.close()


def require(backend, capability: str) -> None:
    if not getattr(backend, capability):
        pytest.skip(f"{backend.test_id} is not {capability}")


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


# -- resources: CRUD and lookups -----------------------------------------------------------


@pytest.mark.parametrize("kind", KIND_NAMES)
async def test_create_then_get_by_uid_and_by_name(store, kind):
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
async def test_get_missing_is_none(store, kind):
    await store.create(make_resource(kind, "present"))
    assert await store.get(kind, "absent") is None
    assert await store.get(kind, str(uuid4())) is None
    other = next(k for k in KIND_NAMES if k != kind)
    assert await store.get(other, "present") is None


async def test_returned_objects_are_copies(store):
    resource = make_resource("config", "cfg")
    await store.create(resource)
    got = await store.get("config", "cfg")
    got.spec.data["alpha"] = 999
    got.metadata.annotations["team"] = "changed"
    again = await store.get("config", "cfg")
    assert again.spec.data["alpha"] == 1 and again.metadata.annotations["team"] == "ml"


@pytest.mark.parametrize("kind", KIND_NAMES)
async def test_list_is_creation_order_and_per_kind(store, kind):
    names = ["zeta", "alpha", "mid", "beta"]
    for name in names:
        await store.create(make_resource(kind, name))
    other = next(k for k in KIND_NAMES if k != kind)
    await store.create(make_resource(other, "elsewhere"))
    listed = await store.list(kind)
    assert [r.name for r in listed] == names
    assert all(isinstance(r, KINDS[kind]) for r in listed)
    assert [r.name for r in await store.list(other)] == ["elsewhere"]


async def test_list_of_empty_kind(store):
    assert await store.list("workflow") == []


@pytest.mark.parametrize("kind", KIND_NAMES)
async def test_name_is_unique_per_kind(store, kind):
    await store.create(make_resource(kind, "dup"))
    with pytest.raises(ConflictError) as info:
        await store.create(make_resource(kind, "dup"))
    assert "dup" in str(info.value) and "already exists" in str(info.value)
    assert len(await store.list(kind)) == 1
    for other in KIND_NAMES:  # the same name in another kind is fine
        if other != kind:
            await store.create(make_resource(other, "dup"))
            assert (await store.get(other, "dup")).kind == other


async def test_uid_is_unique_per_kind(store):
    first = make_resource("workflow", "one")
    await store.create(first)
    clone = make_resource("workflow", "two", uid=str(first.uid))
    with pytest.raises(ConflictError):
        await store.create(clone)
    assert [r.name for r in await store.list("workflow")] == ["one"]


# -- resources: update and delete -----------------------------------------------------------


@pytest.mark.parametrize("kind", KIND_NAMES)
async def test_update_replaces_by_uid(store, kind):
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


async def test_update_renames(store):
    created = await store.create(make_resource("workflow", "old-name"))
    renamed = created.model_copy(deep=True)
    renamed.metadata.name = "new-name"
    await store.update(renamed)
    assert await store.get("workflow", "old-name") is None
    assert (await store.get("workflow", "new-name")).uid == created.uid
    # The old name is free again.
    await store.create(make_resource("workflow", "old-name"))


async def test_update_renaming_onto_existing_name_conflicts(store):
    a = await store.create(make_resource("workflow", "a"))
    await store.create(make_resource("workflow", "b"))
    clash = a.model_copy(deep=True)
    clash.metadata.name = "b"
    with pytest.raises(ConflictError):
        await store.update(clash)
    assert (await store.get("workflow", str(a.uid))).name == "a"
    assert sorted(r.name for r in await store.list("workflow")) == ["a", "b"]


async def test_update_missing_raises_not_found(store):
    with pytest.raises(ResourceNotFoundError):
        await store.update(make_resource("config", "ghost"))
    # Same uid under another kind is another resource.
    wf = await store.create(make_resource("workflow", "w"))
    as_config = make_resource("config", "w", uid=str(wf.uid))
    with pytest.raises(ResourceNotFoundError):
        await store.update(as_config)


@pytest.mark.parametrize("kind", KIND_NAMES)
async def test_delete_returns_deleted_resource(store, kind):
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


async def test_delete_only_touches_its_kind(store):
    await store.create(make_resource("workflow", "same"))
    await store.create(make_resource("config", "same"))
    assert (await store.delete("config", "same")).kind == "config"
    assert (await store.get("workflow", "same")) is not None


# -- resources: concurrency ---------------------------------------------------------------


async def test_concurrent_tasks_creating_one_name_exactly_one_wins(store):
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


async def test_concurrent_tasks_creating_distinct_names_all_land(store):
    await asyncio.gather(*[store.create(make_resource("config", f"c{i}")) for i in range(40)])
    assert sorted(r.name for r in await store.list("config")) == sorted(f"c{i}" for i in range(40))


def _race_in_threads(stores_for_threads, action, *, open_first: bool = True):
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


async def test_threads_sharing_one_store_one_name_exactly_one_wins(make_store):
    shared = make_store()
    await shared.open()
    results = await asyncio.to_thread(_race_in_threads, [shared] * 8, _create_or_conflict)
    assert sorted(map(str, results)) == ["conflict"] * 7 + ["won"], results
    assert len(await shared.list("trigger_rule")) == 1
    await shared.close()


async def test_threads_with_own_store_handles_one_name_exactly_one_wins(backend, make_store):
    require(backend, "shared")
    handles = [make_store() for _ in range(6)]
    results = await asyncio.to_thread(_race_in_threads, handles, _create_or_conflict)
    assert sorted(map(str, results)) == ["conflict"] * 5 + ["won"], results
    check = make_store()
    await check.open()
    assert len(await check.list("trigger_rule")) == 1


def _run_processes(backend, app_dir: Path, sync: Path, count: int, action: str, *args: str) -> list[dict]:
    """Start ``count`` worker processes on the same store, open them together, release them together."""
    sync.mkdir(parents=True, exist_ok=True)
    spec = backend.spec(app_dir)
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_store_worker.py"), spec, str(sync), str(i), action, *args],
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


async def test_processes_racing_to_create_one_name_exactly_one_wins(backend, app_dir, tmp_path):
    require(backend, "shared")
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


async def test_processes_writing_at_once_lose_nothing(backend, app_dir, tmp_path):
    require(backend, "shared")
    results = await asyncio.to_thread(
        _run_processes, backend, app_dir, tmp_path / "sync", 3, "create_many", "config", "bulk", "30"
    )
    assert all(r["outcome"] == "done" for r in results), results
    store = backend.make(app_dir)
    async with store:
        names = {r.name for r in await store.list("config")}
    assert names == {f"bulk-{p}-{i}" for p in range(3) for i in range(30)}


# -- compare_and_set_annotation -----------------------------------------------------------


async def test_compare_and_set_annotation_semantics(store):
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


async def test_compare_and_set_annotation_concurrent_tasks_one_winner(store):
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


async def test_compare_and_set_annotation_concurrent_threads_one_winner(backend, make_store):
    require(backend, "shared")
    setup = make_store()
    await setup.open()
    created = await setup.create(make_resource("trigger_rule", "rule"))
    handles = [make_store() for _ in range(6)]

    async def cas(s, i):
        return await s.compare_and_set_annotation("trigger_rule", str(created.uid), "k", None, f"t{i}")

    results = await asyncio.to_thread(_race_in_threads, handles, cas)
    assert results.count(True) == 1, results
    assert (await setup.get("trigger_rule", "rule")).metadata.annotations["k"] == f"t{results.index(True)}"


async def test_compare_and_set_annotation_concurrent_processes_one_winner(backend, app_dir, tmp_path):
    require(backend, "shared")
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


async def test_run_create_get_by_uid_and_name(store):
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


async def test_run_create_duplicate_conflicts(store):
    run = await store.create_run(make_run())
    with pytest.raises(ConflictError):
        await store.create_run(run)
    with pytest.raises(ConflictError):  # another run with the same name
        await store.create_run(make_run(name=run.name))
    assert await store.count_runs() == 1


async def test_update_run_replaces_and_upserts(store):
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


async def test_update_run_onto_another_runs_name_conflicts(store):
    a = await store.create_run(make_run())
    b = await store.create_run(make_run())
    b.name = a.name
    with pytest.raises(ConflictError):
        await store.update_run(b)


async def test_delete_run_returns_it(store):
    run = await store.create_run(make_run())
    other = await store.create_run(make_run())
    assert same(await store.delete_run(run.name), run)
    assert same(await store.delete_run(str(other.uid)), other)
    assert await store.delete_run(run.name) is None
    assert await store.count_runs() == 0


async def test_list_runs_newest_first_with_limit_and_offset(store):
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


async def test_list_runs_pages_are_stable_with_equal_start_times(store):
    runs = [await store.create_run(make_run(started_at=T0)) for _ in range(7)]
    seen = []
    for offset in range(0, 7, 3):
        seen += [r.uid for r in await store.list_runs(limit=3, offset=offset)]
    assert sorted(map(str, seen)) == sorted(str(r.uid) for r in runs)
    assert len(set(seen)) == 7


async def test_list_runs_filters_and_count(store):
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


async def test_delete_runs_before_removes_only_old_finished_runs(store):
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


async def test_concurrent_run_writes(store):
    runs = [make_run(started_at=T0 + timedelta(seconds=i), state="running") for i in range(30)]
    await asyncio.gather(*[store.create_run(r) for r in runs])
    for r in runs:
        r.state = RunState.finished
    await asyncio.gather(*[store.update_run(r) for r in runs])
    assert await store.count_runs(state="finished") == 30
    assert [r.uid for r in await store.list_runs(limit=3)] == [r.uid for r in runs[::-1][:3]]


# -- timestamps -------------------------------------------------------------------------------


async def test_timestamps_are_naive_utc(store):
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


async def test_data_survives_close_and_reopen(backend, make_store):
    require(backend, "persistent")
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


# -- the registry covers every installed store --------------------------------------------------


def test_every_registered_store_is_covered():
    """Deliberately loads the installed plugins: a new document store must join the suite."""
    system = create_plugin_system()
    registered = set(system.names("document_stores"))
    covered = {b.name for b in stores.STORE_BACKENDS}
    missing = registered - covered
    assert not missing, (
        f"document store(s) {sorted(missing)} are registered but not in tests/conformance/stores.py STORE_BACKENDS"
    )


# =============================================================================================
# SQLite specifics
# =============================================================================================

from flowdapt.builtin.stores import migrations as sqlite_migrations  # noqa: E402
from flowdapt.builtin.stores.sqlite import SQLiteStore, SQLiteStoreOptions  # noqa: E402

#: The schema each *released* version created, frozen here as written at release time. A
#: migration is never edited once released; add the next version's DDL when you add a migration.
RELEASED_SCHEMAS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE resources (
            seq INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            uid TEXT NOT NULL,
            name TEXT NOT NULL,
            doc TEXT NOT NULL,
            CONSTRAINT resources_kind_uid UNIQUE (kind, uid),
            CONSTRAINT resources_kind_name UNIQUE (kind, name)
        )""",
        """CREATE TABLE runs (
            seq INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL UNIQUE,
            workflow TEXT NOT NULL,
            state TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            doc TEXT NOT NULL
        )""",
        "CREATE INDEX runs_workflow_started ON runs (workflow, started_at, seq)",
        "CREATE INDEX runs_started ON runs (started_at, seq)",
    ],
}


def _micros(value: datetime) -> int:
    return (value - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def build_v1_file(path: Path) -> dict:
    """A version-1 database written with raw sqlite3, as a v1 release would have left it."""
    workflow = make_resource("workflow", "legacy-wf")
    config = make_resource("config", "legacy-cfg")
    run = make_run("legacy-wf", T0, "finished", result={"x": 1})
    conn = sqlite3.connect(path)
    for statement in RELEASED_SCHEMAS[1]:
        conn.execute(statement)
    for resource in (workflow, config):
        conn.execute(
            "INSERT INTO resources (kind, uid, name, doc) VALUES (?, ?, ?, ?)",
            (resource.kind, str(resource.uid), resource.name, json.dumps(resource.to_document())),
        )
    conn.execute(
        "INSERT INTO runs (uid, name, workflow, state, started_at, doc) VALUES (?, ?, ?, ?, ?, ?)",
        (str(run.uid), run.name, run.workflow, "finished", _micros(run.started_at), run.model_dump_json()),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    return {"workflow": workflow, "config": config, "run": run}


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def _schema(conn: sqlite3.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").fetchall()
    return {name: " ".join(sql.split()) for name, sql in rows}


#: A migration that only exists in these tests: version 2 adds a `namespace` column to runs,
#: back-filled from each document, so an upgrade has to read and keep the old data.
def _backfill_namespace(conn: sqlite3.Connection) -> None:
    for seq, doc in conn.execute("SELECT seq, doc FROM runs").fetchall():
        conn.execute("UPDATE runs SET namespace = ? WHERE seq = ?", (json.loads(doc)["namespace"], seq))


TEST_V2 = sqlite_migrations.Migration(
    version=2,
    description="runs.namespace column (test only)",
    statements=(
        "ALTER TABLE runs ADD COLUMN namespace TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX runs_namespace ON runs (namespace)",
    ),
    python=_backfill_namespace,
)
WITH_V2 = (*sqlite_migrations.MIGRATIONS, TEST_V2)


@pytest.fixture
def plugin_system():
    from flowdapt.plugins import BUILTIN_PLUGINS

    return create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))


def _settings(app_dir: Path):
    from flowdapt.settings import load_settings

    return load_settings(app_dir=app_dir, config_file="-", create=False)


async def test_sqlite_is_the_default_backend_with_file_in_app_dir(app_dir, plugin_system):
    settings = _settings(app_dir)
    assert settings.database.backend == "sqlite"
    store = plugin_system.create("document_stores", settings.database.backend, settings.database.options, settings)
    assert isinstance(store, SQLiteStore)
    assert store.path == app_dir / "flowdapt.db"
    async with store:
        await store.create(make_resource("workflow", "w"))
    assert (app_dir / "flowdapt.db").is_file()


def test_sqlite_path_option(app_dir, tmp_path, plugin_system):
    settings = _settings(app_dir)
    relative = plugin_system.create("document_stores", "sqlite", {"path": "data/my.db"}, settings)
    assert relative.path == app_dir / "data" / "my.db"
    absolute = plugin_system.create("document_stores", "sqlite", {"path": str(tmp_path / "abs.db")}, settings)
    assert absolute.path == tmp_path / "abs.db"
    with pytest.raises(ConfigurationError, match="busy_timeout"):
        plugin_system.create("document_stores", "sqlite", {"busy_timeout": -1}, settings)
    with pytest.raises(ConfigurationError, match="memory"):
        plugin_system.create("document_stores", "sqlite", {"path": ":memory:"}, settings)
    with pytest.raises(ConfigurationError, match="nonsense"):
        plugin_system.create("document_stores", "sqlite", {"nonsense": 1}, settings)
    assert SQLiteStoreOptions().path is None


async def test_sqlite_wal_schema_and_indexes(tmp_path):
    path = tmp_path / "s.db"
    async with SQLiteStore(path) as store:
        await store.create(make_resource("workflow", "w"))
        await store.create_run(make_run("w"))
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_migrations.latest_version()
        schema = _schema(conn)
        # Frozen DDL of the latest released version == what the migrations create.
        expected = {}
        scratch = sqlite3.connect(":memory:")
        for statement in RELEASED_SCHEMAS[sqlite_migrations.latest_version()]:
            scratch.execute(statement)
        expected = _schema(scratch)
        assert schema == expected, "a released migration was edited: add a new migration instead"

        def plan(sql: str, *params) -> str:
            return " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))

        assert "sqlite_autoindex_resources" in plan("SELECT doc FROM resources WHERE kind = ? AND name = ?", "workflow", "w")
        assert "sqlite_autoindex_resources" in plan("SELECT doc FROM resources WHERE kind = ? AND uid = ?", "workflow", "u")
        assert "runs_workflow_started" in plan(
            "SELECT doc FROM runs WHERE workflow = ? ORDER BY started_at DESC, seq DESC LIMIT 10", "w"
        )
        listing = plan("SELECT doc FROM runs ORDER BY started_at DESC, seq DESC LIMIT 10")
        assert "runs_started" in listing and "TEMP B-TREE" not in listing
    finally:
        conn.close()


async def test_sqlite_released_schema_file_opens_without_data_loss(tmp_path):
    """A file left by the v1 release opens with this code (migrated forward if code is newer)."""
    path = tmp_path / "old.db"
    data = build_v1_file(path)
    async with SQLiteStore(path) as store:
        assert store.migrated_to == sqlite_migrations.latest_version()
        assert same(await store.get("workflow", "legacy-wf"), data["workflow"])
        assert same(await store.get("config", str(data["config"].uid)), data["config"])
        assert same(await store.get_run(data["run"].name), data["run"])
        assert [r.uid for r in await store.list_runs(workflow="legacy-wf")] == [data["run"].uid]
        with pytest.raises(ConflictError):
            await store.create(make_resource("workflow", "legacy-wf"))
    assert _user_version(path) == sqlite_migrations.latest_version()


async def test_sqlite_upgrades_older_file_forward_on_open(tmp_path):
    path = tmp_path / "old.db"
    data = build_v1_file(path)
    store = SQLiteStore(path, migrations=WITH_V2)
    assert store.schema_version == 2
    async with store:
        assert (store.migrated_from, store.migrated_to) == (1, 2)
        # Nothing lost, and the migration's back-fill used the old documents.
        assert same(await store.get("workflow", "legacy-wf"), data["workflow"])
        assert same(await store.get_run(str(data["run"].uid)), data["run"])
        await store.create_run(make_run("legacy-wf", T0 + timedelta(hours=1)))
        assert await store.count_runs(workflow="legacy-wf") == 2
    assert _user_version(path) == 2
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT namespace FROM runs WHERE name = ?", (data["run"].name,)).fetchone() == ("default",)
    conn.close()
    # A backup of the version-1 file was kept next to it.
    assert store.backup_path is not None and store.backup_path.name.startswith("old.db.v1-")
    assert _user_version(store.backup_path) == 1
    # Reopening does nothing more.
    async with SQLiteStore(path, migrations=WITH_V2) as again:
        assert (again.migrated_from, again.migrated_to) == (2, 2)


async def test_sqlite_newer_file_is_a_clear_error(tmp_path):
    path = tmp_path / "new.db"
    build_v1_file(path)
    async with SQLiteStore(path, migrations=WITH_V2):
        pass
    with pytest.raises(ConfigurationError, match="schema version 2.*newer release"):
        await SQLiteStore(path).open()


async def test_sqlite_failed_migration_leaves_file_untouched(tmp_path):
    path = tmp_path / "old.db"
    data = build_v1_file(path)
    broken = sqlite_migrations.Migration(
        version=2,
        description="broken",
        statements=("ALTER TABLE runs ADD COLUMN extra TEXT", "INSERT INTO no_such_table VALUES (1)"),
    )
    store = SQLiteStore(path, migrations=(*sqlite_migrations.MIGRATIONS, broken), backup_before_migrate=False)
    with pytest.raises(ConfigurationError, match="version 2.*broken.*left at version 1"):
        await store.open()
    assert _user_version(path) == 1
    conn = sqlite3.connect(path)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    conn.close()
    assert "extra" not in columns
    async with SQLiteStore(path) as plain:
        assert same(await plain.get("workflow", "legacy-wf"), data["workflow"])


async def test_sqlite_auto_migrate_off_requires_upgrade(tmp_path):
    path = tmp_path / "old.db"
    build_v1_file(path)
    store = SQLiteStore(path, migrations=WITH_V2, auto_migrate=False)
    with pytest.raises(ConfigurationError, match="flowdapt db upgrade"):
        await store.open()
    assert await store.stored_version() == 1
    assert await store.upgrade() == (1, 2)
    assert await store.upgrade() == (2, 2)
    assert (await store.get("workflow", "legacy-wf")) is not None
    await store.close()


async def test_sqlite_concurrent_openers_migrate_once(tmp_path):
    path = tmp_path / "old.db"
    build_v1_file(path)
    calls = []

    def count_and_backfill(conn):
        calls.append(1)
        _backfill_namespace(conn)

    v2 = sqlite_migrations.Migration(2, "counted", TEST_V2.statements, count_and_backfill)
    handles = [SQLiteStore(path, migrations=(*sqlite_migrations.MIGRATIONS, v2)) for _ in range(5)]

    async def noop(s, i):
        return (s.migrated_from, s.migrated_to)

    results = await asyncio.to_thread(_race_in_threads, handles, noop, open_first=False)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(calls) == 1
    assert sorted(results) == [(1, 2)] + [(2, 2)] * 4
    assert _user_version(path) == 2


async def test_sqlite_store_not_open_is_a_clear_error(tmp_path):
    store = SQLiteStore(tmp_path / "x.db")
    with pytest.raises(Exception, match="not open"):
        await store.list("workflow")


def _cli(app_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """The real ``flowdapt`` entry point in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from flowdapt.cli.main import main; main(sys.argv[1:])", "--app-dir", str(app_dir), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={k: v for k, v in __import__("os").environ.items() if not k.startswith("FLOWDAPT__")},
    )


@pytest.fixture
def db_cli(app_dir):
    """``flowdapt db ...`` in-process (the root options and the db sub-app, built-in plugins only)."""
    import typer
    from typer.testing import CliRunner

    from flowdapt.cli import db
    from flowdapt.cli.main import root

    app = typer.Typer()
    app.callback()(root)
    db.register(app)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["--app-dir", str(app_dir), "-o", "plugins.only=[document_stores]", "db", *args])

    return invoke


def test_cli_db_upgrade_through_the_flowdapt_command(app_dir):
    latest = sqlite_migrations.latest_version()
    result = _cli(app_dir, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert f"upgraded schema from version 0 to {latest}" in result.stdout
    assert _user_version(app_dir / "flowdapt.db") == latest


def test_cli_db_current_and_upgrade(app_dir, db_cli):
    latest = sqlite_migrations.latest_version()
    result = db_cli("current", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["current_version"] == 0
    assert not (app_dir / "flowdapt.db").exists()  # looking does not create it
    assert "not created yet" in db_cli("current").stdout

    result = db_cli("upgrade")
    assert result.exit_code == 0, result.stderr
    assert f"from version 0 to {latest}" in result.stdout
    assert _user_version(app_dir / "flowdapt.db") == latest

    result = db_cli("upgrade", "-o", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["from_version"] == data["to_version"] == data["latest_version"] == latest

    result = db_cli("current")
    assert result.exit_code == 0 and f"schema version {latest}" in result.stdout and "up to date" in result.stdout


def test_cli_db_upgrade_backs_up_and_migrates_an_older_file(app_dir, db_cli, monkeypatch):
    from flowdapt.builtin.stores import sqlite as sqlite_module

    data = build_v1_file(app_dir / "flowdapt.db")
    monkeypatch.setattr(sqlite_module._migrations, "MIGRATIONS", WITH_V2)
    result = db_cli("current")
    assert "schema version 1 (latest 2), pending migrations" in result.stdout
    result = db_cli("upgrade")
    assert result.exit_code == 0, result.stderr
    assert "upgraded schema from version 1 to 2" in result.stdout and ".v1-" in result.stdout
    async def check():
        async with SQLiteStore(app_dir / "flowdapt.db", migrations=WITH_V2) as store:
            assert same(await store.get("workflow", "legacy-wf"), data["workflow"])

    asyncio.run(check())


def test_cli_db_upgrade_refuses_newer_file(app_dir, db_cli):
    conn = sqlite3.connect(app_dir / "flowdapt.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    result = db_cli("upgrade")
    assert result.exit_code == 1
    assert "schema version 99" in result.stderr and "newer release" in result.stderr
    result = db_cli("current")
    assert result.exit_code == 0 and "newer than this Flowdapt" in result.stdout
