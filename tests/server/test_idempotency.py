"""``Idempotency-Key`` on ``POST /workflows/{id}/run``: a client that got a timeout, a dropped
connection or a 5xx sends the request again with the same key and gets the run the key started,
never a second run (with and without the durable run queue, through REST, the Python client and
the CLI)."""

from __future__ import annotations

import threading

import pytest

from tests.server.conftest import STAGES
from tests.server.test_cli_client import cli

pytestmark = pytest.mark.timeout(120)


def _workflow(name: str) -> dict:
    return {"kind": "workflow", "metadata": {"name": name}, "spec": {"stages": [{"name": "s", "target": f"{STAGES}.sleep_then"}]}}


def _runs_of(http, workflow: str) -> list[dict]:
    return http.get(f"/workflows/{workflow}/run", params={"limit": 100}).json()


@pytest.mark.parametrize("queue", ["off", "on"])
def test_a_request_sent_again_with_its_key_answers_with_the_run_it_started(make_server, queue):
    live = make_server({"compute.run_queue": queue, "executor.options": {"mode": "thread", "workers": 4}})
    with live.client() as http:
        assert http.post("/workflows/", json=_workflow("once")).status_code == 200
        key = {"Idempotency-Key": "order-1234/attempt"}
        first = http.post("/workflows/once/run", params={"wait": "false"}, json={"seconds": 0.4}, headers=key)
        assert first.status_code == 200, first.text
        again = http.post("/workflows/once/run", params={"wait": "false"}, json={"seconds": 0.4}, headers=key)
        assert again.status_code == 200 and again.json()["uid"] == first.json()["uid"]
        waited = http.post("/workflows/once/run", json={"seconds": 0.4}, headers=key).json()  # wait=true: the run's end
        assert waited["uid"] == first.json()["uid"] and waited["state"] == "finished" and waited["result"] == 0.4
        assert [r["uid"] for r in _runs_of(http, "once")] == [first.json()["uid"]]
        # Without a key, or with another, every request is a new run.
        other = http.post("/workflows/once/run", json={"seconds": 0.0}, headers={"Idempotency-Key": "order-1235"}).json()
        plain = http.post("/workflows/once/run", json={"seconds": 0.0}).json()
        assert len({first.json()["uid"], other["uid"], plain["uid"]}) == 3
        assert len(_runs_of(http, "once")) == 3


def test_requests_with_one_key_at_the_same_moment_start_one_run(make_server):
    live = make_server({"compute.run_queue": "on", "executor.options": {"mode": "thread", "workers": 4}})
    with live.client() as http:
        assert http.post("/workflows/", json=_workflow("race")).status_code == 200
    answers: list = []

    def send() -> None:
        with live.client() as http:
            answers.append(http.post("/workflows/race/run", params={"wait": "false"}, json={"seconds": 0.2}, headers={"Idempotency-Key": "k-race"}))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers if a.status_code != 200]
    assert len({a.json()["uid"] for a in answers}) == 1
    with live.client() as http:
        assert len(_runs_of(http, "race")) == 1


def test_a_key_used_for_another_workflow_or_a_bad_key_is_refused(make_server):
    live = make_server({"executor.options": {"mode": "thread", "workers": 2}})
    with live.client() as http:
        for name in ("first-wf", "second-wf"):
            assert http.post("/workflows/", json=_workflow(name)).status_code == 200
        assert http.post("/workflows/first-wf/run", json={"seconds": 0.0}, headers={"Idempotency-Key": "shared"}).status_code == 200
        reused = http.post("/workflows/second-wf/run", json={"seconds": 0.0}, headers={"Idempotency-Key": "shared"})
        assert reused.status_code == 400 and "Idempotency-Key" in reused.text and "first-wf" in reused.text
        too_long = http.post("/workflows/second-wf/run", json={"seconds": 0.0}, headers={"Idempotency-Key": "k" * 256})
        assert too_long.status_code == 400 and "255" in too_long.text
        assert _runs_of(http, "second-wf") == []
        assert http.delete("/workflows/first-wf").status_code == 200
        gone = http.post("/workflows/first-wf/run", json={"seconds": 0.0}, headers={"Idempotency-Key": "shared"})
        assert gone.status_code == 404, gone.text  # as without a key: the workflow is gone


def test_the_python_client_and_the_cli_send_the_key(make_server):
    from flowdapt.client import Client

    live = make_server({"executor.options": {"mode": "thread", "workers": 2}})
    with Client(live.url) as client:
        client.create(_workflow("keyed"))
        run = client.run_workflow("keyed", {"seconds": 0.0}, idempotency_key="py-1")
        assert client.run_workflow("keyed", {"seconds": 0.0}, idempotency_key="py-1").uid == run.uid
        started = cli(live, "start", "keyed", "--input", "seconds=0", "--idempotency-key", "cli-1", "-o", "json")
        assert started.exit_code == 0, started.output
        again = cli(live, "start", "keyed", "--input", "seconds=0", "--idempotency-key", "cli-1", "-o", "json")
        assert again.exit_code == 0 and again.output == started.output
        assert len(client.list_workflow_runs("keyed")) == 2
