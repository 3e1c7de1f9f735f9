"""Limits on concurrent runs (executor.max_concurrent_runs, spec.max_active_runs): runs over the
limit wait ``pending`` in arrival order, never refused; a waiting run can be cancelled."""

from __future__ import annotations

import time

import pytest

from tests.server.conftest import STAGES

pytestmark = pytest.mark.timeout(120)


def _workflow(name: str, **spec) -> dict:
    return {"kind": "workflow", "metadata": {"name": name}, "spec": {"stages": [{"name": "s", "target": f"{STAGES}.sleep_then"}], **spec}}


def _state(http, name: str) -> str:
    return http.get(f"/runs/{name}").json()["state"]


def test_runs_over_a_workflows_limit_wait_pending_in_order(make_server):
    live = make_server({"executor.options": {"mode": "thread", "workers": 4}})
    with live.client() as http:
        assert http.post("/workflows/", json=_workflow("one-at-a-time", max_active_runs=1)).status_code == 200
        assert http.post("/workflows/", json=_workflow("free")).status_code == 200
        runs = [http.post("/workflows/one-at-a-time/run", params={"wait": "false"}, json={"seconds": 0.6}).json() for _ in range(3)]
        free = http.post("/workflows/free/run", params={"wait": "false"}, json={"seconds": 0.1}).json()
        time.sleep(0.3)
        assert [_state(http, r["name"]) for r in runs] == ["running", "pending", "pending"]
        assert live.server.runs.queue_position(runs[2]["uid"]) == 2
        assert _state(http, free["name"]) in ("running", "finished")  # another workflow is not held back
        cancelled = http.post(f"/runs/{runs[2]['name']}/cancel")
        assert cancelled.status_code == 200 and _state(http, runs[2]["name"]) == "cancelled"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _state(http, runs[1]["name"]) != "finished":
            time.sleep(0.1)
        done = [http.get(f"/runs/{r['name']}").json() for r in runs[:2]]
        assert [d["state"] for d in done] == ["finished", "finished"]
        # one after the other: the second started when the first finished
        first_end = done[0]["stages"]["s"]["finished_at"]
        assert done[1]["stages"]["s"]["started_at"] >= first_end


def test_the_servers_limit_holds_every_workflow(make_server):
    live = make_server({"executor.options": {"mode": "thread", "workers": 4}, "executor.max_concurrent_runs": 2})
    with live.client() as http:
        http.post("/workflows/", json=_workflow("a"))
        http.post("/workflows/", json=_workflow("b"))
        names = [http.post(f"/workflows/{w}/run", params={"wait": "false"}, json={"seconds": 0.5}).json()["name"] for w in "abab"]
        time.sleep(0.25)
        assert sorted(_state(http, n) for n in names) == ["pending", "pending", "running", "running"]
        waited = http.post("/workflows/a/run", json={"seconds": 0.05})  # wait=true still answers
        assert waited.status_code == 200 and waited.json()["state"] == "finished"


# -- where a waiting run stands: queue_position in the API, the Python client and the CLI -----------


def _cli(live, *args: str):
    from typer.testing import CliRunner

    from flowdapt.cli.main import _register_commands, app

    _register_commands()
    return CliRunner().invoke(app, list(args), env={"FLOWDAPT_SERVER": live.url})


