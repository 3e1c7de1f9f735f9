"""Fixtures: a real API server (uvicorn on a free port, in a thread) with a real SQLite store.

Stage functions live in a package made for the session (``flowdapt_server_stages``), allowed
through ``allowed_targets``; the executor runs in thread mode so tests start fast.
"""

from __future__ import annotations

import socket
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.server import FlowdaptServer, create_app
from flowdapt.settings import Settings, load_settings

STAGES = "flowdapt_server_stages"

STAGES_SOURCE = '''
import time


def make(n: int = 10):
    return list(range(n))


def square(x):
    return x * x


def total(xs):
    return sum(xs)


def identity(x):
    return x


def add(a, b):
    return a + b


def slow(x, delay: float = 0.05):
    time.sleep(delay)
    return x


def sleep_then(seconds: float = 0.5):
    time.sleep(seconds)
    return seconds


def fail_on_three(x):
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def text(size: int = 100):
    return "x" * size
'''


@pytest.fixture(scope="session")
def stages_package(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("stage_pkg")
    package = root / STAGES
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(STAGES_SOURCE))
    sys.path.insert(0, str(root))
    return STAGES


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def workflow_doc(name: str, stages: list[dict[str, Any]], **metadata: Any) -> dict[str, Any]:
    return {"kind": "workflow", "metadata": {"name": name, **metadata}, "spec": {"stages": stages}}


def squares_workflow(name: str = "squares") -> dict[str, Any]:
    return workflow_doc(
        name,
        [
            {"name": "make", "target": f"{STAGES}.make"},
            {"name": "square", "target": f"{STAGES}.square", "type": "parameterized", "depends_on": ["make"]},
            {"name": "total", "target": f"{STAGES}.total", "depends_on": ["square"]},
        ],
    )


@dataclass
class LiveServer:
    url: str
    server: FlowdaptServer
    settings: Settings
    uvicorn: uvicorn.Server
    thread: threading.Thread

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "server thread did not stop"


def make_settings(app_dir: Path, overrides: dict[str, Any] | None = None) -> Settings:
    base = {
        "executor.backend": "local",
        "executor.options": {"mode": "thread", "workers": 2},
        "allowed_targets": [STAGES],
        "api.shutdown_timeout": 5,
    }
    base.update(overrides or {})
    return load_settings(app_dir, overrides=base)


def start_server(settings: Settings, plugins=None) -> LiveServer:
    if plugins is None:
        plugins = create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))
    server = FlowdaptServer(settings, plugins)
    app = create_app(settings, plugins, server=server)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", server_header=False)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="flowdapt-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    return LiveServer(f"http://127.0.0.1:{port}", server, settings, uv, thread)


@pytest.fixture
def make_server(tmp_path, stages_package) -> Iterator[Callable[..., LiveServer]]:
    started: list[LiveServer] = []

    def factory(overrides: dict[str, Any] | None = None, app_dir: Path | None = None) -> LiveServer:
        live = start_server(make_settings(app_dir or tmp_path / f"app{len(started)}", overrides))
        started.append(live)
        return live

    yield factory
    for live in started:
        if live.thread.is_alive():
            live.stop()


@pytest.fixture
def live(make_server) -> LiveServer:
    return make_server()


@pytest.fixture
def http(live) -> Iterator[httpx.Client]:
    with live.client() as client:
        yield client


# -- a plugin distribution on disk -------------------------------------------------------------

PLUGIN_MODULE = '''
"""A plugin with no hooks, shipping one workflow file."""
'''


def install_fake_plugin_distribution(site: Path) -> None:
    """A plugin distribution ``flowdapt-wiretest`` (entry point ``wiretest``) as an installer leaves
    it in ``site``: RECORD, a data file, a ``.pth`` hook and a console script outside the package.
    Put ``site`` on ``sys.path`` before building the plugin system."""
    package = site / "flowdapt_wiretest"
    (package / "workflows").mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    (package / "workflows" / "example.yaml").write_text("kind: workflow\n")
    (site / "flowdapt_wiretest.pth").write_text(str(site) + "\n")
    (site / "bin").mkdir()
    (site / "bin" / "wiretest").write_text("#!/bin/sh\n")
    info = site / "flowdapt_wiretest-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flowdapt-wiretest\nVersion: 1.2.3\nSummary: wire test plugin\n")
    (info / "entry_points.txt").write_text("[flowdapt.plugins]\nwiretest = flowdapt_wiretest\n")
    files = [
        "flowdapt_wiretest/__init__.py",
        "flowdapt_wiretest/workflows/example.yaml",
        "flowdapt_wiretest.pth",
        "../wiretest-site/bin/wiretest",
        "flowdapt_wiretest-1.2.3.dist-info/METADATA",
        "flowdapt_wiretest-1.2.3.dist-info/entry_points.txt",
        "flowdapt_wiretest-1.2.3.dist-info/RECORD",
    ]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))



# -- a real `flowdapt run` process -------------------------------------------------------------

USER_STAGES = '''
def make(n: int = 10):
    return list(range(n))


def square(x):
    return x * x


def total(xs):
    return sum(xs)


def sleep_then(seconds: float = 1.0):
    import time

    time.sleep(seconds)
    return seconds
'''


@dataclass
class ServerProcess:
    url: str
    app_dir: Path
    process: Any
    log: Path

    def stop(self, sig: int = 15, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def spawn_server(app_dir: Path, *, env: dict[str, str] | None = None, args: list[str] | None = None) -> ServerProcess:
    """``flowdapt run`` in a subprocess with the default backends (SQLite, Local process pool)."""
    import os
    import subprocess

    (app_dir / "user_modules").mkdir(parents=True, exist_ok=True)
    stages = app_dir / "user_modules" / "compat_stages.py"
    if not stages.exists():
        stages.write_text(USER_STAGES)
    port = free_port()
    log = app_dir / "server.log"
    full_env = {**os.environ, "FLOWDAPT__APP_DIR": str(app_dir), "FLOWDAPT__API__SHUTDOWN_TIMEOUT": "5", **(env or {})}
    full_env.pop("FLOWDAPT_SERVER", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "flowdapt.cli.main", "run", "--port", str(port), *(args or [])],
        env=full_env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"flowdapt run exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"flowdapt run did not answer:\n{log.read_text()}")
        time.sleep(0.1)
    return ServerProcess(url, app_dir, process, log)
