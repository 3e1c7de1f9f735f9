"""Wire details the original's clients depend on, over real HTTP.

A client that negotiated ``v1alpha1`` (flowctl, flowdapt-sdk, the TypeScript SDK and the
dashboard built on it) only ever sees values its schema has; ``/metrics`` carries the metric names
and point attributes the original dashboard charts; ``/status`` reports nodes as a list; plugins
are named by distribution for v1alpha1; ``.pth`` files are never plugin files.
"""

from __future__ import annotations

import time

import httpx
import psutil
import pytest

from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.server.metrics import Metrics
from flowdapt.server.versioning import render
from tests.server.conftest import (
    STAGES,
    install_fake_plugin_distribution,
    make_settings,
    squares_workflow,
    start_server,
    workflow_doc,
)

pytestmark = pytest.mark.timeout(120)

V1 = {"X-API-Version": "workflow_run.v1alpha1"}

# The enums of the original's v1alpha1 schemas, as @emergentmethods/flowdapt-ts-sdk 1.0.8 has them (zod).
TS_RUN_STATES = {"pending", "running", "finished", "failed"}
TS_STAGE_TYPES = {"simple", "parameterized"}
TS_TRIGGER_TYPES = {"schedule", "condition"}
TS_SELECTOR_TYPES = {"annotation", "name"}


def assert_v1alpha1_run(run: dict) -> None:
    assert run["state"] in TS_RUN_STATES, run
    assert isinstance(run["uid"], str) and isinstance(run["name"], str) and isinstance(run["workflow"], str)


