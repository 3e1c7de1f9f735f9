"""Triggers through a live server: chains, fallbacks, conditions on results, the original's files,
apply-time validation, status fields, manual fire, the event stream and loop protection."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from .live import workflow

ORIGINALS = Path(__file__).parent / "originals"


def finished_rule(name: str, on: str, state: str, run: str, **params) -> dict:
    return {
        "kind": "trigger_rule",
        "metadata": {"name": name},
        "spec": {
            "type": "condition",
            "rule": {
                "and": [
                    {"eq": [{"var": "type"}, "com.event.workflow.workflow_finished"]},
                    {"eq": [{"var": "data.workflow"}, on]},
                    {"eq": [{"var": "data.state"}, state]},
                ]
            },
            "action": {"target": "run_workflow", "parameters": {"workflow": run, **params}},
        },
    }


def apply(http, doc: dict) -> dict:
    path = {"workflow": "/workflows/", "trigger_rule": "/triggers/"}[doc["kind"]]
    response = http.post(path, json=doc)
    assert response.status_code == 200, response.text
    return response.json()


def test_chain_a_to_b_and_b_failing_runs_fallback_c(live_server):
    live = live_server()
    with live.http() as http:
        apply(http, workflow("wf_a", ("produce", "produce", [])))
        apply(http, workflow("wf_b", ("explode", "explode", [])))
        apply(http, workflow("wf_c", ("fallback", "fallback", [])))
        apply(http, finished_rule("a_then_b", "wf_a", "finished", "wf_b", input={"x": {"var": "data.result"}}))
        apply(http, finished_rule("b_failed_then_c", "wf_b", "failed", "wf_c", input={"reason": {"var": "data.error.message"}}))
        run_a = http.post("/workflows/wf_a/run", json={"value": 5}).json()
        assert run_a["state"] == "finished" and run_a["result"] == 5
        (run_b,) = live.wait_runs(http, "wf_b")
        (run_c,) = live.wait_runs(http, "wf_c")
        assert run_b["state"] == "failed" and run_b["source"] == "trigger"
        assert run_b["result"] == ["RuntimeError", "B failed on 5"]  # input x came from A's result
        assert run_b["triggered_by"]["rule"] == "a_then_b" and run_b["triggered_by"]["chain"] == ["a_then_b"]
        assert run_c["state"] == "finished" and run_c["result"] == "fallback ran: B failed on 5"
        assert run_c["triggered_by"]["chain"] == ["a_then_b", "b_failed_then_c"]
        # A finishing again does not run C directly, and each rule fired once per run.
        status_b = http.get("/triggers/a_then_b").json()["status"]
        assert status_b["fires"] == 1 and status_b["last_fire"] is not None and status_b["next_fire"] is None


def test_condition_on_data_result(live_server):
    live = live_server()
    with live.http() as http:
        apply(http, workflow("scorer", ("produce", "produce", [])))
        apply(http, workflow("deploy", ("echo", "echo", [])))
        rule = {
            "kind": "trigger_rule",
            "metadata": {"name": "deploy_good_scores"},
            "spec": {
                "type": "condition",
                "rule": {"and": [
                    {"eq": [{"var": "type"}, "com.event.workflow.workflow_finished"]},
                    {"eq": [{"var": "data.workflow"}, "scorer"]},
                    {"gt": [{"var": "data.result"}, 50]},
                ]},
                "action": {"target": "run_workflow", "parameters": {"workflow": "deploy", "input": {"value": {"var": "data.result"}}}},
            },
        }
        apply(http, rule)
        for value in (10, 99, 20, 77):
            assert http.post("/workflows/scorer/run", json={"value": value}).json()["state"] == "finished"
        runs = live.wait_runs(http, "deploy", count=2)
        time.sleep(0.3)
        runs = live.wait_runs(http, "deploy", count=2)
        assert sorted(r["result"] for r in runs) == [77, 99]


def test_the_originals_files_apply_unchanged_and_work(live_server):
    live = live_server()
    with live.http() as http:
        for name in ("train", "predict", "create_features"):
            apply(http, workflow(name, ("produce", "produce", [])))
        for path in sorted(ORIGINALS.glob("*.yaml")):
            response = http.post("/triggers/", content=path.read_bytes(), headers={"Content-Type": "application/yaml"})
            assert response.status_code == 200, (path.name, response.text)
        retrain = http.get("/triggers/retrain").json()
        assert retrain["spec"]["rule"] == ["*/5 * * * *"]
        next_fire = retrain["status"]["next_fire"]
        assert next_fire.endswith(":00") and int(next_fire[14:16]) % 5 == 0
        assert http.get("/triggers/feature_update").json()["status"]["next_fire"][14:16] == "01"
        listed = {r["metadata"]["name"]: r for r in http.get("/triggers/").json()}
        assert listed["retrain"]["status"]["next_fire"] == next_fire
        # auto_predict: train finishing runs predict
        http.post("/workflows/train/run", json={})
        (predict,) = live.wait_runs(http, "predict")
        assert predict["triggered_by"]["rule"] == "auto_predict"
        assert http.get("/triggers/auto_predict").json()["status"]["fires"] == 1


def test_bad_rules_are_refused_at_apply_with_the_field(live_server):
    live = live_server()
    with live.http() as http:
        cases = [
            ({"type": "schedule", "rule": ["*/5 * * * *", "99 * * * *"]}, "spec.rule[1]: bad cron expression"),
            ({"rule": {"and": [{"eq": [1, 1]}, {"is": [1, 1]}]}}, "spec.rule.and[1].is: unknown operator 'is'"),
            ({"rule": {"eq": [1, 2, 3]}}, "spec.rule.eq: eq takes 2 arguments, got 3"),
            ({"action": {"target": "os.system", "parameters": {"command": "touch /tmp/pwned"}}}, "spec.action.target: unknown action 'os.system'"),
        ]
        for spec, message in cases:
            doc = finished_rule("bad", "x", "finished", "y")
            doc["spec"].update(spec)
            response = http.post("/triggers/", json=doc)
            assert response.status_code == 400, response.text
            assert message in response.json()["detail"]
            assert response.json()["status_code"] == 400
        assert http.get("/triggers/").json() == []


def flowdapt_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed ``flowdapt`` command, as a user runs it (plugins from entry points)."""
    exe = Path(sys.executable).with_name("flowdapt")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60)


