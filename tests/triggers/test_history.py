"""Trigger fire history through a live server: every fire recorded (fired or failed, manual or not,
the run or the error), bounded per rule, shown by GET /triggers/{id}, /history and the CLI; a fire
whose workflow does not exist fails (and `flowdapt trigger fire` exits 1)."""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner

from flowdapt.builtin.triggers.cli import trigger_app
from flowdapt.cli.main import _register_commands, app

from .live import workflow
from .test_server_chain import apply, finished_rule

_register_commands()


def wait_history(http, rule: str, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        items = http.get(f"/triggers/{rule}/history").json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def test_fires_are_recorded_with_their_run_or_error(live_server):
    live = live_server()
    runner = CliRunner()
    env = {"FLOWDAPT_SERVER": live.url}
    with live.http() as http:
        apply(http, workflow("source", ("noop", "noop", [])))
        apply(http, workflow("target", ("echo", "echo", [])))
        apply(http, finished_rule("source_then_target", "source", "finished", "target"))
        assert http.get("/triggers/source_then_target/history").json()["items"] == []
        assert http.get("/triggers/source_then_target").json()["status"]["last_outcome"] is None

        http.post("/workflows/source/run", json={})
        (run,) = live.wait_runs(http, "target")
        (fired,) = wait_history(http, "source_then_target", 1)
        assert fired["outcome"] == "fired" and fired["manual"] is False and fired["rule"] == "source_then_target"
        assert fired["run"] == run["uid"] and fired["workflow"] == "target" and fired["event"]
        status = http.get("/triggers/source_then_target").json()["status"]
        assert status["last_outcome"]["id"] == fired["id"]

        # A manual fire of a rule whose workflow is gone fails, is recorded, and the CLI exits 1.
        apply(http, finished_rule("to_nowhere", "source", "finished", "does_not_exist"))
        result = runner.invoke(trigger_app, ["fire", "to_nowhere"], env=env)
        assert result.exit_code == 1, result.output
        assert "failed" in result.output and "does_not_exist" in result.output
        answer = http.post("/triggers/to_nowhere/fire").json()
        assert answer["fired"] is False and answer["error"][0] == "ActionError"
        items = http.get("/triggers/to_nowhere/history").json()["items"]
        assert [i["outcome"] for i in items] == ["failed", "failed"] and all(i["manual"] for i in items)
        assert "does_not_exist" in items[0]["error"][1] and "run" not in items[0]
        assert http.get("/runs", params={"workflow": "does_not_exist"}).json()["total"] == 0
        last = http.get("/triggers/to_nowhere").json()["status"]["last_outcome"]
        assert last["outcome"] == "failed" and last["id"] == items[0]["id"]

        table = runner.invoke(trigger_app, ["history", "to_nowhere"], env=env)
        assert table.exit_code == 0, table.output
        assert "failed" in table.output and "manual" in table.output and "ActionError" in table.output
        as_json = json.loads(runner.invoke(trigger_app, ["history", "source_then_target", "-o", "json"], env=env).output)
        assert as_json[0]["run"] == run["uid"]
        listed = runner.invoke(app, ["get", "triggers"], env=env)
        assert listed.exit_code == 0 and "LAST OUTCOME" in listed.output
        line = next(row for row in listed.output.splitlines() if row.startswith("to_nowhere"))
        assert "failed (ActionError)" in line
        assert runner.invoke(trigger_app, ["history", "nope"], env=env).exit_code == 1
        assert http.get("/triggers/nope/history").status_code == 404


def test_history_is_bounded_and_survives_a_restart(live_server, tmp_path):
    live = live_server({"triggers.history_size": 3})
    with live.http() as http:
        apply(http, workflow("target", ("noop", "noop", [])))
        apply(http, finished_rule("manual_only", "never", "finished", "target"))
        for _ in range(5):
            assert http.post("/triggers/manual_only/fire").json()["fired"] is True
        items = http.get("/triggers/manual_only/history").json()["items"]
        assert len(items) == 3 and all(i["outcome"] == "fired" and i["manual"] for i in items)
        assert [i["time"] for i in items] == sorted((i["time"] for i in items), reverse=True)
        assert http.get("/triggers/manual_only/history", params={"limit": 1}).json()["items"] == items[:1]
        live.wait_runs(http, "target", count=5)
    live.stop()
    # A new server on the same database reads the same history.
    from .live import start

    again = start(live.settings.app_dir, tmp_path / "stages", {"triggers.history_size": 3})
    try:
        with again.http() as http:
            assert http.get("/triggers/manual_only/history").json()["items"] == items
            assert http.get("/triggers/manual_only").json()["status"]["last_outcome"]["id"] == items[0]["id"]
    finally:
        again.stop()
