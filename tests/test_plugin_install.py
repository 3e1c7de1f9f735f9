"""``flowdapt plugin install/uninstall`` against a running server, without restarting it.

The server runs from its own venv (core built from this checkout), never the workspace's. One
server serves the whole module; the tests run in file order and build on each other's state.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from plugin_env import CORE, Server, build_wheel, check, freeze, make_venv, render, write_project  # noqa: E402

TOKEN = "install-test-token"
WORKFLOW = "weather-now-example"

BROKEN_AT_IMPORT = {
    "flowdapt_broken_early/__init__.py": """
        raise RuntimeError("broken on purpose at import")
    """,
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """Wheels: the core, the template plugin at 0.1.0 and at 0.2.0 (changed code), broken plugins."""
    base = tmp_path_factory.mktemp("dist")
    wheels = {"core": build_wheel(CORE, base / "core")}
    v1 = render(base / "src-v1", plugin_name="Weather Now", version="0.1.0")
    wheels["v1"] = build_wheel(v1, base / "v1")
    v2 = render(base / "src-v2", plugin_name="Weather Now", version="0.2.0")
    stages = v2 / "src" / "flowdapt_weather_now" / "stages.py"
    stages.write_text(stages.read_text().replace('return {"count": len(scores),', 'return {"version": 2, "count": len(scores),'))
    wheels["v2"] = build_wheel(v2, base / "v2")
    wheels["early"] = build_wheel(
        write_project(base / "early", "flowdapt-broken-early", "1.0.0", BROKEN_AT_IMPORT, "broken_early"), base / "w-early"
    )
    wheels["late"] = build_wheel(
        write_project(
            base / "late",
            "flowdapt-broken-late",
            "1.0.0",
            {"flowdapt_broken_late/__init__.py": "import a_module_that_does_not_exist\n"},
            "broken_late",
        ),
        base / "w-late",
    )
    # A project whose build fails: its install must change nothing.
    (base / "unbuildable").mkdir()
    (base / "unbuildable" / "pyproject.toml").write_text(
        '[project]\nname = "flowdapt-unbuildable"\nversion = "not a version"\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    )
    wheels["unbuildable"] = base / "unbuildable"
    return wheels


@pytest.fixture(scope="module")
def server(tmp_path_factory, dist):
    venv = tmp_path_factory.mktemp("server-venv") / ".venv"
    # The broken plugin is there before the server starts: the server must start anyway.
    bin_dir = make_venv(venv, dist["core"], dist["early"])
    srv = Server(
        bin_dir,
        tmp_path_factory.mktemp("server-app"),
        TOKEN,
        FLOWDAPT__EXECUTOR__OPTIONS__WORKERS="2",
        FLOWDAPT__CLUSTER_MEMORY__BACKEND="memory",
    )
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def run_workflow(server: Server, count: int) -> dict:
    proc = server.cli("start", WORKFLOW, "-i", f"count={count}", "--no-progress", "-o", "json")
    return {"exit": proc.returncode, "run": json.loads(proc.stdout) if proc.stdout.strip() else None, "stderr": proc.stderr}


def server_pid(server: Server) -> int:
    return server.get("/status").json()["system"]["pid"]


def test_a_plugin_that_fails_to_import_is_listed_and_the_server_runs(server):
    assert server.proc.poll() is None
    proc = check(server.cli("plugin", "list", "-o", "json"))
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert plugins["broken_early"]["status"] == "error"
    assert "broken on purpose at import" in plugins["broken_early"]["error"]
    assert plugins["local_executor"]["status"] == "enabled"
    listed = {p["name"]: p for p in server.get("/plugin/").json()}
    assert "broken on purpose at import" in listed["broken_early"]["error"]


def test_install_requires_the_token(server, dist):
    import httpx

    response = httpx.post(server.url + "/plugin/install", json={"plugin": str(dist["v1"])}, timeout=30)
    assert response.status_code == 401
    assert "flowdapt-weather-now" not in freeze(server.bin_dir)


def test_a_failed_install_changes_nothing_and_shows_the_installer_error(server, dist):
    before = freeze(server.bin_dir)
    proc = server.cli("plugin", "install", dist["unbuildable"])
    assert proc.returncode == 1
    assert "installing" in proc.stderr and "nothing was changed" in proc.stderr
    assert "not a version" in proc.stderr or "version" in proc.stderr.lower()  # the build backend's complaint
    proc = server.cli("plugin", "install", "flowdapt-weather-now", "--version", "not a version!")
    assert proc.returncode == 1
    assert "invalid version spec" in proc.stderr
    assert freeze(server.bin_dir) == before


def test_install_apply_definitions_and_run_without_restart(server, dist):
    pid = server_pid(server)
    proc = check(server.cli("plugin", "install", dist["v1"], "--include-definitions"))
    assert "+ flowdapt-weather-now 0.1.0" in proc.stdout
    assert "plugin weather_now 0.1.0 loaded (resource_definitions)" in proc.stdout
    assert "[workflow/weather-now-example] created" in proc.stdout
    assert "[config/weather-now-settings] created" in proc.stdout
    assert "[trigger_rule/weather-now-daily] created" in proc.stdout

    result = run_workflow(server, 4)
    assert result["exit"] == 0, result
    assert result["run"]["result"] == {"count": 4, "total": 28.0, "mean": 7.0}  # scale 2 from the shipped config
    assert server_pid(server) == pid and server.proc.poll() is None

    listed = {p["name"]: p for p in server.get("/plugin/").json()}
    assert listed["weather_now"]["metadata"]["version"] == "0.1.0"
    assert listed["weather_now"]["error"] is None


def test_upgrade_makes_new_runs_use_the_new_code(server, dist):
    pid = server_pid(server)
    proc = check(server.cli("plugin", "install", dist["v2"], "--upgrade"))
    assert "~ flowdapt-weather-now 0.1.0 -> 0.2.0" in proc.stdout
    result = run_workflow(server, 3)
    assert result["exit"] == 0, result
    assert result["run"]["result"] == {"version": 2, "count": 3, "total": 10.0, "mean": 10.0 / 3}
    assert server_pid(server) == pid


def test_a_plugin_installed_while_running_that_fails_to_import_is_reported(server, dist):
    proc = server.cli("plugin", "install", dist["late"])
    assert proc.returncode == 1
    assert "+ flowdapt-broken-late 1.0.0" in proc.stdout
    assert "plugin broken_late: failed to load" in proc.stderr and "a_module_that_does_not_exist" in proc.stderr
    assert server.get("/").status_code == 200
    listed = {p["name"]: p for p in server.get("/plugin/").json()}
    assert "a_module_that_does_not_exist" in listed["broken_late"]["error"]
    assert listed["weather_now"]["error"] is None  # the others keep working
    assert run_workflow(server, 2)["exit"] == 0


def test_uninstall_makes_the_workflow_fail_with_target_not_found(server):
    pid = server_pid(server)
    proc = check(server.cli("plugin", "uninstall", "weather_now"))
    assert "- flowdapt-weather-now 0.2.0" in proc.stdout
    assert "weather_now" not in {p["name"] for p in server.get("/plugin/").json()}

    result = run_workflow(server, 2)
    assert result["exit"] != 0
    assert "target 'flowdapt_weather_now.stages.make_numbers' not found" in result["stderr"], result
    assert server_pid(server) == pid

    proc = server.cli("plugin", "uninstall", "weather_now")
    assert proc.returncode == 1 and "no installed plugin" in proc.stderr
    proc = server.cli("plugin", "uninstall", "local_executor")
    assert proc.returncode == 1 and "built into the core" in proc.stderr


def test_reinstall_brings_the_workflow_back(server, dist):
    check(server.cli("plugin", "install", dist["v1"]))
    result = run_workflow(server, 2)
    assert result["exit"] == 0, result
    assert result["run"]["result"] == {"count": 2, "total": 2.0, "mean": 1.0}
