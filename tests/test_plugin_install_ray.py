"""``flowdapt plugin install`` on a server whose executor is Ray (a local Ray instance): the new
plugin's stages run in Ray workers without restarting the server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from plugin_env import CORE, ROOT, Server, build_wheel, check, make_venv, render  # noqa: E402

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
    srv.plugin_wheel = build_wheel(render(base / "src", plugin_name="Weather Now"), base / "plugin")
    try:
        srv.wait_ready(timeout=180)
        yield srv
    finally:
        srv.stop()


def test_install_and_run_on_ray_then_uninstall(server):
    status = server.get("/status").json()
    assert status["services"]["ComputeService"]["executor"].endswith("RayExecutor")
    pid = status["system"]["pid"]

    check(server.cli("plugin", "install", server.plugin_wheel, "--include-definitions"))
    proc = server.cli("start", "weather-now-example", "-i", "count=4", "--no-progress", "-o", "json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == {"count": 4, "total": 28.0, "mean": 7.0}

    check(server.cli("plugin", "uninstall", "weather_now"))
    proc = server.cli("start", "weather-now-example", "-i", "count=4", "--no-progress", "-o", "json")
    assert proc.returncode != 0
    assert "target 'flowdapt_weather_now.stages.make_numbers' not found" in proc.stderr
    assert server.get("/status").json()["system"]["pid"] == pid
