"""The `flowdapt` CLI commands that work without a server, run as a user would (subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "nowcast.yaml"


def flowdapt(*args, app_dir, cwd=None, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDAPT")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "flowdapt.cli.main", "--app-dir", str(app_dir), *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=full_env,
        timeout=120,
    )


@pytest.fixture
def app_dir(tmp_path):
    return tmp_path / "app"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


STAGES = '''
def numbers(n=3):
    return list(range(n))

def square(x):
    return x * x

def boom(xs):
    raise ValueError("kaboom " + str(len(xs)))
'''


def test_exec_example_workflow(app_dir):
    r = flowdapt("exec", str(EXAMPLE), "--input", "n_cities=50", app_dir=app_dir)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["models"] == 50 and result["mean_rmse"] < 0.2


def test_exec_input_kinds_and_modes(tmp_path, app_dir):
    write(tmp_path, "cli_stages.py", STAGES)
    wf = write(
        tmp_path,
        "wf.yaml",
        "kind: workflow\nmetadata: {name: sq}\nspec:\n  stages:\n"
        "    - {name: n, target: cli_stages.numbers}\n"
        "    - {name: s, target: cli_stages.square, type: parameterized, depends_on: [n]}\n",
    )
    for mode in ("inline", "thread", "process"):
        r = flowdapt("exec", str(wf), "--input", "n=4", "--mode", mode, app_dir=app_dir)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == [0, 1, 4, 9]
    inp = write(tmp_path, "in.json", '{"n": 2}')
    r = flowdapt("exec", str(wf), "--input-file", str(inp), app_dir=app_dir)
    assert json.loads(r.stdout) == [0, 1]


def test_exec_failure_exits_1_with_the_error(tmp_path, app_dir):
    write(tmp_path, "cli_stages.py", STAGES)
    wf = write(
        tmp_path,
        "wf.yaml",
        "kind: workflow\nmetadata: {name: f}\nspec:\n  stages:\n"
        "    - {name: n, target: cli_stages.numbers}\n    - {name: b, target: cli_stages.boom, depends_on: [n]}\n",
    )
    r = flowdapt("exec", str(wf), app_dir=app_dir)
    assert r.returncode == 1
    assert "ValueError in stage 'b': kaboom 3" in r.stderr
    assert json.loads(r.stdout) == ["ValueError", "kaboom 3"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("kind: workflow\nmetadata: {name: x\n", "not valid YAML"),
        ("kind: workflow\nmetadata: {name: 'bad name'}\nspec: {stages: [{name: a, target: cli_stages.numbers}]}\n", "metadata.name"),
        (
            "kind: workflow\nmetadata: {name: c}\nspec:\n  stages:\n    - {name: a, target: cli_stages.numbers, depends_on: [b]}\n"
            "    - {name: b, target: cli_stages.square, depends_on: [a]}\n",
            "dependency cycle",
        ),
        ("kind: workflow\nmetadata: {name: t}\nspec: {stages: [{name: a, target: os.system}]}\n", "outside the allowed modules"),
        ("kind: workflow\nmetadata: {name: t}\nspec: {stages: [{name: a, target: cli_stages.missing}]}\n", "has no attribute 'missing'"),
        (
            "kind: workflow\nmetadata: {name: t}\nspec:\n  stages:\n    - {name: a, target: cli_stages.numbers}\n"
            "    - {name: b, target: cli_stages.numbers, depends_on: [a], type: wrong}\n",
            "unknown stage type 'wrong'",
        ),
    ],
)
def test_exec_bad_input_exits_2_naming_the_problem(tmp_path, app_dir, text, message):
    write(tmp_path, "cli_stages.py", STAGES)
    wf = write(tmp_path, "wf.yaml", text)
    r = flowdapt("exec", str(wf), app_dir=app_dir)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr


def test_exec_bad_input_flag(tmp_path, app_dir):
    r = flowdapt("exec", str(EXAMPLE), "--input", "novalue", app_dir=app_dir)
    assert r.returncode == 2 and "key=value" in r.stderr


def test_user_modules_targets(app_dir, tmp_path):
    (app_dir / "user_modules").mkdir(parents=True)
    (app_dir / "user_modules" / "mine.py").write_text("def hello(name='x'):\n    return 'hello ' + name\n")
    wf = write(tmp_path, "u.yaml", "kind: workflow\nmetadata: {name: u}\nspec: {stages: [{name: a, target: user_modules.mine.hello}]}\n")
    r = flowdapt("exec", str(wf), "-i", "name=you", app_dir=app_dir)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == "hello you"


def test_config_show_reflects_env_and_overrides(app_dir):
    r = flowdapt("config", "show", "-o", "json", app_dir=app_dir, env={"FLOWDAPT__API__PORT": "9123"})
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["api"]["port"] == 9123
    assert data["executor"]["options"]["mode"] == "process" and data["executor"]["plugin"] == "local_executor"
    # cluster memory defaults to auto: LMDB, which the workspace installs, with its options filled in
    assert data["cluster_memory"]["backend"] == "auto" and data["cluster_memory"]["resolved"] == "lmdb"
    assert data["cluster_memory"]["plugin"] == "lmdb" and "max_size" in data["cluster_memory"]["options"]
    r = flowdapt("-o", "executor.options.workers=3", "config", "show", app_dir=app_dir)
    assert "workers: 3" in r.stdout
    r = flowdapt("-o", "executor.options.workers=0", "config", "show", app_dir=app_dir)
    assert "greater than or equal to 1" in r.stdout


def test_plugin_list(app_dir):
    r = flowdapt("plugin", "list", "-o", "json", app_dir=app_dir)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["local_executor"]["status"] == "enabled"
    assert rows["local_executor"]["hooks"] == ["flowdapt_register_executors"]
    r = flowdapt("plugin", "list", app_dir=app_dir, env={"FLOWDAPT__PLUGINS__DISABLED": '["stage_types"]'})
    assert "stage_types" in r.stdout and "disabled" in r.stdout


def test_version():
    r = subprocess.run([sys.executable, "-m", "flowdapt.cli.main", "--version"], capture_output=True, text=True)
    assert r.stdout.startswith("flowdapt ")
