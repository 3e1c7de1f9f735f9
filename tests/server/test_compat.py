"""The original clients, flowctl 0.1.4 and flowdapt-sdk 0.1.8 from PyPI, against `flowdapt run`.

They live in a side virtualenv (scripts/ci/setup-compat-venv.sh creates it; FLOWDAPT_COMPAT_VENV
overrides the path). Resource files are written the way the original's users write them.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.server.conftest import spawn_server

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("FLOWDAPT_COMPAT_VENV", ROOT / ".compat-venv"))
FLOWCTL = VENV / "bin" / "flowctl"
PYTHON = VENV / "bin" / "python"

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not FLOWCTL.exists(),
        reason=f"COMPAT CLIENTS MISSING: no flowctl in {VENV}; run scripts/ci/setup-compat-venv.sh "
        "(CI always does) to test against flowctl 0.1.4 and flowdapt-sdk 0.1.8",
    ),
]

WORKFLOW_YAML = """\
kind: workflow
version: v1alpha1
metadata:
  name: compat-squares
  annotations:
    group: compat
spec:
  stages:
    - name: make
      target: user_modules.compat_stages.make
    - name: square
      target: user_modules.compat_stages.square
      type: parameterized
      depends_on:
        - make
      required_resources: {cpus: 1}
    - name: total
      target: user_modules.compat_stages.total
      depends_on: [square]
      resources:
        cpus: 1
"""

CONFIG_YAML = """\
kind: config
metadata:
  name: compat-config
spec:
  selector:
    type: annotation
    value:
      group: compat
  data:
    study: $COMPAT_STUDY
"""

TRIGGER_YAML = """\
kind: trigger_rule
metadata:
  name: compat-trigger
