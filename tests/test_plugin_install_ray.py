"""``flowdapt plugin install`` on a server whose executor is Ray (a local Ray instance): the new
plugin's stages run in Ray workers, an upgrade's new code runs in new workers, without restarting
the server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from plugin_env import CORE, ROOT, Server, build_wheel, check, make_venv  # noqa: E402
from weather_plugin import MISSING_TARGET, run_workflow, weather_now_wheels  # noqa: E402

pytest.importorskip("ray", reason="the Ray test needs ray in the uv cache (installed with flowdapt-ray)")

TOKEN = "ray-install-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("ray-dist")
    core = build_wheel(CORE, base / "core")
    ray_plugin = build_wheel(ROOT / "plugins" / "flowdapt-ray", base / "ray")
    bin_dir = make_venv(tmp_path_factory.mktemp("ray-venv") / ".venv", core, ray_plugin)
    srv = Server(
        bin_dir,
        tmp_path_factory.mktemp("ray-app"),
        TOKEN,
        FLOWDAPT__EXECUTOR__BACKEND="ray",
        FLOWDAPT__EXECUTOR__OPTIONS__CPUS="2",
        FLOWDAPT__EXECUTOR__OPTIONS__INCLUDE_DASHBOARD="false",
        FLOWDAPT__CLUSTER_MEMORY__BACKEND="memory",
    )
    srv.wheels = weather_now_wheels(base / "plugin")
    try:
        srv.wait_ready(timeout=180)
        yield srv
    finally:
        srv.stop()


def test_install_upgrade_and_uninstall_on_ray(server):
    status = server.get("/status").json()
    assert status["services"]["ComputeService"]["executor"].endswith("RayExecutor")
    pid = status["system"]["pid"]

    check(server.cli("plugin", "install", server.wheels["v1"], "--include-definitions"))
    # Two runs with a chunk per CPU: both Ray workers import 0.1.0 and keep it.
    for _ in range(2):
        result = run_workflow(server, 4)
        assert result["exit"] == 0, result
        assert result["run"]["result"] == {"count": 4, "total": 28.0, "mean": 7.0}

    proc = check(server.cli("plugin", "install", server.wheels["v2"], "--upgrade"))
    assert "~ flowdapt-weather-now 0.1.0 -> 0.2.0" in proc.stdout
    for _ in range(2):
        result = run_workflow(server, 3)
        assert result["exit"] == 0, result
        assert result["run"]["result"] == {"version": 2, "count": 3, "total": 10.0, "mean": 10.0 / 3}

    check(server.cli("plugin", "uninstall", "weather_now"))
    result = run_workflow(server, 4)
    assert result["exit"] != 0
    assert MISSING_TARGET in result["stderr"], result
    assert server.get("/status").json()["system"]["pid"] == pid
