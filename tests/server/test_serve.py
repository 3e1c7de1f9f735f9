"""`flowdapt run` as a process: graceful SIGTERM, recovery after a crash, bind safety, services."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.server.conftest import free_port, spawn_server

pytestmark = pytest.mark.timeout(180)

SLEEPY = {
    "kind": "workflow",
    "metadata": {"name": "sleepy"},
    "spec": {"stages": [{"name": "nap", "target": "user_modules.compat_stages.sleep_then"}]},
}


def _start_sleepy(server, seconds: float) -> dict:
    assert httpx.post(server.url + "/workflows/", json=SLEEPY).status_code == 200
    run = httpx.post(server.url + "/workflows/sleepy/run", params={"wait": "false"}, json={"seconds": seconds}).json()
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/runs/{run['uid']}").json()["state"] == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return run


def test_sigterm_lets_a_short_run_finish(tmp_path):
    server = spawn_server(tmp_path)
    run = _start_sleepy(server, 1.0)
    assert server.stop(signal.SIGTERM) == 0
    assert "draining" in server.output()
    again = spawn_server(tmp_path)
    try:
        stored = httpx.get(f"{again.url}/runs/{run['uid']}").json()
        assert stored["state"] == "finished" and stored["result"] == 1.0
    finally:
        again.stop()


def test_sigterm_marks_a_long_run_failed_with_the_reason(tmp_path):
    server = spawn_server(tmp_path, env={"FLOWDAPT__API__SHUTDOWN_TIMEOUT": "0.5"})
    run = _start_sleepy(server, 30)
    started = time.monotonic()
    server.stop(signal.SIGTERM)
    assert time.monotonic() - started < 20
    again = spawn_server(tmp_path)
    try:
        stored = httpx.get(f"{again.url}/runs/{run['uid']}").json()
        assert stored["state"] == "failed"
        assert stored["error"]["type"] == "ServerStoppedError"
        assert "server stopped" in stored["error"]["message"]
    finally:
        again.stop()


def test_runs_of_a_killed_server_are_marked_failed_on_restart(tmp_path):
    server = spawn_server(tmp_path)
    run = _start_sleepy(server, 30)
    server.stop(signal.SIGKILL)
    again = spawn_server(tmp_path)
    try:
        stored = httpx.get(f"{again.url}/runs/{run['uid']}").json()
        assert stored["state"] == "failed"
        assert "stopped before the run finished" in stored["error"]["message"]
        assert httpx.get(f"{again.url}/runs", params={"state": "running"}).json()["total"] == 0
    finally:
        again.stop()


def test_non_loopback_bind_needs_a_token(tmp_path):
    env = {**os.environ, "FLOWDAPT__APP_DIR": str(tmp_path)}
    env.pop("FLOWDAPT__API__TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-m", "flowdapt.cli.main", "run", "--host", "0.0.0.0", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "FLOWDAPT__API__TOKEN" in result.stderr and "0.0.0.0" in result.stderr


def test_non_loopback_bind_with_a_token_requires_it(tmp_path):
    server = spawn_server(tmp_path, env={"FLOWDAPT__API__TOKEN": "tok"}, args=["--host", "0.0.0.0"])
    try:
        assert httpx.get(server.url + "/").status_code == 200
        assert httpx.get(server.url + "/workflows/").status_code == 401
        assert httpx.get(server.url + "/workflows/", headers={"Authorization": "Bearer tok"}).status_code == 200
    finally:
        server.stop()


def test_api_only_process_refuses_runs_with_a_reason(tmp_path):
    server = spawn_server(tmp_path, args=["--services", "api"])
    try:
        assert httpx.post(server.url + "/workflows/", json=SLEEPY).status_code == 200
        refused = httpx.post(server.url + "/workflows/sleepy/run")
        assert refused.status_code == 503 and "--services api,compute" in refused.json()["detail"]
        assert "ComputeService" not in httpx.get(server.url + "/status").json()["services"]
    finally:
        server.stop()


def test_unknown_service_is_refused(tmp_path):
    env = {**os.environ, "FLOWDAPT__APP_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "flowdapt.cli.main", "run", "--services", "api,blender", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "blender" in result.stderr
