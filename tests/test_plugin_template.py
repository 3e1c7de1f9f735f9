"""The cookiecutter template renders a plugin that builds, installs, passes its own tests and runs.

Everything happens in a fresh virtual environment (uv venv) with the core built from this checkout
and the rendered plugin's wheel: nothing is installed into the workspace environment.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from plugin_env import CORE, build_wheel, check, make_venv, render, run, uv  # noqa: E402


@pytest.fixture(scope="module")
def core_wheel(tmp_path_factory) -> Path:
    # Built, not installed from the directory: uv caches directory builds by pyproject mtime only.
    return build_wheel(CORE, tmp_path_factory.mktemp("core-dist"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("rendered"), plugin_name="Weather Now", author="Ada Lovelace")


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory, rendered, core_wheel) -> Path:
    wheel = build_wheel(rendered, tmp_path_factory.mktemp("plugin-dist"))
    return make_venv(tmp_path_factory.mktemp("venv") / ".venv", core_wheel, wheel, "pytest>=8")


def test_names_are_derived_from_the_plugin_name(rendered, tmp_path):
    assert rendered.name == "flowdapt-weather-now"
    package = rendered / "src" / "flowdapt_weather_now"
    assert (package / "stages.py").is_file()
    pyproject = (rendered / "pyproject.toml").read_text()
    assert 'name = "flowdapt-weather-now"' in pyproject
    assert 'weather_now = "flowdapt_weather_now.plugin"' in pyproject
    assert '{ name = "Ada Lovelace", email = "you@example.com" }' in pyproject
    workflow = (package / "definitions" / "workflows" / "weather-now-example.yaml").read_text()
    assert "target: flowdapt_weather_now.stages.score" in workflow
    assert "type: parameterized" in workflow

    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if Path(ruff).exists():  # the rendered code passes the lint rules it ships with
        check(run([ruff, "check", "--no-cache", "."], cwd=rendered))

    # A name that already starts with "flowdapt" is not doubled.
    assert render(tmp_path / "a", plugin_name="flowdapt-sales").name == "flowdapt-sales"


def test_a_name_that_is_no_python_identifier_is_refused(tmp_path):
    from cookiecutter.exceptions import FailedHookException

    with pytest.raises(FailedHookException):
        render(tmp_path, plugin_name="42 things")
    assert not any(tmp_path.iterdir())


def test_rendered_plugin_passes_its_own_tests(venv_bin, rendered):
    proc = check(run([venv_bin / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=rendered))
    assert "9 passed" in proc.stdout, proc.stdout


def test_installed_plugin_is_listed(venv_bin, tmp_path):
    proc = check(run([venv_bin / "flowdapt", "--app-dir", tmp_path, "plugin", "list", "-o", "json"]))
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert plugins["weather_now"]["status"] == "enabled"
    assert plugins["weather_now"]["version"] == "0.1.0"
    assert plugins["weather_now"]["distribution"] == "flowdapt-weather-now"
    assert plugins["weather_now"]["hooks"] == ["flowdapt_resource_definitions"]


def test_example_workflow_runs_with_flowdapt_exec(venv_bin, rendered, tmp_path):
    definitions = rendered / "src" / "flowdapt_weather_now" / "definitions"
    workflow = definitions / "workflows" / "weather-now-example.yaml"
    config = definitions / "configs" / "weather-now-settings.yaml"
    flowdapt = venv_bin / "flowdapt"

    # Worker processes (the Local executor's default mode) import the plugin's stages.
    proc = check(run([flowdapt, "--app-dir", tmp_path, "exec", workflow, "--input", "count=5", "--no-progress"]))
    assert json.loads(proc.stdout) == {"count": 5, "total": 30.0, "mean": 6.0}

    # The shipped config selects the workflow by annotation and scales every score.
    proc = check(
        run([flowdapt, "--app-dir", tmp_path, "exec", workflow, "-i", "count=5", "--config-file", config, "--no-progress"])
    )
    assert json.loads(proc.stdout) == {"count": 5, "total": 60.0, "mean": 12.0}

    proc = run([flowdapt, "--app-dir", tmp_path, "exec", workflow, "-i", "count=-2", "--no-progress"])
    assert proc.returncode == 1
    assert "count must be >= 0" in proc.stderr


def test_shipped_definitions_are_printed(venv_bin, tmp_path):
    import yaml

    proc = check(run([venv_bin / "flowdapt", "--app-dir", tmp_path, "plugin", "definitions", "weather_now"]))
    documents = list(yaml.safe_load_all(proc.stdout))
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("config", "weather-now-settings"),
        ("trigger_rule", "weather-now-daily"),
        ("workflow", "weather-now-example"),
    ]
    assert documents[2]["spec"]["stages"][1]["type"] == "parameterized"
    proc = run([venv_bin / "flowdapt", "--app-dir", tmp_path, "plugin", "definitions", "no_such_plugin"])
    assert proc.returncode == 2 and "no plugin named 'no_such_plugin'" in proc.stderr


def test_rendered_outside_the_workspace_uv_sync_and_pytest_pass(tmp_path):
    """As docs/plugins.md says: render anywhere, then `uv sync && uv run pytest`, with no state in
    $HOME. flowdapt is not on the package index in this version: the template points uv at the
    core of the checkout it was rendered from."""
    project = render(tmp_path / "anywhere", plugin_name="Sales Forecast")
    pyproject = (project / "pyproject.toml").read_text()
    assert f'flowdapt = {{ path = "{CORE.as_posix()}", editable = true }}' in pyproject
    home = tmp_path / "home"
    home.mkdir()
    check(run([uv(), "sync"], cwd=project, HOME=str(home)))
    proc = check(run([uv(), "run", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project, HOME=str(home)))
    assert "9 passed" in proc.stdout, proc.stdout
    proc = check(run([uv(), "run", "flowdapt", "--version"], cwd=project, HOME=str(home)))
    import flowdapt

    assert proc.stdout.strip() == f"flowdapt {flowdapt.__version__}"


def test_flowdapt_source_choices(tmp_path):
    from cookiecutter.exceptions import FailedHookException

    from_index = render(tmp_path / "index", plugin_name="a", flowdapt_source="index")
    assert "[tool.uv.sources]" not in (from_index / "pyproject.toml").read_text()
    by_path = render(tmp_path / "path", plugin_name="b", flowdapt_source=str(CORE.parent))
    assert f'path = "{CORE.as_posix()}"' in (by_path / "pyproject.toml").read_text()
    by_git = render(tmp_path / "git", plugin_name="c", flowdapt_source="git+https://example.org/flowdapt.git")
    assert 'flowdapt = { git = "https://example.org/flowdapt.git", subdirectory = "core" }' in (
        by_git / "pyproject.toml"
    ).read_text()
    with pytest.raises(FailedHookException):
        render(tmp_path / "bad", plugin_name="d", flowdapt_source=str(tmp_path / "no-such-checkout"))


def test_built_wheel_requires_flowdapt_without_the_development_source(rendered, tmp_path):
    import zipfile

    wheel = build_wheel(rendered, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith("METADATA"))).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires == ["Requires-Dist: flowdapt>=0.1.100"]
