"""GET /runs/{id}/logs, its follow mode, the client and `flowdapt logs` against a live server."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest

from flowdapt.client import Client, NotFoundError

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))  # log_stages


def wf(name, *stages):
    return {"kind": "workflow", "metadata": {"name": name}, "spec": {"stages": list(stages)}}


def st(name, target, *, maps=False, depends_on=(), **options):
    doc = {"name": name, "target": f"log_stages.{target}", "depends_on": list(depends_on)}
    if maps:
        doc["type"] = "parameterized"
    if options:
        doc["options"] = options
    return doc


@pytest.fixture
def logs_server(make_server):
    def factory(**overrides):
        return make_server({"allowed_targets": ["log_stages"], **overrides})

    return factory


def apply_and_run(http, doc, run_input=None, wait=True):
    assert http.post("/workflows/", json=doc).status_code in (200, 201)
    response = http.post(f"/workflows/{doc['metadata']['name']}/run", params={"wait": wait}, json=run_input or {})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("database", ["sqlite", "memory"])
def test_logs_of_a_run_with_filters(logs_server, database):
    live = logs_server(**{"database.backend": database})
    with live.client() as http:
        run = apply_and_run(http, wf("w", st("start", "start"), st("each", "each", maps=True, depends_on=["start"])), {"n": 3})
        assert run["state"] == "finished"
        page = http.get(f"/runs/{run['name']}/logs").json()
        assert page["run"] == run["uid"] and page["state"] == "finished"
        items = page["items"]
        assert [(i["stage"], i["stream"], i["message"]) for i in items if i["stage"] == "start"] == [
            ("start", "stdout", "starting 3"),
            ("start", "log", "info from start"),
            ("start", "stderr", "to stderr"),
            ("start", "log", "Structured n=3"),
        ]
        assert sorted((i["item"], i["message"]) for i in items if i["stage"] == "each" and i["stream"] == "stdout") == [
            (k, f"item {k} done") for k in range(3)
        ]
        assert [i["seq"] for i in items] == list(range(1, len(items) + 1))
        assert all(i["time"] and "+" not in i["time"] for i in items)  # naive UTC
        assert page["last_seq"] == items[-1]["seq"]

        def messages(**params):
            return [i["message"] for i in http.get(f"/runs/{run['uid']}/logs", params=params).json()["items"]]

        assert messages(stage="start", level="WARNING") == ["to stderr"]
        assert len(messages(stage="each", level="warning")) == 3
        assert messages(after=items[-2]["seq"]) == [items[-1]["message"]]
        assert len(messages(limit=2)) == 2
        assert messages(since="2999-01-01T00:00:00") == []
        # The same under the original's run path.
        same = http.get(f"/workflows/run/{run['name']}/logs").json()
        assert same["items"] == items
        bad = http.get(f"/runs/{run['uid']}/logs", params={"level": "LOUD"})
        assert bad.status_code == 400 and "level" in bad.json()["detail"]


def test_logs_of_unknown_and_deleted_runs_are_404(logs_server):
    live = logs_server()
    with live.client() as http:
        run = apply_and_run(http, wf("w", st("start", "start")))
        assert http.get(f"/runs/{run['uid']}/logs").json()["items"]
        assert http.delete(f"/runs/{run['uid']}").status_code == 200
        for path in (f"/runs/{run['uid']}/logs", f"/runs/{run['name']}/logs", "/runs/nope/logs"):
            response = http.get(path)
            assert response.status_code == 404, path
            assert response.json()["status_code"] == 404
        assert http.get(f"/runs/{run['uid']}/logs", params={"follow": True}).status_code == 404
        # The store has nothing left for it either.
        assert stored_logs(live, run["uid"]) == []


def stored_logs(live, run_uid):
    """What the server's SQLite file holds for the run, read through a store of our own."""
    import asyncio

    from flowdapt.builtin.stores.sqlite import SQLiteStore

    async def read():
        async with SQLiteStore(live.settings.app_dir / "flowdapt.db") as store:
            return await store.read_run_logs(run_uid)

    return asyncio.run(read())


def test_retention_removes_logs_with_the_run(logs_server):
    live = logs_server(**{"compute.run_retention_duration": 2})
    with live.client() as http:
        run = apply_and_run(http, wf("w", st("start", "start")))
        assert http.get(f"/runs/{run['uid']}/logs").json()["items"]
        assert stored_logs(live, run["uid"])
        deadline = time.monotonic() + 15
        while http.get(f"/runs/{run['uid']}/logs").status_code != 404:
            assert time.monotonic() < deadline, "retention did not remove the run"
            time.sleep(0.3)
    assert stored_logs(live, run["uid"]) == []


def test_a_flood_is_bounded_with_a_marker_and_the_run_goes_on(logs_server):
    bound = 200_000
    live = logs_server(**{"logs.max_bytes_per_run": bound})
    with live.client() as http:
        run = apply_and_run(http, wf("flood", st("flood", "flood")), {"lines": 50_000})
        assert run["state"] == "finished" and run["result"] == 50_000
        items = http.get(f"/runs/{run['uid']}/logs", params={"limit": 100_000}).json()["items"]
    assert items[0]["stream"] == "flowdapt" and "dropped" in items[0]["message"]
    assert sum(len(i["message"]) + len(i["logger"]) + 64 for i in items[1:]) <= bound
    assert items[-1]["message"].startswith("49999 ")


