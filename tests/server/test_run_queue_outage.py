"""The durable run queue when the database goes away at the worst moments (a real server, a real
SQLite store, with faults injected into that store's calls for a moment):

- between claiming a run and starting it: nothing of the run ran, so it goes back to the queue
  and runs once, not recorded ``failed`` as a run of a stopped server;
- after a run ended but before its final state is stored, for longer than the lease: the run is
  still this server's, so its own reaper must not fail it.

A run that cannot start for a reason waiting will not fix (its workflow was deleted) is recorded
``failed`` with that reason.

The many-process version (PostgreSQL behind a proxy that drops every connection) is
tests/cluster/test_faults.py; these pin each window down without depending on timing luck.
"""

from __future__ import annotations

import time

import pytest

from flowdapt.errors import StorageUnavailableError
from tests.server.conftest import STAGES

pytestmark = pytest.mark.timeout(90)

QUEUE = {
    "compute.run_queue": "on",
    "compute.lease_seconds": 1.5,
    "compute.queue_poll_seconds": 0.2,
    "executor.options": {"mode": "thread", "workers": 2},
    "executor.max_concurrent_runs": 1,
}


def _workflow(name: str) -> dict:
    return {"kind": "workflow", "metadata": {"name": name}, "spec": {"stages": [{"name": "s", "target": f"{STAGES}.sleep_then"}]}}


def _busy_then_waiting(http, workflow: str) -> tuple[dict, dict]:
    """Applies ``workflow`` and starts two runs: the first holds the one slot (0.6 s), so the
    second waits in the database until the claim loop takes it when the first ends."""
    assert http.post("/workflows/", json=_workflow(workflow)).status_code == 200
    first = http.post(f"/workflows/{workflow}/run", params={"wait": "false"}, json={"seconds": 0.6}).json()
    second = http.post(f"/workflows/{workflow}/run", params={"wait": "false"}, json={"seconds": 0.1}).json()
    return first, second


def _settle(http, names: list[str], timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        runs = [http.get(f"/runs/{name}").json() for name in names]
        if all(run["state"] not in ("pending", "running") for run in runs) or time.monotonic() > deadline:
            return runs
        time.sleep(0.1)


class Faults:
    """Makes chosen store calls raise StorageUnavailableError (what the PostgreSQL store raises
    when its connections drop), as many times as asked, and counts the stopped-run verdicts."""

    def __init__(self, monkeypatch, live):
        self.store = live.server.store
        self.monkeypatch = monkeypatch
        self.left: dict[str, int] = {}
        self.stopped: list[str] = []
        real_stop = live.server.runs.mark_stopped

        def mark_stopped(run, reason, state=None):
            self.stopped.append(f"{run.name}: {reason}")
            return real_stop(run, reason, state)

        monkeypatch.setattr(live.server.runs, "mark_stopped", mark_stopped)

    def fail(self, method: str, times: int, when=lambda *args: True) -> None:
        real = getattr(self.store, method)
        self.left[method] = times

        async def failing(*args, **kwargs):
            if self.left[method] > 0 and when(*args):
                self.left[method] -= 1
                raise StorageUnavailableError(f"injected: the database is unreachable ({method})")
            return await real(*args, **kwargs)

        self.monkeypatch.setattr(self.store, method, failing)


def test_a_run_whose_start_meets_an_outage_goes_back_to_the_queue_and_runs_once(make_server, monkeypatch):
    live = make_server(QUEUE)
    faults = Faults(monkeypatch, live)
    with live.client() as http:
        # The second run's start reads the workflow, and the database is away; giving the lease
        # back fails too (the heartbeat gives it back later).
        first, second = _busy_then_waiting(http, "outage-start")
        faults.fail("get", 1, lambda kind, *rest: kind == "workflow")
        faults.fail("release_lease", 1, lambda owner, uid: uid == second["uid"])
        runs = _settle(http, [first["name"], second["name"]])
    assert [run["state"] for run in runs] == ["finished", "finished"], runs
    assert faults.left == {"get": 0, "release_lease": 0}, "the outage was not met"
    assert runs[1]["attempt"] == 0 and runs[1]["error"] is None
    assert not faults.stopped and not live.server.runs.unstarted


def test_a_run_whose_final_write_waits_out_its_lease_is_not_failed_by_its_own_server(make_server, monkeypatch):
    live = make_server(QUEUE)
    faults = Faults(monkeypatch, live)
    with live.client() as http:
        assert http.post("/workflows/", json=_workflow("outage-end")).status_code == 200
        # The run ends, its final write fails for about 3.75 s (retries at 0.25, 0.75, 1.75, 3.75 s),
        # and the lease heartbeats fail meanwhile: the lease (1.5 s) expires in the database and
        # this server's reaper claims it while the run still waits to be recorded.
        faults.fail("update_run", 4, lambda run: run.state.value == "finished")
        faults.fail("renew_leases", 6)
        run = http.post("/workflows/outage-end/run", params={"wait": "false"}, json={"seconds": 0.3}).json()
        (done,) = _settle(http, [run["name"]])
        deadline = time.monotonic() + 10
        while live.server.runs.active and time.monotonic() < deadline:
            time.sleep(0.1)
        stored = http.get(f"/runs/{run['name']}").json()
    assert faults.left["update_run"] == 0, "the final write never met the outage"
    assert done["state"] == stored["state"] == "finished" and stored["error"] is None, stored
    assert not faults.stopped, faults.stopped


def test_a_queued_run_whose_workflow_was_deleted_fails_with_the_reason(make_server, monkeypatch):
    live = make_server(QUEUE)
    faults = Faults(monkeypatch, live)
    with live.client() as http:
        first, second = _busy_then_waiting(http, "gone-before-start")
        assert http.delete("/workflows/gone-before-start").status_code == 200
        runs = _settle(http, [first["name"], second["name"]])
    assert runs[0]["state"] == "finished" and runs[1]["state"] == "failed", runs
    assert runs[1]["error"]["type"] == "ResourceNotFoundError" and "deleted before the run started" in runs[1]["error"]["message"]
    assert not faults.stopped and not live.server.runs.unstarted


def test_runs_a_claim_leased_here_before_its_answer_was_lost_are_started_not_failed(make_server, monkeypatch):
    """The claim's UPDATE commits and the connection drops before its answer comes back (what a
    database restart does to a statement in flight): the runs are leased to this server, which
    never heard of them. It finds them by their lease and starts them; their leases do not run out
    into a "server stopped" failure."""
    live = make_server(QUEUE)
    faults = Faults(monkeypatch, live)
    store = live.server.store
    real_claim = store.claim_runs
    lost: list[str] = []

    async def claim_then_lose_the_answer(owner, lease_seconds, limit=1, **kwargs):
        claimed = await real_claim(owner, lease_seconds, limit, **kwargs)
        if claimed and not lost and "uids" not in kwargs:
            lost.extend(str(run.uid) for run in claimed)
            raise StorageUnavailableError("injected: the connection dropped after the claim committed")
        return claimed

    with live.client() as http:
        monkeypatch.setattr(store, "claim_runs", claim_then_lose_the_answer)
        first, second = _busy_then_waiting(http, "lost-claim")
        runs = _settle(http, [first["name"], second["name"]])
    assert lost == [second["uid"]], "the claim of the waiting run did not meet the fault"
    assert [run["state"] for run in runs] == ["finished", "finished"], runs
    assert runs[1]["attempt"] == 0 and runs[1]["error"] is None
    assert not faults.stopped, faults.stopped