def start_cancelled_run(http: httpx.Client) -> dict:
    http.post("/workflows/", json=workflow_doc("sleepy", [{"name": "s", "target": f"{STAGES}.sleep_then"}])).raise_for_status()
    pending = http.post("/workflows/sleepy/run", params={"wait": "false"}, json={"seconds": 3}).json()
    deadline = time.monotonic() + 10
    while http.get(f"/runs/{pending['uid']}").json()["state"] == "pending":
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.02)
    cancelled = http.post(f"/runs/{pending['uid']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    return cancelled.json()


def test_a_cancelled_run_reads_as_failed_for_v1alpha1_and_cancelled_for_newer(http):
    run = start_cancelled_run(http)
    uid = run["uid"]

    old = http.get(f"/workflows/run/{uid}", headers=V1)
    assert old.headers["x-api-version"] == "v1alpha1"
    assert old.headers["content-type"] == "application/vnd.flowdapt.ai.workflow_run.v1alpha1+json"
    body = old.json()
    assert_v1alpha1_run(body)
    assert body["state"] == "failed"
    assert body["result"] == ["RunCancelledError", "run cancelled"]  # the cancellation as its error
    assert body["error"]["type"] == "RunCancelledError" and body["finished_at"]

    # Accept alone negotiates the same way (the SDKs send both).
    accept = http.get(f"/workflows/run/{uid}", headers={"Accept": "application/vnd.flowdapt.ai.workflow_run.v1alpha1+json"})
    assert accept.headers["x-api-version"] == "v1alpha1" and accept.json()["state"] == "failed"

    # Every read path of the original: a workflow's run list and the delete response too.
    listed = http.get("/workflows/sleepy/run", headers=V1).json()
    assert [r["state"] for r in listed] == ["failed"]
    for item in listed:
        assert_v1alpha1_run(item)

    # Newer versions, and clients that ask for none, see what happened.
    for headers in ({}, {"X-API-Version": "workflow_run.v1alpha2"}):
        new = http.get(f"/workflows/run/{uid}", headers=headers)
        assert new.headers["x-api-version"] == "v1alpha2" and new.json()["state"] == "cancelled"
    assert http.get("/workflows/sleepy/run").json()[0]["state"] == "cancelled"
    assert http.get(f"/runs/{uid}").json()["state"] == "cancelled"
    assert http.get("/runs", params={"state": "cancelled"}).json()["total"] == 1

    deleted = http.delete(f"/workflows/run/{uid}", headers=V1)
    assert deleted.status_code == 200 and deleted.json()["state"] == "failed"


def test_a_run_cancelled_while_a_v1alpha1_client_waits_on_it_reads_as_failed(live):
    with live.client() as http:
        http.post("/workflows/", json=workflow_doc("sleepy", [{"name": "s", "target": f"{STAGES}.sleep_then"}])).raise_for_status()

        def cancel_when_running():
            with live.client() as other:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    runs = other.get("/runs", params={"workflow": "sleepy", "state": "running"}).json()["items"]
                    if runs:
                        other.post(f"/runs/{runs[0]['uid']}/cancel")
                        return
                    time.sleep(0.02)

        import threading

        canceller = threading.Thread(target=cancel_when_running)
        canceller.start()
        waited = http.post("/workflows/sleepy/run", json={"seconds": 3}, headers=V1)
        canceller.join()
    assert waited.status_code == 200, waited.text
    assert waited.json()["state"] == "failed" and waited.json()["result"][0] == "RunCancelledError"


def test_every_enum_a_v1alpha1_client_reads_is_in_its_schema(http):
    """Workflows, configs (with and without a selector), triggers and runs, as the TS SDK validates them."""
    http.post("/workflows/", json=squares_workflow()).raise_for_status()
    http.post("/configs/", json={"kind": "config", "metadata": {"name": "bare"}, "spec": {"data": {"a": 1}}}).raise_for_status()
    http.post(
        "/configs/",
        json={"kind": "config", "metadata": {"name": "by-name"}, "spec": {"selector": {"type": "name", "value": "squares"}, "data": {"b": 2}}},
    ).raise_for_status()
    http.post(
        "/triggers/",
        json={
            "kind": "trigger_rule",
            "metadata": {"name": "nightly"},
            "spec": {"type": "schedule", "rule": ["0 3 * * *"], "action": {"target": "run_workflow", "parameters": {"workflow": "squares"}}},
        },
    ).raise_for_status()
    http.post("/workflows/squares/run", json={"n": 3}).raise_for_status()

    for workflow in http.get("/workflows/", headers={"X-API-Version": "workflow.v1alpha1"}).json():
        assert all(stage["type"] in TS_STAGE_TYPES for stage in workflow["spec"]["stages"])
        assert isinstance(workflow["metadata"]["annotations"], dict)
    for trigger in http.get("/triggers/", headers={"X-API-Version": "trigger_rule.v1alpha1"}).json():
        assert trigger["spec"]["type"] in TS_TRIGGER_TYPES
    for run in http.get("/workflows/squares/run", headers=V1).json():
        assert_v1alpha1_run(run)

    # The TS SDK's config schema requires a selector object: no selector reads as a name selector
    # with no value, which selects nothing either way.
    old = {c["metadata"]["name"]: c for c in http.get("/configs/", headers={"X-API-Version": "config.v1alpha1"}).json()}
    for config in old.values():
        assert isinstance(config["spec"]["selector"], dict) and config["spec"]["selector"]["type"] in TS_SELECTOR_TYPES
    assert old["bare"]["spec"]["selector"] == {"kind": None, "type": "name", "value": None}
    assert old["by-name"]["spec"]["selector"]["value"] == "squares"
    one = http.get("/configs/bare", headers={"X-API-Version": "config.v1alpha1"}).json()
    assert one["spec"]["selector"] == {"kind": None, "type": "name", "value": None}
    # Newer versions keep null; writing the v1alpha1 shape back is accepted.
    assert http.get("/configs/bare").json()["spec"]["selector"] is None
    put = http.put("/configs/bare", json=one, headers={"X-API-Version": "config.v1alpha1"})
    assert put.status_code == 200, put.text
    assert put.json()["spec"]["selector"]["type"] == "name"


# -- /metrics ----------------------------------------------------------------------------------

#: What the original server reported with its locked OpenTelemetry (0.51b0) after a few requests
#: and runs (measured against flowdapt 0.1.52); newer OpenTelemetry adds the process.* and
#: cpython.gc.* names, which we report too.
ORIGINAL_METRICS = {
    "system.cpu.time", "system.cpu.utilization", "system.memory.usage", "system.memory.utilization",
    "system.swap.usage", "system.swap.utilization", "system.disk.io", "system.disk.operations",
    "system.disk.time", "system.network.dropped_packets", "system.network.packets", "system.network.errors",
    "system.network.io", "system.network.connections", "system.thread_count",
    "process.runtime.cpython.memory", "process.runtime.cpython.cpu_time", "process.runtime.cpython.gc_count",
    "process.runtime.cpython.thread_count", "process.runtime.cpython.cpu.utilization",
    "process.runtime.cpython.context_switches", "process.open_file_descriptor.count",
    "api_request_count", "api_request_size", "api_request_latency",
    "http.server.active_requests", "http.server.duration", "http.server.response.size", "http.server.request.size",
    "workflows_executed", "workflows_failed", "workflow_execution_time",
    "events_published", "events_received", "event_callback_latency",
}
NEWER_OTEL_METRICS = {
    "process.context_switches", "process.cpu.time", "process.cpu.utilization", "process.memory.usage",
    "process.memory.virtual", "process.thread.count", "cpython.gc.collections", "cpython.gc.collected_objects",
    "cpython.gc.uncollectable_objects",
}


def _wait_for_metric(http: httpx.Client, name: str) -> list[dict]:
    deadline = time.monotonic() + 20
    while True:
        points = http.get("/metrics", params={"name": name}).json().get(name) or []
        if points:
            return points
        assert time.monotonic() < deadline, f"no {name} points"
        time.sleep(0.1)


def test_metrics_carry_the_original_names_and_the_attributes_its_dashboard_charts(http):
    http.post("/workflows/", json=squares_workflow()).raise_for_status()
    assert http.post("/workflows/squares/run", json={"n": 4}).json()["state"] == "finished"
    http.post("/workflows/", json=workflow_doc("fails", [{"name": "f", "target": f"{STAGES}.fail_on_three"}])).raise_for_status()
    assert http.post("/workflows/fails/run", json={"x": 3}).json()["state"] == "failed"
    http.get("/workflows/nope")
    _wait_for_metric(http, "system.cpu.utilization")
    deadline = time.monotonic() + 10
    while "event_callback_latency" not in http.get("/metrics", params={"max_length": 1}).json():
        assert time.monotonic() < deadline, "event metrics never appeared"
        time.sleep(0.05)

    # The dashboard asks for everything with max_length=2000 (through the TS SDK: metrics.v1alpha1).
    response = http.get("/metrics", params={"max_length": 2000}, headers={"X-API-Version": "metrics.v1alpha1"})
    metrics = response.json()
    expected = ORIGINAL_METRICS | NEWER_OTEL_METRICS
    if psutil.Process().num_fds is None:  # pragma: no cover - not on Linux
        expected.discard("process.open_file_descriptor.count")
    missing = expected - set(metrics)
    if not (psutil.disk_io_counters(perdisk=True) or {}):  # some containers show no disks
        missing -= {"system.disk.io", "system.disk.operations", "system.disk.time"}
    try:
        psutil.Process().io_counters()
    except Exception:
        missing.discard("process.disk.io")
    assert not missing, missing
    assert len(metrics) >= 44, sorted(metrics)
    assert all(len(points) <= 2000 for points in metrics.values())

    # The dashboard's three charts: filter by attributes.state / attributes.direction, read `value`.
    def chart(name: str, field: str, value: str) -> list[float]:
        return [p["value"] for p in metrics[name] if p["attributes"].get(field) == value]

    assert chart("system.cpu.utilization", "state", "user") and chart("system.cpu.utilization", "state", "system")
    assert chart("system.memory.utilization", "state", "used") and chart("system.memory.utilization", "state", "cached")
    assert all(0.0 <= v <= 1.0 for v in chart("system.cpu.utilization", "state", "user"))
    used = chart("system.memory.utilization", "state", "used")[0]
    assert abs(used - psutil.virtual_memory().used / psutil.virtual_memory().total) < 0.2
    if psutil.disk_io_counters(perdisk=True):
        assert chart("system.disk.operations", "direction", "read") and chart("system.disk.operations", "direction", "write")
        assert all(set(p["attributes"]) == {"device", "direction"} for p in metrics["system.disk.operations"])

    cpu = metrics["system.cpu.utilization"]
    assert {p["attributes"]["cpu"] for p in cpu} == set(range(1, psutil.cpu_count() + 1))
    assert {p["attributes"]["state"] for p in cpu} == {"idle", "user", "system", "irq"}
    # Sums (cpu time, counters) carry when counting started; a gauge point starts when it was
    # measured (flowdapt-sdk's schema requires an int, where the original sent null).
    assert cpu[0]["start_time_unix_nano"] == cpu[0]["time_unix_nano"]
    cpu_time = metrics["system.cpu.time"][0]
    assert isinstance(cpu_time["start_time_unix_nano"], int) and cpu_time["start_time_unix_nano"] < cpu_time["time_unix_nano"]
    # Newest first.
    times = [p["time_unix_nano"] for p in cpu]
    assert times == sorted(times, reverse=True)

    # App metrics carry bounded attributes (no run uids).
    executed = {tuple(sorted(p["attributes"].items())) for p in metrics["workflows_executed"]}
    assert {dict(a)["workflow.name"] for a in executed} == {"squares", "fails"}
    assert all("workflow.run.uid" not in dict(a) for a in executed)
    assert metrics["workflows_failed"][0]["attributes"]["workflow.name"] == "fails"
    durations = metrics["http.server.duration"]
    targets = {p["attributes"]["http.target"] for p in durations}
    assert "/workflows/{identifier}/run" in targets and "/workflows/nope" not in targets
    assert {p["attributes"]["http.status_code"] for p in durations} >= {200, 404}
    assert {"count", "bucket_counts", "explicit_bounds", "sum", "min", "max"} <= set(durations[0])


def test_metric_samples_stay_within_the_point_budget():
    metrics = Metrics(max_points=100, read_system=False, max_samples=50)
    for n in range(500):
        wide = [({"cpu": i, "state": "user"}, float(n * 100 + i)) for i in range(10)]
        metrics.sample({"system.cpu.utilization": wide, "system.thread_count": [({}, float(n))]})
    points = metrics.query("system.cpu.utilization")["system.cpu.utilization"]
    assert len(points) == 100  # 10 samples of 10 series: the value budget
    # The newest samples, newest first, each value with its own attributes.
    assert [p["value"] for p in points[:10]] == [49900 + i for i in range(10)]
    assert [p["attributes"]["cpu"] for p in points[:10]] == list(range(10))
    assert [p["value"] for p in points[-10:]] == [49000 + i for i in range(10)]  # the oldest kept
    assert [p["value"] for p in metrics.query("system.thread_count")["system.thread_count"]] == list(range(499, 449, -1))
    # A series that appears later (a new disk) joins without disturbing the others.
    metrics.sample({"system.cpu.utilization": [({"cpu": 10, "state": "user"}, 1.0)]})
    newest = metrics.query("system.cpu.utilization", max_length=1)["system.cpu.utilization"]
    assert newest == [{**newest[0], "attributes": {"cpu": 10, "state": "user"}, "value": 1}]
    assert len(metrics.query("system.cpu.utilization", max_length=15)["system.cpu.utilization"]) == 15
    # A name with no points is still a key, as in the original; flowctl's short names are aliases.
    assert metrics.query("no.such.metric") == {"no.such.metric": []}
    assert list(metrics.query("cpu")) == ["process.runtime.cpython.cpu_time"]


# -- /status -----------------------------------------------------------------------------------


def test_status_reports_nodes_as_a_list_of_node_records(http):
    response = http.get("/status", headers={"X-API-Version": "system.v1alpha1"})
    assert response.headers["x-api-version"] == "v1alpha1"
    status = response.json()
    environment = status["services"]["ComputeService"]["environment"]
    [node] = environment["nodes"]
    assert node["Alive"] is True and node["NodeManagerHostname"] == status["hostname"]
    assert node["Resources"]["CPU"] == float(psutil.cpu_count())
    assert http.get("/status").headers["x-api-version"] == "v1alpha2"


def test_a_v1alpha1_status_names_the_cluster_dashboard_without_a_scheme():
    """The original dashboard links to ``http://`` + what Ray reported (``127.0.0.1:8265``)."""
    ours = {
        "version": "x",
        "services": {"ComputeService": {"status": "OK", "environment": {"dashboard_url": "http://10.0.0.5:8787/status", "nodes": []}}},
    }
    old = render("system", "v1alpha1", ours)
    assert old["services"]["ComputeService"]["environment"]["dashboard_url"] == "10.0.0.5:8787/status"
    assert ours["services"]["ComputeService"]["environment"]["dashboard_url"] == "http://10.0.0.5:8787/status"  # not changed
    assert render("system", "v1alpha2", ours) is ours
    no_dashboard = {"services": {"ComputeService": {"environment": {"nodes": []}}}}
    assert render("system", "v1alpha1", no_dashboard) is no_dashboard


# -- /plugin -----------------------------------------------------------------------------------

@pytest.fixture
def plugin_server(tmp_path, stages_package, monkeypatch):
    site = tmp_path / "wiretest-site"
    site.mkdir()
    install_fake_plugin_distribution(site)
    monkeypatch.syspath_prepend(str(site))
    builtins = [name for name, _ in BUILTIN_PLUGINS]
    plugins = create_plugin_system(only=[*builtins, "wiretest"])
    live = start_server(make_settings(tmp_path / "app"), plugins=plugins)
    yield live
    live.stop()


def test_plugins_are_named_by_distribution_for_v1alpha1_and_pth_files_are_never_served(plugin_server):
    with plugin_server.client() as http:
        old = {p["name"]: p for p in http.get("/plugin/", headers={"X-API-Version": "plugin.v1alpha1"}).json()}
        assert "flowdapt-wiretest" in old and "wiretest" not in old
        assert old["flowdapt-wiretest"]["module"] == "flowdapt_wiretest"
        assert old["flowdapt-wiretest"]["metadata"]["version"] == "1.2.3"
        # The core ships several plugins in one distribution: they keep their own (unique) names.
        assert old["local_executor"]["distribution"] == "flowdapt"
        one = http.get("/plugin/flowdapt-wiretest", headers={"X-API-Version": "plugin.v1alpha1"})
        assert one.status_code == 200 and one.json()["name"] == "flowdapt-wiretest"

        new = {p["name"]: p for p in http.get("/plugin/").json()}
        assert new["wiretest"]["distribution"] == "flowdapt-wiretest" and new["wiretest"]["plugin"] == "wiretest"
        assert http.get("/plugin/wiretest").json()["name"] == "wiretest"

        for name in ("flowdapt-wiretest", "wiretest"):
            files = http.get(f"/plugin/{name}/files", headers={"X-API-Version": "plugin.files.v1alpha1"}).json()
            assert files == {"files": ["example.yaml"]}
        assert http.get("/plugin/wiretest/files/example.yaml").content == b"kind: workflow\n"
        assert http.get("/plugin/wiretest/files/flowdapt_wiretest.pth").status_code == 404
        assert http.get("/plugin/wiretest/files/wiretest").status_code == 404