spec:
  type: condition
  rule:
    and:
      - eq: [{var: type}, "com.event.workflow.workflow_finished"]
      - eq: [{var: data.workflow}, "some-other-workflow"]
  action:
    target: run_workflow
    parameters:
      workflow: compat-squares
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = spawn_server(tmp_path_factory.mktemp("compat_app"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def resources_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("compat_resources")
    (directory / "workflow.yaml").write_text(WORKFLOW_YAML)
    (directory / "config.yml").write_text(CONFIG_YAML)
    (directory / "nested").mkdir()
    (directory / "nested" / "trigger.yaml").write_text(TRIGGER_YAML)
    return directory


def flowctl(server, tmp_path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    app_dir = tmp_path / "flowctl_home"
    app_dir.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "FLOWCTL__APP_DIR": str(app_dir),
        "COMPAT_STUDY": "s42",
        "COLUMNS": "250",
        "TERM": "dumb",
    }
    result = subprocess.run(
        [str(FLOWCTL), "--server", server.url, *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert result.returncode == 0, f"flowctl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n--- server log ---\n{server.output()[-3000:]}"
    return result


def test_flowctl_apply_get_inspect_run_delete(server, resources_dir, tmp_path):
    applied = flowctl(server, tmp_path, "apply", "-p", str(resources_dir))
    for label in ("[workflow/compat-squares] created", "[config/compat-config] created", "[trigger_rule/compat-trigger] created"):
        assert label in applied.stdout, applied.stdout
    again = flowctl(server, tmp_path, "apply", "-p", str(resources_dir))
    assert "[workflow/compat-squares] updated" in again.stdout

    listed = flowctl(server, tmp_path, "get", "workflows")
    assert "compat-squares" in listed.stdout
    one = flowctl(server, tmp_path, "get", "workflow", "compat-squares", "-f", "json")
    assert json.loads(one.stdout)["metadata"]["name"] == "compat-squares"
    assert "compat-config" in flowctl(server, tmp_path, "get", "configs").stdout
    assert "compat-trigger" in flowctl(server, tmp_path, "get", "triggers").stdout
    config = json.loads(flowctl(server, tmp_path, "get", "config", "compat-config", "-f", "json").stdout)
    assert config["spec"]["data"] == {"study": "s42"}  # $VAR substituted by flowctl's loader

    inspected = flowctl(server, tmp_path, "inspect", "workflow", "compat-squares")
    assert "user_modules.compat_stages.square" in inspected.stdout
    assert "compat-trigger" in flowctl(server, tmp_path, "inspect", "trigger_rule", "compat-trigger").stdout

    ran = flowctl(server, tmp_path, "run", "compat-squares", "--n", "4", "--disable-progress")
    assert "[FINISHED]: 14" in ran.stdout, ran.stdout
    runs = flowctl(server, tmp_path, "get", "runs", "compat-squares")
    assert "finished" in runs.stdout
    result_only = flowctl(server, tmp_path, "run", "compat-squares", "--n", "3", "--result-only", "--disable-progress")
    assert result_only.stdout.strip() == "5"

    flowctl(server, tmp_path, "delete", "trigger_rule", "compat-trigger")
    flowctl(server, tmp_path, "delete", "-p", str(resources_dir / "config.yml"))
    flowctl(server, tmp_path, "delete", "workflow", "compat-squares")
    assert "compat-squares" not in flowctl(server, tmp_path, "get", "workflows", check=False).stdout
    assert "compat-config" not in flowctl(server, tmp_path, "get", "configs", check=False).stdout


def test_flowctl_status(server, tmp_path):
    status = flowctl(server, tmp_path, "status")
    assert "ComputeService" in status.stdout and "OK" in status.stdout
    assert "v1" in status.stdout


SDK_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from flowdapt_sdk import FlowdaptSDK
    from flowdapt_sdk.errors import ResourceNotFoundError, BadRequestError, APIError

    URL = sys.argv[1]
    out = {}

    async def main():
        async with FlowdaptSDK(URL) as sdk:
            out["ping"] = await sdk.ping()
            wf = {
                "kind": "workflow",
                "metadata": {"name": "sdk-wf"},
                "spec": {"stages": [
                    {"name": "make", "target": "user_modules.compat_stages.make"},
                    {"name": "sq", "target": "user_modules.compat_stages.square", "type": "parameterized", "depends_on": ["make"]},
                ]},
            }
            created = await sdk.workflows.create_workflow(wf)
            out["created"] = created.metadata.name
            out["listed"] = [w.metadata.name for w in await sdk.workflows.list_workflows()]
            out["got"] = str((await sdk.workflows.get_workflow("sdk-wf")).metadata.uid) == str(created.metadata.uid)
            wf["spec"]["stages"][0]["options"] = {"retries": 1}
            updated = await sdk.workflows.update_workflow("sdk-wf", wf)
            out["updated"] = updated.spec.stages[0].options

            run = await sdk.workflows.run_workflow("sdk-wf", input={"n": 3})
            out["run_wait"] = [run.state, run.result]
            pending = await sdk.workflows.run_workflow("sdk-wf", wait=False)
            out["run_nowait"] = pending.state
            for _ in range(200):
                got = await sdk.workflows.get_workflow_run(str(pending.uid))
                if got.state == "finished":
                    break
                await asyncio.sleep(0.05)
            out["run_nowait_final"] = [got.state, got.result]
            out["runs"] = len(await sdk.workflows.list_workflow_runs("sdk-wf", limit=5))
            deleted_run = await sdk.workflows.delete_workflow_run(str(pending.uid))
            out["deleted_run"] = str(deleted_run.uid) == str(pending.uid)

            cfg = {"kind": "config", "metadata": {"name": "sdk-cfg"}, "spec": {"selector": {"type": "name", "value": "sdk-wf"}, "data": {"k": 1}}}
            out["config_created"] = (await sdk.configs.create_config(cfg)).metadata.name
            out["configs"] = [c.metadata.name for c in await sdk.configs.list_configs()]
            cfg["spec"]["data"] = {"k": 2}
            out["config_updated"] = (await sdk.configs.update_config("sdk-cfg", cfg)).spec.data
            out["config_got"] = (await sdk.configs.get_config("sdk-cfg")).spec.data
            await sdk.configs.delete_config("sdk-cfg")

            trig = {"kind": "trigger_rule", "metadata": {"name": "sdk-trig"}, "spec": {"type": "schedule", "rule": ["0 * * * *"], "action": {"target": "run_workflow", "parameters": {"workflow": "sdk-wf"}}}}
            out["trigger_created"] = (await sdk.triggers.create_trigger(trig)).metadata.name
            out["triggers"] = [t.metadata.name for t in await sdk.triggers.list_triggers()]
            trig["spec"]["rule"] = ["30 * * * *"]
            out["trigger_updated"] = (await sdk.triggers.update_trigger("sdk-trig", trig)).spec.rule
            out["trigger_got"] = (await sdk.triggers.get_trigger("sdk-trig")).spec.rule
            await sdk.triggers.delete_trigger("sdk-trig")

            status = await sdk.system.status()
            out["status"] = [status.services["ComputeService"]["status"], status.database]
            out["plugins"] = sorted(p.name for p in await sdk.plugins.list_plugins())
            out["plugin"] = (await sdk.plugins.get_plugin("local_executor")).module
            metrics = await sdk.metrics.metrics(max_length=1)
            out["metrics"] = "api_request_count" in metrics.root

            try:
                await sdk.workflows.get_workflow("does-not-exist")
            except ResourceNotFoundError as exc:
                out["not_found"] = [type(exc).__name__, exc.status_code, exc.detail]
            try:
                await sdk.workflows.create_workflow({"kind": "workflow", "metadata": {"name": "bad"}, "spec": {"stages": [{"name": "a", "target": "os.system"}]}})
            except BadRequestError as exc:
                out["bad_body"] = [type(exc).__name__, exc.status_code, exc.detail]

            out["deleted"] = (await sdk.workflows.delete_workflow("sdk-wf")).metadata.name

    asyncio.run(main())
    print(json.dumps(out, default=str))
    """
)


def test_sdk_calls(server, tmp_path):
    script = tmp_path / "sdk_script.py"
    script.write_text(SDK_SCRIPT)
    result = subprocess.run([str(PYTHON), str(script), server.url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n--- server log ---\n{server.output()[-3000:]}"
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["ping"]["api_version"] == "v1"
    assert out["created"] == "sdk-wf" and "sdk-wf" in out["listed"] and out["got"] is True
    assert out["updated"] == {"retries": 1}
    assert out["run_wait"] == ["finished", [0, 1, 4]]
    assert out["run_nowait"] == "pending"
    assert out["run_nowait_final"] == ["finished", [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]]
    assert out["runs"] == 2 and out["deleted_run"] is True
    assert out["config_created"] == "sdk-cfg" and "sdk-cfg" in out["configs"]
    assert out["config_updated"] == {"k": 2} and out["config_got"] == {"k": 2}
    assert out["trigger_created"] == "sdk-trig" and "sdk-trig" in out["triggers"]
    assert out["trigger_updated"] == ["30 * * * *"] and out["trigger_got"] == ["30 * * * *"]
    assert out["status"][0] == "OK" and "SQLite" in out["status"][1]
    assert "local_executor" in out["plugins"] and out["plugin"] == "flowdapt.builtin.local_executor"
    assert out["metrics"] is True
    assert out["not_found"][:2] == ["ResourceNotFoundError", 404] and "does-not-exist" in out["not_found"][2]
    assert out["bad_body"][:2] == ["BadRequestError", 400] and "allowed modules" in out["bad_body"][2]
    assert out["deleted"] == "sdk-wf"
