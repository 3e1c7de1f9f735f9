"""Hole 10: a second SIGTERM or SIGINT during a graceful stop stops the server at once.

The first signal drains (no new runs; in-flight runs get ``api.shutdown_timeout``); the docs say a
second one stops at once, but 3 of 3 tries waited 10 to 12 s.
"""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.server.conftest import spawn_server

pytestmark = pytest.mark.timeout(180)

WORKFLOW = {
    "kind": "workflow",
    "metadata": {"name": "long"},
    "spec": {"stages": [{"name": "s", "target": "user_modules.compat_stages.sleep_then"}]},
}


@pytest.mark.parametrize(("first", "second"), [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGINT)])
def test_a_second_signal_during_the_drain_stops_at_once(tmp_path, first, second):
    server = spawn_server(tmp_path / "app", env={"FLOWDAPT__API__SHUTDOWN_TIMEOUT": "60"})
    try:
        assert httpx.post(f"{server.url}/workflows/", json=WORKFLOW, timeout=30).status_code == 200
        # One caller waits on a long run (an open connection), another run is in flight.
        waiter = threading.Thread(
            target=lambda: _quiet(lambda: httpx.post(f"{server.url}/workflows/long/run?wait=true", json={"seconds": 60}, timeout=90)),
            daemon=True,
        )
        waiter.start()
        started = httpx.post(f"{server.url}/workflows/long/run?wait=false", json={"seconds": 60}, timeout=30)
        assert started.status_code == 200
        time.sleep(1.0)
        server.process.send_signal(first)
        time.sleep(1.0)
        assert server.process.poll() is None, "the first signal must drain, not stop"
        t0 = time.monotonic()
        server.process.send_signal(second)
        code = server.process.wait(30)
        elapsed = time.monotonic() - t0
        assert elapsed < 4.0, f"took {elapsed:.1f}s after the second signal\n{server.output()[-3000:]}"
        assert code != 0 or "stopping now" in server.output()
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)


def test_one_signal_still_drains_gracefully(tmp_path):
    server = spawn_server(tmp_path / "app", env={"FLOWDAPT__API__SHUTDOWN_TIMEOUT": "30"})
    try:
        assert httpx.post(f"{server.url}/workflows/", json=WORKFLOW, timeout=30).status_code == 200
        started = httpx.post(f"{server.url}/workflows/long/run?wait=false", json={"seconds": 1.5}, timeout=30)
        assert started.status_code == 200
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
    finally:
        if server.process.poll() is None:
            server.process.kill()
    # The run finished during the drain, so it is recorded finished.
    again = spawn_server(tmp_path / "app")
    try:
        run = httpx.get(f"{again.url}/runs/{started.json()['uid']}", timeout=30).json()
        assert run["state"] == "finished", run
    finally:
        again.stop()


def _quiet(fn):
    try:
        fn()
    except httpx.HTTPError:
        pass
