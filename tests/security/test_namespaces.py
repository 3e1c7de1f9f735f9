"""Hole 2: a run namespace becomes a folder under the app dir, so it follows the name pattern.

``POST /workflows/w/run?namespace=../../../../tmp/ESCAPED`` used to write an artifact and an
object-store pickle outside the app dir. Namespaces are now checked where a run is asked for (API,
CLI, Python, trigger actions) and again where every artifact path is made.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import flowdapt
from flowdapt.artifacts.interface import Artifact
from flowdapt.cli.main import _register_commands, app
from flowdapt.errors import ValidationError
from tests.server.conftest import workflow_doc

_register_commands()

WRITER = '''
from flowdapt.compute import object_store
from flowdapt.compute.artifacts import new_artifact


def write(value: str = "v", name: str = "art"):
    object_store.put("key", value, strategy="artifact")
    artifact = new_artifact(name)
    artifact.new_file("f.txt", value)
    return artifact.path
'''

BAD = ["../../../../tmp/ESCAPED", "..", ".", "a/b", "abc\n", "a\\\\b", "x\x00y", "", " ", "a" * 300, "ünïcode"]


@pytest.fixture
def server(make_server, tmp_path):
    app_dir = tmp_path / "app"
    (app_dir / "user_modules").mkdir(parents=True)
    (app_dir / "user_modules" / "ns_writer.py").write_text(WRITER)
    live = make_server(app_dir=app_dir)
    with live.client() as http:
        assert http.post("/workflows/", json=workflow_doc("w", [{"name": "s", "target": "user_modules.ns_writer.write"}])).status_code == 200
    return live


@pytest.mark.parametrize("namespace", BAD)
def test_a_bad_namespace_is_refused_before_the_run_starts(server, tmp_path, namespace):
    with server.client() as http:
        before = http.get("/runs").json()
        response = http.post("/workflows/w/run", params={"namespace": namespace, "wait": "true"}, json={})
        if namespace == "":  # empty means "the default", as in the original
            assert response.status_code == 200, response.text
            return
        assert response.status_code == 400, response.text
        assert "namespace" in response.json()["detail"]
        assert http.get("/runs").json() == before  # no run was recorded
    assert not list(tmp_path.rglob("*ESCAPED*"))
    assert not Path("/tmp/ESCAPED").exists()


def test_a_good_namespace_writes_inside_the_artifact_root(flowdapt_app_dir, server):
    # Thread-mode stages read the process-wide settings: flowdapt_app_dir makes them a temp dir.
    from flowdapt.artifacts import storage_defaults

    with server.client() as http:
        response = http.post("/workflows/w/run", params={"namespace": "team-a_1", "wait": "true"}, json={})
        assert response.status_code == 200 and response.json()["state"] == "finished", response.text
    path = Path(response.json()["result"])
    root = Path(storage_defaults("team-a_1")[2]).resolve()
    assert root.is_relative_to(flowdapt_app_dir.resolve())
    assert path.resolve().is_relative_to(root)
    assert path.parent.name == "team-a_1" and (path / "f.txt").read_text() == "v"


def test_the_cli_start_refuses_a_bad_namespace(server):
    result = CliRunner().invoke(app, ["start", "w", "--namespace", "../../x"], env={"FLOWDAPT_SERVER": server.url})
    assert result.exit_code == 2, result.output
    assert "namespace" in result.output


def test_a_trigger_action_with_a_bad_namespace_is_refused_at_apply_time(server):
    rule = {
        "kind": "trigger_rule",
        "metadata": {"name": "t"},
        "spec": {
            "type": "schedule",
            "rule": ["* * * * *"],
            "action": {"target": "run_workflow", "parameters": {"workflow": "w", "namespace": "../../../tmp/ESCAPED"}},
        },
    }
    with server.client() as http:
        response = http.post("/triggers/", json=rule)
        assert response.status_code == 400, response.text
        assert "spec.action.parameters.namespace" in response.json()["detail"]


def test_the_python_api_refuses_a_bad_namespace(server):
    doc = workflow_doc("w", [{"name": "s", "target": "user_modules.ns_writer.write"}])
    with pytest.raises(ValidationError, match="namespace"):
        flowdapt.execute_workflow(doc, namespace="../../tmp/ESCAPED", settings=server.settings)


@pytest.mark.parametrize("namespace", ["../x", "a/b", "..", "abc\n"])
def test_artifact_paths_refuse_a_namespace_that_is_not_a_plain_name(tmp_path, namespace):
    with pytest.raises(ValueError, match="namespace"):
        Artifact.new_artifact("a", namespace, base_path=str(tmp_path))
    with pytest.raises(ValueError, match="namespace"):
        Artifact.list_artifacts(namespace, base_path=str(tmp_path))
    assert not list(tmp_path.parent.glob("x"))


def test_flowdapt_exec_refuses_a_bad_namespace(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "ns_stage.py").write_text("def f():\n    return 1\n")
    wf_file = tmp_path / "wf.yaml"
    wf_file.write_text("kind: workflow\nmetadata: {name: w}\nspec:\n  stages: [{name: s, target: ns_stage.f}]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDAPT")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "flowdapt.cli.main", "--app-dir", str(tmp_path / "app"), "exec", str(wf_file),
         "--namespace", "../../../tmp/ESCAPED", "--mode", "inline"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "namespace" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("*ESCAPED*"))
