"""Run inputs kept on the run (bounded; large ones by reference), re-runs, and the parameters a
workflow takes (``GET /workflows/{id}/parameters``)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flowdapt.cli.main import _register_commands, app
from tests.server.conftest import STAGES, squares_workflow, workflow_doc

pytestmark = pytest.mark.timeout(120)

_register_commands()


def test_rerun_merges_overrides_and_records_its_origin(http):
    assert http.post("/workflows/", json=squares_workflow()).status_code == 200
    first = http.post("/workflows/squares/run", json={"n": 3}).json()
    assert first["result"] == 5 and first["input"] == {"n": 3} and first["source"] == "api"

    again = http.post(f"/runs/{first['name']}/rerun").json()
    assert again["state"] == "finished" and again["result"] == 5
    assert again["source"] == "rerun" and again["rerun_of"] == first["uid"] and again["input"] == {"n": 3}
    assert again["uid"] != first["uid"]

    changed = http.post(f"/runs/{first['uid']}/rerun", json={"input": {"n": 4}}).json()
    assert changed["result"] == 14 and changed["input"] == {"n": 4} and changed["rerun_of"] == first["uid"]

    # the original's run path layout, and wait=false
    pending = http.post(f"/workflows/run/{first['name']}/rerun", params={"wait": "false"}, json={"input": {"n": 2}})
    assert pending.status_code == 200 and pending.json()["state"] in ("pending", "running", "finished")
    listed = http.get("/runs", params={"workflow": "squares", "limit": 10}).json()["items"]
    assert sum(1 for r in listed if r["source"] == "rerun") == 3

    assert http.post("/runs/no-such-run/rerun").status_code == 404
    bad = http.post(f"/runs/{first['name']}/rerun", json={"input": [1, 2]})
    assert bad.status_code == 400 and "input" in bad.text
    wrong_type = http.post(f"/runs/{first['name']}/rerun", json={"input": {"n": "three"}})
    assert wrong_type.status_code == 200 and wrong_type.json()["state"] == "failed"


def test_large_input_is_kept_by_reference_and_read_back(make_server):
    live = make_server({"compute.max_input_bytes": 200})
    with live.client() as http:
        wf = workflow_doc("echo", [{"name": "echo", "target": f"{STAGES}.identity"}])
        assert http.post("/workflows/", json=wf).status_code == 200
        big = "y" * 1000
        run = http.post("/workflows/echo/run", json={"x": big}).json()
        assert run["state"] == "finished" and run["result"] == big
        light = http.get(f"/runs/{run['uid']}", params={"include_result": "false"}).json()  # the stored record
        assert light["input"] is None and light["input_ref"] == f"inputs/{run['uid']}.json"
        path = live.settings.app_dir / "inputs" / f"{run['uid']}.json"
        assert path.is_file()
        assert http.get(f"/runs/{run['uid']}").json()["input"] == {"x": big}
        assert http.get(f"/runs/{run['uid']}/input").json() == {"x": big}

        again = http.post(f"/runs/{run['uid']}/rerun").json()
        assert again["state"] == "finished" and again["result"] == big and again["input_ref"]
        small = http.post(f"/runs/{run['uid']}/rerun", json={"input": {"x": "z"}}).json()
        assert small["result"] == "z" and small["input"] == {"x": "z"} and small["input_ref"] is None

        assert http.delete(f"/runs/{run['uid']}").status_code == 200
        assert not path.exists()


def test_rerun_through_the_run_queue(make_server):
    live = make_server({"compute.run_queue": "on", "compute.max_input_bytes": 50})
    with live.client() as http:
        assert http.post("/workflows/", json=squares_workflow()).status_code == 200
        first = http.post("/workflows/squares/run", json={"n": 3}).json()
        assert first["state"] == "finished"
        again = http.post(f"/runs/{first['name']}/rerun", json={"input": {"n": 5}}).json()
        assert again["state"] == "finished" and again["result"] == 30 and again["source"] == "rerun"


def test_workflow_parameters(http):
    wf = workflow_doc(
        "params",
        [
            {"name": "make", "target": f"{STAGES}.make"},
            {"name": "sum2", "target": f"{STAGES}.add"},
            {"name": "naps", "target": f"{STAGES}.slow", "type": "parameterized", "options": {"map_on": "items"}},
            {"name": "square", "target": f"{STAGES}.square", "type": "parameterized", "depends_on": ["make"]},
        ],
    )
    created = http.post("/workflows/", json=wf)
    assert created.status_code == 200, created.text
    answer = http.get("/workflows/params/parameters").json()
    assert answer["workflow"] == "params"
    by_name = {p["name"]: p for p in answer["parameters"]}
    assert by_name["n"] == {"name": "n", "required": False, "default": 10, "annotation": "int", "stages": ["make"]}
    assert by_name["a"]["required"] and "default" not in by_name["a"] and by_name["a"]["annotation"] is None
    assert by_name["items"] == {"name": "items", "required": True, "annotation": "list", "stages": ["naps"]}
    assert by_name["delay"]["default"] == 0.05 and by_name["delay"]["annotation"] == "float"
    assert "x" not in by_name  # the map item is not an input
    assert http.get("/workflows/nope/parameters").status_code == 404


def test_rerun_cli(live):
    env = {"FLOWDAPT_SERVER": live.url}
    runner = CliRunner()
    with live.client() as http:
        assert http.post("/workflows/", json=squares_workflow()).status_code == 200
        first = http.post("/workflows/squares/run", json={"n": 3}).json()
    result = runner.invoke(app, ["rerun", first["name"], "--no-progress"], env=env)
    assert result.exit_code == 0, result.output
    assert "finished" in result.output and "5" in result.output
    changed = runner.invoke(app, ["rerun", first["name"], "-i", "n=4", "-o", "json"], env=env)
    assert changed.exit_code == 0, changed.output
    import json

    doc = json.loads(changed.output)
    assert doc["result"] == 14 and doc["rerun_of"] == first["uid"] and doc["source"] == "rerun"
    submitted = runner.invoke(app, ["rerun", first["name"], "--no-wait"], env=env)
    assert submitted.exit_code == 0 and submitted.output.startswith("run/")
    failing = runner.invoke(app, ["rerun", first["name"], "-i", "n=abc", "--no-progress"], env=env)
    assert failing.exit_code == 1
    missing = runner.invoke(app, ["rerun", "no-such-run"], env=env)
    assert missing.exit_code == 1 and "404" in missing.output


def test_a_queued_run_with_a_large_input_reads_it_back_when_claimed(make_server):
    # One run at a time: the second waits in the queue and is claimed later by the claim loop
    # (RunService.start_claimed), which reads its input back from the reference.
    live = make_server({"compute.run_queue": "on", "executor.max_concurrent_runs": 1, "compute.max_input_bytes": 100})
    with live.client() as http:
        assert http.post("/workflows/", json=workflow_doc("nap", [{"name": "nap", "target": f"{STAGES}.sleep_then"}])).status_code == 200
        assert http.post("/workflows/", json=workflow_doc("echo", [{"name": "echo", "target": f"{STAGES}.identity"}])).status_code == 200
        http.post("/workflows/nap/run", params={"wait": "false"}, json={"seconds": 0.5})
        big = "q" * 500
        queued = http.post("/workflows/echo/run", params={"wait": "false"}, json={"x": big}).json()
        assert queued["state"] == "pending" and queued["input"] is None and queued["input_ref"]
        done = http.post("/workflows/echo/run", json={"x": big}).json()  # waits its turn as well
        assert done["state"] == "finished" and done["result"] == big
        first = http.get(f"/runs/{queued['uid']}").json()
        assert first["state"] == "finished" and first["result"] == big and first["input"] == {"x": big}
