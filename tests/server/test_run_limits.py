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