def test_manual_fire_endpoint_and_cli(live_server):
    live = live_server()
    with live.http() as http:
        apply(http, workflow("target", ("echo", "echo", [])))
        doc = finished_rule("on_other", "other", "finished", "target", input={"value": {"var": "data.result"}})
        apply(http, doc)
        answer = http.post("/triggers/on_other/fire", json={"event": {"type": "com.event.workflow.workflow_finished", "data": {"workflow": "zzz", "state": "finished"}}, "dry_run": True}).json()
        assert answer == {"rule": "on_other", "uid": answer["uid"], "type": "condition", "matched": False, "fired": False, "dry_run": True}
        assert http.get("/runs", params={"workflow": "target"}).json()["total"] == 0
        event = json.dumps({"type": "com.event.workflow.workflow_finished", "data": {"workflow": "other", "state": "finished", "result": 7}})
        result = flowdapt_cli("trigger", "fire", "on_other", "--event", event, "--server", live.url)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "fired, condition matches the event" in result.stdout
        (run,) = live.wait_runs(http, "target")
        assert run["result"] == 7
        assert http.post("/triggers/nope/fire").status_code == 404
        result = flowdapt_cli("get", "trigger_rules", "--server", live.url)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "NEXT FIRE" in result.stdout and "LAST FIRE" in result.stdout and "on_other" in result.stdout


