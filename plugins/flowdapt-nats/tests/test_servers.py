"""Two Flowdapt servers (API, compute and triggers each) on one database and one NATS broker: a
condition rule applied on one fires once per event across both trigger services, and the run it
requests is taken by one compute server."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import threading
import time

import httpx
import pytest
import uvicorn

from flowdapt.plugins import create_plugin_system
from flowdapt.server import FlowdaptServer, create_app
from flowdapt.settings import load_settings
from flowdapt_nats.bus import delete_streams

from .conftest import PLUGINS, free_port

STAGES = "flowdapt_nats_test_stages"


@pytest.fixture
def stages(tmp_path):
    package = tmp_path / "stages" / STAGES
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(
        """
        def produce(value: int = 42):
            return value

        def double(x):
            return 2 * x
        """
    ))
    sys.path.insert(0, str(tmp_path / "stages"))
    yield STAGES
    sys.path.remove(str(tmp_path / "stages"))


class Live:
    def __init__(self, app_dir, overrides):
        settings = load_settings(app_dir, overrides=overrides)
        plugins = create_plugin_system(load_entry_points=False, plugins=list(PLUGINS))
        self.server = FlowdaptServer(settings, plugins, "api,compute,triggers")
        app = create_app(settings, plugins, server=self.server)
        self.port = free_port()
        self.uvicorn = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.uvicorn.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.uvicorn.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def stop(self):
        self.http.close()
        self.uvicorn.should_exit = True
        self.thread.join(30)


@pytest.fixture
def cluster(tmp_path, stages, nats_url, nats_prefix, monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("FLOWDAPT__"):
            monkeypatch.delenv(key)
    prefix = f"{nats_prefix}_servers"
    overrides = {
        "executor.backend": "local",
        "executor.options": {"mode": "thread", "workers": 2},
        "cluster_memory.backend": "memory",
        "allowed_targets": [stages],
        "api.shutdown_timeout": 5,
        "triggers.resync_interval": 0,
        "database.backend": "sqlite",
        "database.options": {"path": str(tmp_path / "shared.db")},
        "event_bus.url": nats_url,
        "event_bus.options": {"prefix": prefix, "max_bytes": 8 * 1024 * 1024},
    }
    servers = []
    try:
        for i in range(2):
            servers.append(Live(tmp_path / f"app{i}", {**overrides, "name": f"server-{i}"}))
        yield servers
    finally:
        for live in servers:
            live.stop()
        asyncio.run(delete_streams(nats_url, prefix))


def runs_of(http, workflow):
    return http.get("/runs", params={"workflow": workflow, "limit": 1000}).json()["items"]


def test_a_condition_fires_once_across_two_trigger_services(cluster):
    one, two = cluster
    for doc in (
        {"kind": "workflow", "metadata": {"name": "wf_a"}, "spec": {"stages": [{"name": "p", "target": f"{STAGES}.produce"}]}},
        {"kind": "workflow", "metadata": {"name": "wf_b"}, "spec": {"stages": [{"name": "d", "target": f"{STAGES}.double"}]}},
        {"kind": "trigger_rule", "metadata": {"name": "a_then_b"}, "spec": {
            "type": "condition",
            "rule": {"and": [
                {"eq": [{"var": "type"}, "com.event.workflow.workflow_finished"]},
                {"eq": [{"var": "data.workflow"}, "wf_a"]},
            ]},
            "action": {"target": "run_workflow", "parameters": {"workflow": "wf_b", "input": {"x": {"var": "data.result"}}}},
        }},
    ):
        path = "/triggers/" if doc["kind"] == "trigger_rule" else "/workflows/"
        assert one.http.post(path, json=doc).status_code == 200
    # The second server learnt the rule from the bus (resource events fan out), not from a resync.
    deadline = time.monotonic() + 10
    while not two.server.service("triggers").engine.status(str(two.http.get("/triggers/a_then_b").json()["metadata"]["uid"])):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    n = 6
    for i in range(n):
        live = (one, two)[i % 2]
        assert live.http.post("/workflows/wf_a/run", json={"value": i}).json()["state"] == "finished"
    deadline = time.monotonic() + 30
    while len([r for r in runs_of(one.http, "wf_b") if r["state"] == "finished"]) < n:
        assert time.monotonic() < deadline, runs_of(one.http, "wf_b")
        time.sleep(0.05)
    time.sleep(1.5)  # a second firing would show up by now
    runs = runs_of(two.http, "wf_b")
    assert sorted(r["result"] for r in runs) == [2 * i for i in range(n)]  # once per event, no more
    assert all(r["triggered_by"]["rule"] == "a_then_b" for r in runs)
    fired = [live.server.service("triggers").engine.events_seen for live in cluster]
    assert sum(fired) >= n  # the events were split between the two trigger services


def listen(live, received, connected, until_uid_box):
    """Collect (type, data) from ``GET /events`` until a run_finished of the uid in the box."""
    with httpx.stream("GET", f"http://127.0.0.1:{live.port}/events", params={"workflow": "wf_a"}, timeout=30) as response:
        event = None
        for line in response.iter_lines():
            if line.startswith(": connected"):
                connected.set()
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                data = json.loads(line[6:])
                received.append((event, data))
                if event == "run_finished" and until_uid_box and data["uid"] == until_uid_box[0]:
                    return


def test_the_live_stream_of_any_api_server_shows_runs_of_any_compute_server(cluster):
    one, two = cluster
    doc = {"kind": "workflow", "metadata": {"name": "wf_a"}, "spec": {"stages": [{"name": "p", "target": f"{STAGES}.produce"}]}}
    assert one.http.post("/workflows/", json=doc).status_code == 200
    streams = []
    uid_box: list[str] = []
    for live in (one, two):
        received, connected = [], threading.Event()
        thread = threading.Thread(target=listen, args=(live, received, connected, uid_box), daemon=True)
        thread.start()
        assert connected.wait(10)
        streams.append((received, thread))
    # A run executed by server one (the API call runs it there) ...
    run = one.http.post("/workflows/wf_a/run", json={"value": 7}, params={"wait": False}).json()
    uid_box.append(run["uid"])
    for _, thread in streams:
        thread.join(15)
    (local, _), (remote, _) = streams
    # ... shows on server two's stream, from the bus, with its result ...
    remote_types = [t for t, d in remote if d["uid"] == run["uid"]]
    assert "run_started" in remote_types and remote_types[-1] == "run_finished", remote
    assert "stage_finished" in remote_types
    finished = [d for t, d in remote if t == "run_finished" and d["uid"] == run["uid"]][0]
    assert finished["state"] == "finished" and finished["result"] == 7 and finished["remote"] is True
    # ... and once on server one's own stream (its own bus events are not forwarded back to it).
    local_finished = [d for t, d in local if t == "run_finished" and d["uid"] == run["uid"]]
    assert len(local_finished) == 1 and "remote" not in local_finished[0]
