"""The REST API over real HTTP: resources, versioning, errors, runs, events, auth, limits."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta

import httpx
import pytest

from tests.server.conftest import STAGES, squares_workflow, workflow_doc

pytestmark = pytest.mark.timeout(120)


def test_ping_and_server_header(http):
    response = http.get("/")
    assert response.status_code == 200
    assert response.json() == {"app": "flowdapt", "version": response.json()["version"], "api_version": "v1"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["server"].startswith("flowdapt-")


def test_crud_roundtrip_with_versioned_responses(http):
    created = http.post("/workflows/", json=squares_workflow())
    assert created.status_code == 200, created.text
    body = created.json()
    assert created.headers["content-type"] == "application/vnd.flowdapt.ai.workflow.v1alpha1+json"
    assert created.headers["x-api-version"] == "v1alpha1"
    uid = body["metadata"]["uid"]
    # naive UTC timestamps (no offset), as flowctl subtracts naive datetimes
    assert datetime.fromisoformat(body["metadata"]["created_at"]).tzinfo is None

    assert http.get(f"/workflows/{uid}").json()["metadata"]["name"] == "squares"
    assert http.get("/workflows/squares").json()["metadata"]["uid"] == uid
    assert [w["metadata"]["name"] for w in http.get("/workflows/").json()] == ["squares"]

    doc = squares_workflow()
    doc["metadata"]["annotations"] = {"team": "ml"}
    updated = http.put("/workflows/squares", json=doc)
    assert updated.status_code == 200
    assert updated.json()["metadata"]["uid"] == uid
    assert updated.json()["metadata"]["annotations"] == {"team": "ml"}

    deleted = http.delete("/workflows/squares")
    assert deleted.json()["metadata"]["uid"] == uid
    missing = http.get("/workflows/squares")
    assert missing.status_code == 404
    assert missing.json()["status_code"] == 404
    assert "squares" in missing.json()["detail"]


def test_configs_and_triggers_crud(http):
    config = {"kind": "config", "metadata": {"name": "c1"}, "spec": {"selector": {"type": "name", "value": "x"}, "data": {"a": 1}}}
    assert http.post("/configs/", json=config).status_code == 200
    # The SDK's create_config may name v1alpha2 and send spec.new: accepted, `new` ignored.
    v2 = {"kind": "config", "metadata": {"name": "c2"}, "spec": {"data": {"b": 2}, "new": True}}
    response = http.post("/configs/", json=v2, headers={"X-API-Version": "config.v1alpha2"})
    assert response.status_code == 200, response.text
    assert "new" not in response.json()["spec"]
    assert sorted(c["metadata"]["name"] for c in http.get("/configs/").json()) == ["c1", "c2"]
    trigger = {
        "kind": "trigger_rule",
        "metadata": {"name": "t1"},
        "spec": {"type": "schedule", "rule": ["*/5 * * * *"], "action": {"target": "run_workflow", "parameters": {"workflow": "x"}}},
    }
    response = http.post("/triggers/", json=trigger)
    assert response.status_code == 200, response.text
    assert http.get("/triggers/t1").json()["spec"]["rule"] == ["*/5 * * * *"]
    assert http.delete("/triggers/t1").status_code == 200
    assert http.delete("/configs/c1").status_code == 200


def test_version_negotiation(http):
    ok = http.get("/workflows/", headers={"X-API-Version": "workflow.v1alpha1"})
    assert ok.status_code == 200
    # Accept alone (with the SDK's missing ".ai" too) and no header at all give the latest version.
    assert http.get("/workflows/", headers={"Accept": "application/vnd.flowdapt.workflow.v1alpha1+json"}).status_code == 200
    assert http.get("/workflows/", headers={"Accept": "*/*"}).headers["x-api-version"] == "v1alpha1"
    bare = httpx.get(http.base_url.join("/workflows/"), headers={"Accept": ""})
    assert bare.status_code == 200
    bad = http.get("/workflows/", headers={"X-API-Version": "nonsense"})
    assert bad.status_code == 400 and "Invalid API version header" in bad.json()["detail"]
    unsupported = http.get("/workflows/", headers={"X-API-Version": "workflow.v9"})
    assert unsupported.status_code == 400 and "Unsupported API Versions" in unsupported.json()["detail"]
    accept_unsupported = http.get("/workflows/", headers={"Accept": "application/vnd.flowdapt.ai.workflow.v7+json"})
    assert accept_unsupported.status_code == 400


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (json.dumps({"kind": "workflow", "metadata": {"name": "bad name!"}, "spec": {"stages": [{"name": "a", "target": f"{STAGES}.make"}]}}), "metadata.name"),
        (json.dumps({"kind": "dragon", "metadata": {"name": "x"}, "spec": {}}), "kind"),
        (json.dumps({"kind": "workflow", "metadata": {"name": "x"}, "spec": {"stages": []}}), "spec.stages"),
        (json.dumps(squares_workflow() | {"spec": {"stages": [{"name": "a", "target": f"{STAGES}.make", "depends_on": ["zzz"]}]}}), "unknown stage 'zzz'"),
        (
            json.dumps(
                workflow_doc(
                    "cyc",
                    [
                        {"name": "a", "target": f"{STAGES}.identity", "depends_on": ["b"]},
                        {"name": "b", "target": f"{STAGES}.identity", "depends_on": ["a"]},
                    ],
                )
            ),
            "cycle",
        ),
        (json.dumps(workflow_doc("dup", [{"name": "a", "target": f"{STAGES}.make"}, {"name": "a", "target": f"{STAGES}.make"}])), "duplicate stage"),
        (json.dumps(workflow_doc("os", [{"name": "a", "target": "os.system"}])), "outside the allowed modules"),
        (json.dumps(workflow_doc("imp", [{"name": "a", "target": f"{STAGES}.nope"}])), "has no attribute 'nope'"),
        (json.dumps(workflow_doc("typ", [{"name": "a", "target": f"{STAGES}.make", "type": "fancy"}])), "unknown stage type"),
        (json.dumps(workflow_doc("opt", [{"name": "a", "target": f"{STAGES}.make", "options": {"retries": -1}}])), "options.retries"),
    ],
)
def test_bad_resources_get_4xx_naming_the_problem_and_write_nothing(http, body, needle):
    response = http.post("/workflows/", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["status_code"] == 400
    assert needle in response.json()["detail"]
    assert http.get("/workflows/").json() == []


def test_duplicate_name_and_rename_conflict(http):
    assert http.post("/workflows/", json=squares_workflow("a")).status_code == 200
    assert http.post("/workflows/", json=squares_workflow("b")).status_code == 200
    dup = http.post("/workflows/", json=squares_workflow("a"))
    assert dup.status_code == 400 and "already exists" in dup.json()["detail"]
    rename = http.put("/workflows/b", json=squares_workflow("a"))
    assert rename.status_code == 400
    assert sorted(w["metadata"]["name"] for w in http.get("/workflows/").json()) == ["a", "b"]


def test_invalid_update_leaves_stored_resource_unchanged(http):
    http.post("/workflows/", json=squares_workflow())
    before = http.get("/workflows/squares").json()
    bad = squares_workflow()
    bad["spec"]["stages"][1]["depends_on"] = ["missing"]
    assert http.put("/workflows/squares", json=bad).status_code == 400
    assert http.get("/workflows/squares").json() == before


def test_dry_run_validates_without_writing(http):
    response = http.post("/workflows/?dry_run=true", json=squares_workflow())
    assert response.status_code == 200
    assert http.get("/workflows/").json() == []


def test_invalid_query_is_422_with_status_code(http):
    http.post("/workflows/", json=squares_workflow())
    response = http.get("/workflows/squares/run", params={"limit": "abc"})
    assert response.status_code == 422
    assert response.json()["status_code"] == 422
    assert "limit" in response.json()["detail"]
    assert http.get("/runs", params={"state": "sideways"}).status_code == 400


def test_unknown_path_is_json_404(http):
    response = http.get("/nowhere")
    assert response.status_code == 404 and response.json()["status_code"] == 404


def test_oversized_body_is_413_and_not_written(make_server):
    live = make_server({"api.max_body_bytes": 2000})
    with live.client() as http:
        doc = squares_workflow()
        doc["metadata"]["annotations"] = {"pad": "x" * 5000}
        response = http.post("/workflows/", json=doc)
        assert response.status_code == 413
        assert response.json()["status_code"] == 413
        # a chunked body without Content-Length is cut off too
        chunked = http.post("/workflows/", content=iter([b"{" + b" " * 1500, b" " * 1500 + b"}"]))
        assert chunked.status_code == 413
        assert http.get("/workflows/").json() == []


def test_run_wait_true_returns_final_run_with_stage_records(http):
    http.post("/workflows/", json=squares_workflow())
    response = http.post("/workflows/squares/run", json={"n": 5})
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["state"] == "finished"
    assert run["result"] == 30
    assert run["source"] == "api"
    # No version asked: the latest run schema (v1alpha2, which knows `cancelled`).
    assert response.headers["content-type"] == "application/vnd.flowdapt.ai.workflow_run.v1alpha2+json"
    assert run["stages"]["square"]["items_total"] == 5 and run["stages"]["square"]["items_done"] == 5
    assert all(s["state"] == "finished" for s in run["stages"].values())
    assert http.get(f"/workflows/run/{run['uid']}").json()["result"] == 30
    assert http.get(f"/workflows/run/{run['name']}").json()["uid"] == run["uid"]


def test_run_wait_false_returns_pending_then_finishes(http):
    http.post("/workflows/", json=workflow_doc("sleepy", [{"name": "s", "target": f"{STAGES}.sleep_then"}]))
    response = http.post("/workflows/sleepy/run", params={"wait": "False"}, json={"seconds": 0.3})
    run = response.json()
    assert run["state"] == "pending"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        current = http.get(f"/workflows/run/{run['uid']}").json()
        if current["state"] == "finished":
            break
        time.sleep(0.05)
    assert current["state"] == "finished" and current["result"] == 0.3


def test_run_errors(http):
    assert http.post("/workflows/ghost/run").status_code == 404
    http.post("/workflows/", json=workflow_doc("adder", [{"name": "add", "target": f"{STAGES}.add"}]))
    missing = http.post("/workflows/adder/run", json={"a": 1})
    assert missing.status_code == 400
    assert "'b'" in missing.json()["detail"] and "adder" in missing.json()["detail"]
    not_object = http.post("/workflows/adder/run", json=[1, 2])
    assert not_object.status_code == 400 and "JSON object" in not_object.json()["detail"]
    assert http.get("/runs").json()["total"] == 0  # nothing was recorded


def test_failed_stage_fails_the_run_with_type_and_message(http):
    http.post(
        "/workflows/",
        json=workflow_doc(
            "failing",
            [
                {"name": "make", "target": f"{STAGES}.make"},
                {"name": "check", "target": f"{STAGES}.fail_on_three", "type": "parameterized", "depends_on": ["make"]},
            ],
        ),
    )
    run = http.post("/workflows/failing/run", json={"n": 5}).json()
    assert run["state"] == "failed"
    assert run["result"][0] == "ValueError" and "bad item 3" in run["result"][1]
    assert run["error"]["stage"] == "check"
    assert run["stages"]["check"]["state"] == "failed"


def test_runs_listing_filters_and_pagination(http):
    http.post("/workflows/", json=squares_workflow("one"))
    http.post("/workflows/", json=squares_workflow("two"))
    for _ in range(3):
        http.post("/workflows/one/run", json={"n": 2})
    http.post("/workflows/two/run", json={"n": 2})
    page = http.get("/runs", params={"limit": 2}).json()
    assert page["total"] == 4 and len(page["items"]) == 2
    starts = [r["started_at"] for r in page["items"]]
    assert starts == sorted(starts, reverse=True)
    second = http.get("/runs", params={"limit": 2, "offset": 2}).json()
    assert {r["uid"] for r in second["items"]}.isdisjoint(r["uid"] for r in page["items"])
    assert http.get("/runs", params={"workflow": "two"}).json()["total"] == 1
    assert http.get("/runs", params={"state": "finished,failed"}).json()["total"] == 4
    assert http.get("/runs", params={"state": "running"}).json()["total"] == 0
    future = (datetime.utcnow() + timedelta(hours=1)).isoformat()
    assert http.get("/runs", params={"since": future}).json()["total"] == 0
    per_workflow = http.get("/workflows/one/run", params={"limit": 2}).json()
    assert len(per_workflow) == 2 and all(r["workflow"] == "one" for r in per_workflow)
    assert http.get("/workflows/ghost/run").status_code == 404


def test_cancel_running_run(http):
    http.post(
        "/workflows/",
        json=workflow_doc(
            "long",
            [
                {"name": "make", "target": f"{STAGES}.make"},
                {"name": "slow", "target": f"{STAGES}.slow", "type": "parameterized", "depends_on": ["make"], "options": {"chunk_size": 1}},
            ],
        ),
    )
    run = http.post("/workflows/long/run", params={"wait": "false"}, json={"n": 200}).json()
    time.sleep(0.2)
    cancelled = http.post(f"/runs/{run['name']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    stored = http.get(f"/runs/{run['uid']}").json()
    assert stored["state"] == "cancelled"
    assert stored["stages"]["slow"]["state"] in ("cancelled", "skipped")
    again = http.post(f"/runs/{run['uid']}/cancel")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


def test_delete_run(http):
    http.post("/workflows/", json=squares_workflow())
    run = http.post("/workflows/squares/run").json()
    assert http.delete(f"/workflows/run/{run['uid']}").json()["uid"] == run["uid"]
    assert http.get(f"/workflows/run/{run['uid']}").status_code == 404


def test_large_result_is_offloaded_and_returned_in_full(make_server):
    live = make_server({"compute.max_result_bytes": 1000})
    with live.client() as http:
        http.post("/workflows/", json=workflow_doc("big", [{"name": "t", "target": f"{STAGES}.text"}]))
        run = http.post("/workflows/big/run", json={"size": 5000}).json()
        assert run["result"] == "x" * 5000
        assert run["result_ref"]
        assert (live.settings.app_dir / run["result_ref"]).stat().st_size > 5000
        listed = http.get("/runs").json()["items"][0]
        assert listed["result"] is None and listed["result_ref"] == run["result_ref"]
        assert http.get(f"/workflows/run/{run['uid']}").json()["result"] == "x" * 5000
        assert http.get(f"/runs/{run['uid']}/result").json() == "x" * 5000
        small = http.post("/workflows/big/run", json={"size": 10}).json()
        assert small["result_ref"] is None
        http.delete(f"/runs/{run['uid']}")
        assert not (live.settings.app_dir / run["result_ref"]).exists()


def test_retention_loop_deletes_old_runs(make_server):
    live = make_server({"compute.run_retention_duration": "1s"})
    with live.client() as http:
        http.post("/workflows/", json=squares_workflow())
        run = http.post("/workflows/squares/run").json()
        assert http.get(f"/workflows/run/{run['uid']}").status_code == 200
        deadline = time.monotonic() + 10
        while http.get(f"/workflows/run/{run['uid']}").status_code == 200:
            assert time.monotonic() < deadline, "the retention loop never deleted the run"
            time.sleep(0.2)
        assert http.get("/runs").json()["total"] == 0


def test_retention_zero_keeps_no_runs(make_server):
    live = make_server({"compute.run_retention_duration": 0})
    with live.client() as http:
        http.post("/workflows/", json=squares_workflow())
        run = http.post("/workflows/squares/run").json()
        assert run["state"] == "finished"
        assert http.get(f"/workflows/run/{run['uid']}").status_code == 404


def test_drain_refuses_runs(http):
    http.post("/workflows/", json=squares_workflow())
    assert http.post("/drain").json() == {"draining": True}
    refused = http.post("/workflows/squares/run")
    assert refused.status_code == 503 and refused.json()["status_code"] == 503
    assert http.delete("/drain").json() == {"draining": False}
    assert http.post("/workflows/squares/run").status_code == 200


def test_status_does_not_block_and_has_the_original_shape(http):
    started = time.perf_counter()
    response = http.get("/status")
    assert time.perf_counter() - started < 0.5
    status = response.json()
    for key in ("version", "name", "python", "hostname", "database", "system", "os", "services"):
        assert key in status
    assert status["services"]["ComputeService"]["status"] == "OK"
    assert set(status["system"]) >= {"time", "cpu_pct", "memory", "disk_pct", "threads", "fds", "pid"}


def test_metrics_shape(http):
    http.get("/")
    metrics = http.get("/metrics", params={"max_length": 1}).json()
    point = metrics["api_request_count"][0]
    assert point["value"] >= 1 and {"start_time_unix_nano", "time_unix_nano", "attributes"} <= set(point)
    histogram = metrics["api_request_latency"][0]
    assert {"count", "bucket_counts", "explicit_bounds", "sum", "min", "max"} <= set(histogram)
    only = http.get("/metrics", params={"name": "api_latency"}).json()
    assert list(only) == ["api_request_latency"]


def test_plugins(http):
    plugins = http.get("/plugin/").json()
    names = {p["name"] for p in plugins}
    assert "local_executor" in names
    one = http.get("/plugin/local_executor").json()
    assert one["module"] == "flowdapt.builtin.local_executor"
    assert http.get("/plugin/nope").status_code == 404
    assert http.get("/plugin/local_executor/files").json() == {"files": []}
    assert http.get("/plugin/local_executor/files/missing.yaml").status_code == 404


def test_openapi_lists_every_endpoint(http):
    paths = http.get("/openapi.json").json()["paths"]
    expected = {
        "/": {"get"},
        "/workflows/": {"get", "post"},
        "/workflows/{identifier}": {"get", "put", "delete"},
        "/workflows/{identifier}/run": {"get", "post"},
        "/workflows/run/{identifier}": {"get", "delete"},
        "/workflows/run/{identifier}/logs": {"get"},
        "/configs/": {"get", "post"},
        "/configs/{identifier}": {"get", "put", "delete"},
        "/triggers/": {"get", "post"},
        "/triggers/{identifier}": {"get", "put", "delete"},
        "/status": {"get"},
        "/metrics": {"get"},
        "/plugin/": {"get"},
        "/plugin/{plugin_name}": {"get"},
        "/plugin/{plugin_name}/files": {"get"},
        "/plugin/{plugin_name}/files/{file_name}": {"get"},
        "/drain": {"post", "delete"},
        "/artifacts/{namespace}": {"get"},
        "/artifacts/{namespace}/{name}": {"get"},
        "/artifacts/{namespace}/{name}/files/{path}": {"get"},
        "/runs": {"get"},
        "/runs/{identifier}": {"get", "delete"},
        "/runs/{identifier}/cancel": {"post"},
        "/runs/{identifier}/result": {"get"},
        "/runs/{identifier}/logs": {"get"},
        "/events": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))


def test_token_auth(make_server):
    live = make_server({"api.tokens": ["s3cret"]})
    with live.client() as http:
        assert http.get("/").status_code == 200  # ping stays public
        denied = http.get("/workflows/")
        assert denied.status_code == 401
        assert denied.json() == {"detail": denied.json()["detail"], "status_code": 401}
        assert "Bearer" in denied.json()["detail"]
        assert http.get("/workflows/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get("/workflows/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert http.get("/openapi.json").status_code == 401


def test_cors_origins(make_server):
    live = make_server({"api.cors_origins": ["http://dash.local:3030"]})
    with live.client() as http:
        preflight = http.options(
            "/workflows/",
            headers={"Origin": "http://dash.local:3030", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.headers["access-control-allow-origin"] == "http://dash.local:3030"
        other = http.get("/", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_events_stream_runs_and_resources(http, live):
    http.post("/workflows/", json=squares_workflow())
    received: list[tuple[str, dict]] = []
    connected = threading.Event()

    def listen():
        with httpx.stream("GET", f"{live.url}/events", params={"workflow": "squares"}, timeout=30) as response:
            event = None
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event:
                    received.append((event, json.loads(line[6:])))
                    if event == "run_finished":
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert connected.wait(10)
    run = http.post("/workflows/squares/run", json={"n": 4}).json()
    thread.join(10)
    types = [t for t, _ in received]
    assert types[0] == "run_created" and types[-1] == "run_finished"
    assert "stage_started" in types and "stage_finished" in types
    assert all(d["uid"] == run["uid"] for _, d in received)
    finished = received[-1][1]
    assert finished["state"] == "finished" and finished["stages"]["square"]["items_done"] == 4