def test_event_stream_carries_trigger_firings(live_server):
    live = live_server()
    with live.http() as http:
        apply(http, workflow("first", ("produce", "produce", [])))
        apply(http, workflow("second", ("noop", "noop", [])))
        apply(http, finished_rule("first_then_second", "first", "finished", "second"))
        seen: list[tuple[str, dict]] = []
        ready = threading.Event()

        def listen():
            with live.http() as stream_http, stream_http.stream("GET", "/events", params={"types": "trigger_fired"}) as response:
                event_type = None
                for line in response.iter_lines():
                    if line.startswith(": connected"):
                        ready.set()
                    elif line.startswith("event: "):
                        event_type = line[7:]
                    elif line.startswith("data: ") and event_type:
                        seen.append((event_type, json.loads(line[6:])))
                        return

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        assert ready.wait(10)
        http.post("/workflows/first/run", json={})
        thread.join(10)
        assert seen and seen[0][0] == "trigger_fired"
        assert seen[0][1]["rule"] == "first_then_second" and seen[0][1]["action"] == "run_workflow"


def test_a_self_triggering_rule_is_rate_limited_and_reported(live_server):
    live = live_server({"triggers.loop_max_fires": 3})
    with live.http() as http:
        apply(http, workflow("again", ("noop", "noop", [])))
        apply(http, finished_rule("forever", "again", "finished", "again"))
        http.post("/workflows/again/run", json={})
        live.wait_runs(http, "again", count=5)
        time.sleep(0.5)
        runs = live.wait_runs(http, "again", count=5)
        # the run by hand, its first firing (not yet a loop), 3 loop firings, then held back
        assert len(runs) == 5
        status = http.get("/triggers/forever").json()["status"]
        assert status["rate_limited"] is True and "triggers itself" in status["last_error"]


def test_a_trigger_for_a_missing_workflow_reports_why(live_server):
    live = live_server()
    with live.http() as http:
        apply(http, workflow("exists", ("noop", "noop", [])))
        apply(http, finished_rule("to_nowhere", "exists", "finished", "does_not_exist"))
        http.post("/workflows/exists/run", json={})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = http.get("/triggers/to_nowhere").json()["status"]
            if status["last_error"]:
                break
            time.sleep(0.02)
        assert "does_not_exist" in status["last_error"]


def test_yaml_rule_with_schedule_fires_on_a_real_clock(live_server):
    live = live_server()
    with live.http() as http:
        apply(http, workflow("tick", ("noop", "noop", [])))
        rule = yaml.safe_load(
            "kind: trigger_rule\nmetadata: {name: every_second}\nspec:\n  type: schedule\n  rule: ['* * * * * *']\n"
            "  action: {target: run_workflow, parameters: {workflow: tick}}\n"
        )
        apply(http, rule)
        runs = live.wait_runs(http, "tick", count=2, timeout=10)
        assert all(r["source"] == "trigger" for r in runs)
        status = http.get("/triggers/every_second").json()["status"]
        assert status["last_fire"] and status["next_fire"] > status["last_fire"]
        http.delete("/triggers/every_second")
        time.sleep(0.2)
        count = http.get("/runs", params={"workflow": "tick"}).json()["total"]
        time.sleep(1.5)
        assert http.get("/runs", params={"workflow": "tick"}).json()["total"] <= count + 1


def test_without_the_triggers_service_rules_are_stored_but_not_fired(live_server):
    live = live_server(services="api,compute")
    with live.http() as http:
        apply(http, workflow("one", ("noop", "noop", [])))
        apply(http, workflow("two", ("noop", "noop", [])))
        apply(http, finished_rule("one_then_two", "one", "finished", "two"))
        assert "status" not in http.get("/triggers/one_then_two").json()
        response = http.post("/triggers/one_then_two/fire")
        assert response.status_code == 503 and "no triggers service" in response.json()["detail"]
        http.post("/workflows/one/run", json={})
        time.sleep(0.3)
        assert http.get("/runs", params={"workflow": "two"}).json()["total"] == 0