def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_waiting_runs_show_their_place_in_the_queue(make_server):
    from flowdapt.client import Client, ServerRun

    live = make_server({"executor.options": {"mode": "thread", "workers": 4}, "executor.max_concurrent_runs": 1})
    with live.client() as http:
        assert http.post("/workflows/", json=_workflow("one-slot")).status_code == 200
        start = lambda seconds: http.post("/workflows/one-slot/run", params={"wait": "false"}, json={"seconds": seconds}).json()  # noqa: E731
        first, second = start(15), start(15)  # a cancelled run's thread sleeps on: short enough for the teardown
        # The answer to a wait=false start already says where the run waits.
        assert first["queue_position"] is None  # it took the free slot at once
        assert second["queue_position"] == 1
        started = _cli(live, "start", "one-slot", "-i", "seconds=0.05", "--no-wait")
        assert started.exit_code == 0, started.output
        assert " pending (queued, #2)" in started.output
        third = started.output.split()[0].removeprefix("run/")

        _wait_for(lambda: _state(http, first["name"]) == "running")
        assert http.get(f"/runs/{first['name']}").json()["queue_position"] is None
        assert http.get(f"/runs/{second['name']}").json()["queue_position"] == 1
        assert http.get(f"/workflows/run/{third}").json()["queue_position"] == 2  # the original's path too
        page = http.get("/runs", params={"workflow": "one-slot", "include_result": "false"}).json()
        assert {r["name"]: r["queue_position"] for r in page["items"]} == {first["name"]: None, second["name"]: 1, third: 2}
        listed = http.get("/workflows/one-slot/run").json()
        assert {r["name"]: r["queue_position"] for r in listed} == {first["name"]: None, second["name"]: 1, third: 2}

        with Client(live.url) as client:
            run = client.get_run(third)
            assert isinstance(run, ServerRun) and run.queue_position == 2
            assert [r.queue_position for r in client.list_runs(workflow="one-slot").items] == [2, 1, None]

        table = _cli(live, "runs", "--workflow", "one-slot")
        assert table.exit_code == 0, table.output
        rows = {line.split()[0]: line for line in table.output.splitlines()[1:] if line.strip()}
        assert "pending (queued, #1)" in rows[second["name"]] and "pending (queued, #2)" in rows[third]
        assert "running" in rows[first["name"]] and "queued" not in rows[first["name"]]
        assert "pending (queued, #1)" in _cli(live, "get", "run", second["name"]).output
        inspected = _cli(live, "inspect", "run", third)
        assert inspected.exit_code == 0, inspected.output
        assert inspected.output.startswith(f"# run/{third} pending (queued, #2)")
        import yaml

        assert yaml.safe_load(inspected.output)["queue_position"] == 2

        # The first run leaves (cancelled): the second starts, the third moves up.
        assert http.post(f"/runs/{first['name']}/cancel").status_code == 200
        _wait_for(lambda: _state(http, second["name"]) == "running")
        assert http.get(f"/runs/{second['name']}").json()["queue_position"] is None
        assert http.get(f"/runs/{third}").json()["queue_position"] == 1
        assert "pending (queued, #1)" in _cli(live, "runs", "-w", "one-slot").output
        assert http.post(f"/runs/{second['name']}/cancel").status_code == 200
        _wait_for(lambda: _state(http, third) == "finished")
        done = http.get(f"/runs/{third}").json()
        assert done["queue_position"] is None and done["result"] == 0.05
        assert "queued" not in _cli(live, "runs", "-w", "one-slot").output


def test_a_workflows_limit_gives_a_place_in_the_queue_too(make_server):
    live = make_server({"executor.options": {"mode": "thread", "workers": 4}})
    with live.client() as http:
        http.post("/workflows/", json=_workflow("solo", max_active_runs=1))
        runs = [http.post("/workflows/solo/run", params={"wait": "false"}, json={"seconds": 10}).json() for _ in range(2)]
        assert runs[1]["queue_position"] == 1
        assert http.post(f"/runs/{runs[1]['name']}/cancel").json()["queue_position"] is None  # cancelled while waiting
        assert http.get(f"/runs/{runs[1]['name']}").json()["state"] == "cancelled"
        http.post(f"/runs/{runs[0]['name']}/cancel")


def test_a_run_pending_unclaimed_in_the_run_queue_has_no_position(make_server):
    """With the durable run queue, a run the compute servers have not claimed waits in the
    database, where no server can tell its place cheaply: null (docs/concepts.md)."""
    live = make_server({"compute.run_queue": "on", "executor.options": {"mode": "thread", "workers": 4}, "executor.max_concurrent_runs": 1})
    with live.client() as http:
        http.post("/workflows/", json=_workflow("queued-db"))
        runs = [http.post("/workflows/queued-db/run", params={"wait": "false"}, json={"seconds": 10}).json() for _ in range(2)]
        _wait_for(lambda: _state(http, runs[0]["name"]) == "running")
        waiting = http.get(f"/runs/{runs[1]['name']}").json()
        assert waiting["state"] == "pending" and "queue_position" in waiting and waiting["queue_position"] is None
        for run in runs:
            http.post(f"/runs/{run['name']}/cancel")


# -- without limits: a run waiting for a busy Local worker --------------------------------------------


def test_a_run_waiting_for_a_busy_local_worker_is_pending_through_the_api(make_server):
    """No limit is set: the second run is handed to the executor at once, but its task waits for
    the only worker process. It shows pending (run and stage) until the worker takes it, and its
    stage's time is its own work, not the wait."""
    live = make_server({"executor.options": {"mode": "process", "workers": 1}})
    with live.client() as http:
        assert http.post("/workflows/", json=_workflow("one-worker")).status_code == 200
        busy = http.post("/workflows/one-worker/run", params={"wait": "false"}, json={"seconds": 2.0}).json()
        _wait_for(lambda: _state(http, busy["name"]) == "running")
        waiting = http.post("/workflows/one-worker/run", params={"wait": "false"}, json={"seconds": 0.3}).json()
        time.sleep(0.6)
        seen = http.get(f"/runs/{waiting['name']}").json()
        assert seen["state"] == "pending" and seen["stages"]["s"]["state"] == "pending", seen
        assert seen["stages"]["s"]["started_at"] is None
        _wait_for(lambda: _state(http, waiting["name"]) == "finished")
        stage = http.get(f"/runs/{waiting['name']}").json()["stages"]["s"]
        from datetime import datetime

        took = (datetime.fromisoformat(stage["finished_at"]) - datetime.fromisoformat(stage["started_at"])).total_seconds()
        assert 0.25 <= took < 1.2, stage
