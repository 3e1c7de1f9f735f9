"""One way to prepare a run: the Python API, ``flowdapt exec`` and the server check targets and
inputs with the same rule (``flowdapt.engine.prepare``) and refuse with the same message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowdapt.api import close_default_executor, execute_workflow
from flowdapt.errors import ValidationError
from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from tests.server.conftest import STAGES, make_settings, workflow_doc

ROOT = Path(__file__).resolve().parents[2]

#: Targets the server refuses at apply time; the Python API must refuse them the same way.
REFUSED = [
    "json.dumps",  # a module that is neither a plugin, user_modules nor allowed_targets
    f"{STAGES}:time.sleep",  # reached through another module
    f"{STAGES}:system",  # defined elsewhere, imported into an allowed module
]


@pytest.fixture
def server(make_server, stages_package):
    import os as _os

    pkg = sys.modules.get(STAGES) or __import__(STAGES)
    pkg.system = _os.system  # what a careless stage module does: `from os import system`
    return make_server()


@pytest.fixture
def inline(server):
    """The same settings and plugins as the server, for the Python API, in inline mode."""
    settings = make_settings(server.settings.app_dir)
    plugins = create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))
    executor = plugins.create("executors", "local", {"mode": "inline"}, settings)
    yield settings, plugins, executor
    close_default_executor()


@pytest.mark.parametrize("target", REFUSED)
def test_the_python_api_refuses_a_target_with_the_servers_message(server, inline, tmp_path, target):
    settings, plugins, executor = inline
    doc = workflow_doc("x", [{"name": "s", "target": target}])
    with server.client() as http:
        response = http.post("/workflows/", json=doc)
    assert response.status_code == 400, response.text
    with pytest.raises(ValidationError) as refused:
        execute_workflow(doc, {}, executor=executor, settings=settings, plugins=plugins)
    assert str(refused.value) == response.json()["detail"]
    assert "spec.stages[0].target" in str(refused.value)


def test_the_python_api_checks_the_input_as_the_server_does(server, inline):
    settings, plugins, executor = inline
    doc = workflow_doc("needs", [{"name": "s", "target": f"{STAGES}.add"}])
    with server.client() as http:
        assert http.post("/workflows/", json=doc).status_code == 200
        response = http.post("/workflows/needs/run?wait=true", json={"a": 1})
    assert response.status_code == 400, response.text
    with pytest.raises(ValidationError) as refused:
        execute_workflow(doc, {"a": 1}, executor=executor, settings=settings, plugins=plugins)
    assert str(refused.value) == response.json()["detail"]
    assert "needs input 'b'" in str(refused.value)
    # Given what it needs, the same workflow runs on both, with the same result.
    run = execute_workflow(doc, {"a": 1, "b": 2}, executor=executor, settings=settings, plugins=plugins)
    assert run.state == "finished" and run.result == 3


def test_the_python_api_checks_the_namespace(inline):
    settings, plugins, executor = inline
    doc = workflow_doc("ns", [{"name": "s", "target": f"{STAGES}.make"}])
    with pytest.raises(ValidationError):
        execute_workflow(doc, {}, executor=executor, settings=settings, plugins=plugins, namespace="../etc")


def test_allowed_targets_for_one_call_and_callables(inline):
    settings, plugins, executor = inline
    doc = workflow_doc("j", [{"name": "s", "target": "json.dumps"}])
    with pytest.raises(ValidationError, match="outside the allowed modules"):
        execute_workflow(doc, {}, executor=executor, settings=settings, plugins=plugins)
    # json.dumps needs an argument: refused for the input, not for the target, once allowed.
    with pytest.raises(ValidationError, match="needs input 'obj'"):
        execute_workflow(doc, {}, executor=executor, settings=settings, plugins=plugins, allowed_targets=["json"])
    run = execute_workflow(
        doc, {"obj": [1]}, executor=executor, settings=settings, plugins=plugins, allowed_targets=["json"]
    )
    assert run.state == "finished" and run.result == "[1]"
    # A callable is the caller's own code: no module rule applies to it.
    lam = {"kind": "workflow", "metadata": {"name": "l"}, "spec": {"stages": [{"name": "s", "target": lambda n: n + 1}]}}
    assert execute_workflow(lam, {"n": 1}, executor=executor, settings=settings, plugins=plugins).result == 2


SCRIPT = """
import json, sys
import flowdapt
from flowdapt.errors import ValidationError

def wf(target):
    return {"kind": "workflow", "metadata": {"name": "w"}, "spec": {"stages": [{"name": "s", "target": target}]}}

out = {"beside": flowdapt.execute_workflow(wf("script_stages.double"), {"x": 21}, executor="local",
                                           executor_options={"mode": "inline"}, return_result=True)}
try:
    flowdapt.execute_workflow(wf("elsewhere_stages.double"), {"x": 1}, executor="local",
                              executor_options={"mode": "inline"})
except ValidationError as exc:
    out["elsewhere"] = str(exc)
print(json.dumps(out))
"""

DOUBLE = "def double(x):\n    return 2 * x\n"


def _env(app_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDAPT")}
    env.update(FLOWDAPT__APP_DIR=str(app_dir), FLOWDAPT__CLUSTER_MEMORY__BACKEND="memory")
    return env


def test_a_script_may_use_modules_beside_it_but_no_others(tmp_path):
    scripts, other = tmp_path / "scripts", tmp_path / "other"
    scripts.mkdir()
    other.mkdir()
    (scripts / "script_stages.py").write_text(DOUBLE)
    (other / "elsewhere_stages.py").write_text(DOUBLE)
    (scripts / "run.py").write_text(SCRIPT)
    env = _env(tmp_path / "app")
    env["PYTHONPATH"] = str(other)  # importable, but neither beside the script nor allowed
    proc = subprocess.run([sys.executable, str(scripts / "run.py")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["beside"] == 42
    assert "'elsewhere_stages.double' is outside the allowed modules" in out["elsewhere"]


def flowdapt_cli(*args: str, app_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowdapt.cli.main", "--app-dir", str(app_dir), *args],
        capture_output=True, text=True, cwd=cwd, env=_env(app_dir), timeout=120,
    )


def test_exec_allows_modules_beside_the_file_and_refuses_others_and_missing_input(tmp_path):
    (tmp_path / "exec_stages.py").write_text(DOUBLE)
    ok = tmp_path / "ok.yaml"
    ok.write_text("kind: workflow\nmetadata: {name: ok}\nspec: {stages: [{name: s, target: exec_stages.double}]}\n")
    r = flowdapt_cli("exec", str(ok), "--input", "x=4", "--mode", "inline", app_dir=tmp_path / "app", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == 8
    # Missing input: refused before the run, exit 2, the server's message.
    r = flowdapt_cli("exec", str(ok), "--mode", "inline", app_dir=tmp_path / "app", cwd=ROOT)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "needs input 'x', which the run input lacks" in r.stderr
    # A module importable from the working directory but not beside the file is refused.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "cwd_stages.py").write_text(DOUBLE)
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        kind: workflow
        metadata: {name: bad}
        spec: {stages: [{name: s, target: cwd_stages.double}]}
        """))
    r = flowdapt_cli("exec", str(bad), "--input", "x=1", app_dir=tmp_path / "app", cwd=elsewhere)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "'cwd_stages.double' is outside the allowed modules" in r.stderr
