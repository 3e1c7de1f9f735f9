"""The durable run queue across processes: an API server records a run, a compute server (another
process) claims and runs it; killed, drained and cancelled runs (docs/deployment.md)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.cluster.conftest import wait_for, workflow

pytestmark = pytest.mark.timeout(240)


def _run(http, name: str, body: dict | None = None, wait: bool = False) -> dict:
    response = http.post(f"/workflows/{name}/run", params={"wait": str(wait).lower()}, json=body or {})
    assert response.status_code == 200, response.text
    return response.json()


def test_an_api_server_records_a_run_and_a_compute_server_process_runs_it(cluster):
    api = cluster.add("api")
    compute = cluster.add("compute")
    servers = cluster.wait_ready(2)
    assert sorted(s["services"][0] for s in servers) == ["api", "compute"]
    with cluster.http(api) as http:
        applied = http.post("/workflows/", json=workflow("squares", ("make", "make", []), ("total", "total", ["make"])))
        assert applied.status_code == 200, applied.text
        done = _run(http, "squares", {"n": 5}, wait=True)
        assert done["state"] == "finished" and done["result"] == 10, done
        assert done["input"] == {"n": 5}
        started = _run(http, "squares", {"n": 4})
        assert started["state"] == "pending"
        final = wait_for(lambda: (r := http.get(f"/runs/{started['name']}").json())["state"] == "finished" and r, what="the run")
        assert final["result"] == 6
        status = http.get("/status").json()
        assert status["services"].get("ComputeService") is None  # not in this process
        assert {s["name"] for s in status["cluster"]["servers"]} == {api.name, compute.name}


def test_a_killed_compute_server_loses_its_run_to_another_within_the_lease(cluster):
    api = cluster.add("api")
    first = cluster.add("compute", "compute-a")
    cluster.wait_ready(2)
    with cluster.http(api) as http:
        http.post("/workflows/", json=workflow("long", ("sleep", "sleep_then", []), retries=1))
        http.post("/workflows/", json=workflow("once", ("sleep", "sleep_then", [])))
        retried = _run(http, "long", {"seconds": 10})
        failed = _run(http, "once", {"seconds": 30})
        wait_for(lambda: all(http.get(f"/runs/{r['name']}").json()["state"] == "running" for r in (retried, failed)), what="both running")
        second = cluster.add("compute", "compute-b")
        cluster.wait_ready(3)
        killed_at = time.monotonic()
        first.kill(signal.SIGKILL)
        # retries=1: run again on compute-b; retries=0: failed with the reason, within the lease.
        lost = wait_for(lambda: (r := http.get(f"/runs/{failed['name']}").json())["state"] == "failed" and r, timeout=30, what="the failed run")
        assert time.monotonic() - killed_at < 10  # lease 3 s: taken over well within 10 s
        assert "lease expired" in lost["error"]["message"] and "spec.retries" in lost["error"]["message"]
        final = wait_for(lambda: (r := http.get(f"/runs/{retried['name']}").json())["state"] == "finished" and r, timeout=40, what="the retried run")
        assert final["attempt"] == 1 and final["result"] == 10
        assert second.alive()


def test_cancel_reaches_the_compute_server_that_holds_the_run(cluster):
    if not cluster.bus:
        pytest.skip("cancel of a run held by another process travels on a shared event bus: needs flowdapt-nats")
    api = cluster.add("api")
    cluster.add("compute")
    cluster.wait_ready(2)
    with cluster.http(api) as http:
        http.post("/workflows/", json=workflow("long", ("sleep", "sleep_then", [])))
        run = _run(http, "long", {"seconds": 60})
        wait_for(lambda: http.get(f"/runs/{run['name']}").json()["state"] == "running", what="running")
        cancelled = http.post(f"/runs/{run['name']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert http.get(f"/runs/{run['name']}").json()["state"] == "cancelled"


def test_a_draining_compute_server_hands_its_runs_back_to_the_queue(cluster):
    api = cluster.add("api")
    first = cluster.add("compute", "compute-a")
    cluster.wait_ready(2)
    with cluster.http(api) as http:
        http.post("/workflows/", json=workflow("long", ("sleep", "sleep_then", [])))
        run = _run(http, "long", {"seconds": 8})
        wait_for(lambda: http.get(f"/runs/{run['name']}").json()["state"] == "running", what="running")
        cluster.add("compute", "compute-b")
        cluster.wait_ready(3)
        assert first.kill(signal.SIGTERM) == 0  # shutdown timeout 3 s < the run: handed back
        final = wait_for(lambda: (r := http.get(f"/runs/{run['name']}").json())["state"] == "finished" and r, timeout=40, what="the run on compute-b")
        assert final["attempt"] == 0 and final["result"] == 8
