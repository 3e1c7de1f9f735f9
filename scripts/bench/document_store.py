"""Document store benchmark: the calls the API server and the engine make, per store.

Columns, all measured in this run on this machine:

- ``sqlite``: the default SQLite store (WAL, writer thread + reader threads, off the event loop);
- ``memory``: the in-memory store (same JSON round trip, no database, no thread hop);
- ``raw sqlite3``: the baseline: the same SQL on one stdlib connection called directly on the event
  loop thread (blocking it) plus the same ``model_validate_json``; the least a SQLite-backed store
  can cost. ``sqlite`` minus this is the price of keeping the loop free.

Rows: ``list 10 workflows`` (GET /workflows/), ``get workflow by name`` (GET /workflows/{name}),
``run create+update`` (a run starting and finishing), ``list 10 runs of a workflow``
(GET /workflows/{id}/run) among 2,000 runs, and ``list x 8 tasks``: requests per second of
GET /workflows/ with 8 concurrent tasks (higher is better).

    .venv/bin/python scripts/bench/document_store.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import fmt_seconds, measure_async, print_table  # noqa: E402

from flowdapt.builtin.stores.memory import MemoryStore  # noqa: E402
from flowdapt.builtin.stores.sqlite import SQLiteStore  # noqa: E402
from flowdapt.resources import RunState, Workflow, WorkflowRun  # noqa: E402


def workflow(i: int) -> Workflow:
    stages = [{"name": f"s{j}", "target": "json.dumps", "depends_on": [f"s{j - 1}"] if j else []} for j in range(4)]
    return Workflow.model_validate(
        {"kind": "workflow", "metadata": {"name": f"wf-{i}", "annotations": {"team": "ml"}}, "spec": {"stages": stages}}
    )


class RawSQLite:
    """The baseline: blocking calls on the loop thread, same schema and queries."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA synchronous = NORMAL")  # as the store does

    async def list(self, kind: str):
        rows = self.conn.execute("SELECT doc FROM resources WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
        return [Workflow.model_validate_json(r[0]) for r in rows]

    async def get(self, kind: str, name: str):
        row = self.conn.execute("SELECT doc FROM resources WHERE kind = ? AND name = ?", (kind, name)).fetchone()
        return Workflow.model_validate_json(row[0])

    async def list_runs(self, *, workflow: str, limit: int):
        rows = self.conn.execute(
            "SELECT doc FROM runs WHERE workflow = ? ORDER BY started_at DESC, seq DESC LIMIT ?", (workflow, limit)
        ).fetchall()
        return [WorkflowRun.model_validate_json(r[0]) for r in rows]

    async def create_run(self, run: WorkflowRun):
        self.conn.execute(
            "INSERT INTO runs (uid, name, workflow, state, started_at, doc) VALUES (?, ?, ?, ?, ?, ?)",
            (str(run.uid), run.name, run.workflow, str(run.state), 0, run.model_dump_json()),
        )

    async def update_run(self, run: WorkflowRun):
        self.conn.execute(
            "UPDATE runs SET state = ?, doc = ? WHERE uid = ?", (str(run.state), run.model_dump_json(), str(run.uid))
        )


async def fill(store) -> None:
    for i in range(10):
        await store.create(workflow(i))
    t0 = datetime(2024, 1, 1)
    for i in range(2000):
        await store.create_run(WorkflowRun(workflow=f"wf-{i % 10}", started_at=t0 + timedelta(seconds=i), state="finished"))


async def bench(store, repeat: int) -> dict[str, float]:
    async def create_update():
        run = WorkflowRun(workflow="wf-1", state="running")
        await store.create_run(run)
        run.state = RunState.finished
        await store.update_run(run)

    out = {
        "list 10 workflows": await measure_async(lambda: store.list("workflow"), repeat),
        "get workflow by name": await measure_async(lambda: store.get("workflow", "wf-5"), repeat),
        "run create+update": await measure_async(create_update, repeat // 2),
        "list 10 runs of a workflow": await measure_async(lambda: store.list_runs(workflow="wf-3", limit=10), repeat),
    }

    async def worker(n: int):
        for _ in range(n):
            await store.list("workflow")

    per_task = repeat // 4
    start = time.perf_counter()
    await asyncio.gather(*[worker(per_task) for _ in range(8)])
    out["list x 8 tasks"] = 8 * per_task / (time.perf_counter() - start)
    return out


async def main(quick: bool) -> None:
    repeat = 300 if quick else 2000
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_store = SQLiteStore(Path(tmp) / "bench.db")
        async with sqlite_store:
            await fill(sqlite_store)
            results["sqlite"] = await bench(sqlite_store, repeat)
            raw = RawSQLite(sqlite_store.path)
            results["raw sqlite3"] = await bench(raw, repeat)
            raw.conn.close()
        memory = MemoryStore()
        await fill(memory)
        results["memory"] = await bench(memory, repeat)

    columns = ["sqlite", "memory", "raw sqlite3"]
    rows = []
    for op in results["sqlite"]:
        if op == "list x 8 tasks":  # a rate: the cost ratio is raw / sqlite
            cells = [f"{results[c][op]:,.0f}/s" for c in columns]
            ratio = results["raw sqlite3"][op] / results["sqlite"][op]
        else:
            cells = [fmt_seconds(results[c][op]) for c in columns]
            ratio = results["sqlite"][op] / results["raw sqlite3"][op]
        rows.append([op, *cells, f"{ratio:.2f}x"])
    print_table(["operation", *columns, "sqlite cost vs raw"], rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    asyncio.run(main(parser.parse_args().quick))
