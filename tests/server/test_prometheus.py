"""The Prometheus exposition: content-negotiated on /metrics and at /metrics/prometheus, parsed
with prometheus_client's parser and checked line by line against the text format; the JSON
/metrics is unchanged."""

from __future__ import annotations

import math
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server.conftest import STAGES, squares_workflow, workflow_doc

pytestmark = pytest.mark.timeout(60)

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"^{_NAME}(?:\{{{_LABEL}(?:,{_LABEL})*\}})? (?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|\+Inf|-Inf|NaN)$")


def strict_check(text: str) -> None:
    """Every line is a HELP, a TYPE (one per family, before its samples) or a valid sample."""
    assert text.endswith("\n")
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in typed, f"family {name} typed twice"
            typed.add(name)
            continue
        assert _SAMPLE.match(line), f"not a valid sample line: {line!r}"
        name = line.split("{")[0].split(" ")[0]
        assert any(name == t or name.startswith(t + "_") for t in typed), f"sample before its TYPE: {line!r}"


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_exposition_parses_and_counts_runs_stages_and_requests(http):
    assert http.post("/workflows/", json=squares_workflow()).status_code == 200
    failing = workflow_doc("broken", [{"name": "make", "target": f"{STAGES}.make"}, {"name": "check", "target": f"{STAGES}.fail_on_three", "type": "parameterized", "depends_on": ["make"]}])
    assert http.post("/workflows/", json=failing).status_code == 200
    for n in (3, 4):
        assert http.post("/workflows/squares/run", json={"n": n}).json()["state"] == "finished"
    assert http.post("/workflows/broken/run", json={"n": 5}).json()["state"] == "failed"

    response = http.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    strict_check(text)
    found = families(text)

    runs = {s.labels["state"]: s.value for s in found["flowdapt_runs"].samples}
    assert runs["finished"] == 2 and runs["failed"] == 1 and runs["pending"] == 0
    assert found["flowdapt_run_queue_depth"].samples[0].value == 0
    finished = {(s.labels["workflow"], s.labels["outcome"]): s.value for s in found["flowdapt_runs_finished"].samples}
    assert finished[("squares", "finished")] == 2 and finished[("broken", "failed")] == 1

    stages = found["flowdapt_stage_duration_seconds"]
    counts = {(s.labels["workflow"], s.labels["stage"], s.labels["state"]): s.value for s in stages.samples if s.name.endswith("_count")}
    assert counts[("squares", "square", "finished")] == 2 and counts[("squares", "total", "finished")] == 2
    assert counts[("broken", "check", "failed")] == 1
    for labels in counts:
        buckets = [s for s in stages.samples if s.name.endswith("_bucket") and (s.labels["workflow"], s.labels["stage"], s.labels["state"]) == labels]
        values = [s.value for s in buckets]
        assert values == sorted(values) and buckets[-1].labels["le"] == "+Inf" and values[-1] == counts[labels]

    http_latency = found["flowdapt_http_request_duration_seconds"]
    routes = {s.labels["route"] for s in http_latency.samples}
    assert "/workflows/{identifier}/run" in routes
    run_count = sum(s.value for s in http_latency.samples if s.name.endswith("_count") and s.labels["route"] == "/workflows/{identifier}/run")
    assert run_count == 3
    assert found["flowdapt_executor_workers"].samples[0].value == 2
    assert found["flowdapt_up"].samples[0].value == 1
    assert found["process_resident_memory_bytes"].samples[0].value > 0
    assert not any(math.isnan(s.value) for f in found.values() for s in f.samples)

    # its own path answers the same families; the JSON /metrics is what it always was
    assert families(http.get("/metrics/prometheus").text).keys() == found.keys()
    as_json = http.get("/metrics")
    assert as_json.headers["content-type"].endswith("+json")
    assert "api_request_count" in as_json.json() and "flowdapt_runs" not in as_json.json()
    assert http.get("/metrics", headers={"Accept": "application/json, text/plain, */*"}).headers["content-type"].endswith("json")
    assert http.get("/metrics", headers={"Accept": "text/html,*/*;q=0.8"}).headers["content-type"].endswith("json")


def test_queue_depth_counts_pending_runs(make_server):
    live = make_server({"compute.run_queue": "on", "executor.max_concurrent_runs": 1})
    with live.client() as http:
        wf = workflow_doc("nap", [{"name": "nap", "target": f"{STAGES}.sleep_then"}])
        assert http.post("/workflows/", json=wf).status_code == 200
        names = [http.post("/workflows/nap/run", params={"wait": "false"}, json={"seconds": 1.0}).json()["name"] for _ in range(3)]
        found = families(http.get("/metrics/prometheus").text)
        depth = found["flowdapt_run_queue_depth"].samples[0].value
        runs = {s.labels["state"]: s.value for s in found["flowdapt_runs"].samples}
        assert depth == runs["pending"] >= 1 and runs["running"] + runs["pending"] == 3
        for name in names:
            http.post(f"/runs/{name}/cancel")