def test_binary_output_is_stored_replaced(logs_server):
    live = logs_server()
    with live.client() as http:
        run = apply_and_run(http, wf("bin", st("bin", "binary")))
        messages = [i["message"] for i in http.get(f"/runs/{run['uid']}/logs").json()["items"]]
    assert messages == ["raw \ufffd\ufffd bytes", "lone \ufffd surrogate", "no newline at the end"]


def test_logs_can_be_turned_off(logs_server):
    live = logs_server(**{"logs.enabled": False})
    with live.client() as http:
        run = apply_and_run(http, wf("w", st("start", "start")))
        assert http.get(f"/runs/{run['uid']}/logs").json()["items"] == []


def test_follow_streams_a_live_run_and_ends_with_it(logs_server):
    live = logs_server()
    with live.client() as http:
        run = apply_and_run(http, wf("slow", st("slow", "slow_prints")), {"n": 5, "delay": 0.3}, wait=False)
        got, first_at, started = [], [], time.monotonic()
        with httpx.stream(
            "GET", f"{live.url}/runs/{run['uid']}/logs", headers={"Accept": "text/event-stream"}, timeout=30
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "log":
                    got.append(json.loads(line[6:])["message"])
                    if not first_at:
                        first_at.append(time.monotonic() - started)
                elif line.startswith("data: ") and event == "end":
                    break
        state = http.get(f"/runs/{run['uid']}").json()["state"]
    assert got == [f"tick {i}" for i in range(5)]
    assert state == "finished"
    # The stage runs 1.5 s; its first line is streamed while it runs, not when it ends.
    assert first_at[0] < 1.2, first_at


def test_client_and_cli(logs_server, tmp_path):
    from typer.testing import CliRunner

    from flowdapt.cli.main import _register_commands, app

    live = logs_server()
    with live.client() as http:
        run = apply_and_run(http, wf("w", st("start", "start"), st("each", "each", maps=True, depends_on=["start"])), {"n": 2})
    with Client(live.url) as client:
        page = client.run_logs(run["name"], stage="start")
        assert [i["message"] for i in page.items] == ["starting 2", "info from start", "to stderr", "Structured n=2"]
        assert page.last_seq == page.items[-1]["seq"]
        followed = list(client.follow_logs(run["uid"], level="WARNING"))
        assert [i["message"] for i in followed] == ["to stderr", "warn 0", "warn 1"] or sorted(
            i["message"] for i in followed
        ) == ["to stderr", "warn 0", "warn 1"]
        with pytest.raises(NotFoundError):
            client.run_logs("no-such-run")

    _register_commands()
    runner = CliRunner()
    result = runner.invoke(app, ["logs", run["name"], "--server", live.url, "--stage", "each"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.endswith("each[0] | item 0 done") for line in lines)
    assert any(line.endswith("each[1] | WARNING log_stages: warn 1") for line in lines)
    result = runner.invoke(app, ["logs", run["name"], "--server", live.url, "-f", "-o", "json", "--level", "ERROR"])
    assert result.exit_code == 0 and result.stdout == ""
    result = runner.invoke(app, ["logs", run["name"], "--server", live.url, "-f", "--stage", "start"])
    assert result.exit_code == 0 and "start | starting 2" in result.stdout, result.output
    result = runner.invoke(app, ["logs", "no-such-run", "--server", live.url])
    assert result.exit_code == 1 and "404" in result.output


def test_async_client_follows_a_live_run(logs_server):
    import asyncio

    from flowdapt.client import AsyncClient

    live = logs_server()
    with live.client() as http:
        run = apply_and_run(http, wf("slow", st("slow", "slow_prints")), {"n": 3, "delay": 0.2}, wait=False)

    async def follow():
        async with AsyncClient(live.url) as client:
            return [r["message"] async for r in client.follow_logs(run["name"])]

    assert asyncio.run(follow()) == ["tick 0", "tick 1", "tick 2"]


def test_since_filters_by_time(logs_server):
    from datetime import datetime, timedelta

    live = logs_server()
    with live.client() as http:
        run = apply_and_run(http, wf("w", st("start", "start")), {"n": 1})
        items = http.get(f"/runs/{run['uid']}/logs").json()["items"]
        last = datetime.fromisoformat(items[-1]["time"])
        later = http.get(f"/runs/{run['uid']}/logs", params={"since": (last + timedelta(seconds=1)).isoformat()}).json()
        assert later["items"] == []
        aware = (last - timedelta(hours=1)).isoformat() + "+00:00"
        assert len(http.get(f"/runs/{run['uid']}/logs", params={"since": aware}).json()["items"]) == len(items)


def test_the_server_bounds_what_waits_to_be_stored():
    """Records that pile up faster than the store takes them are cut to the bound in the server
    (oldest first, with a note), before the store bounds the run's log again."""
    import asyncio

    from flowdapt.server.run_logs import MemoryLogStore, RunLogWriter

    async def main():
        logs = MemoryLogStore()
        writer = RunLogWriter(logs, "run-1", max_bytes=10_000)
        for batch in range(20):
            writer.add("noisy", [(1.0 + i, 20, "stdout", "", i, f"b{batch} l{i} " + "x" * 90) for i in range(10)])
        assert writer.pending_bytes <= 10_000
        await writer.close()
        return await logs.read_run_logs("run-1")

    records = asyncio.run(main())
    marker, lines = records[0], records[1:]
    assert marker.seq == 0 and marker.stream == "flowdapt"
    # One count for everything dropped: in the server before storing, and by the store.
    assert marker.message.startswith(f"{200 - len(lines)} earlier log record(s)")
    assert lines[-1].message.startswith("b19 l9 ")
    assert sum(r.size for r in lines) <= 10_000
    seqs = [r.seq for r in lines]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
