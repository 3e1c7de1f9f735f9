"""A real API server (uvicorn on a free port, in a thread) with the trigger service, for chain tests."""

from __future__ import annotations

import socket
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.server import FlowdaptServer, create_app
from flowdapt.settings import Settings, load_settings

STAGES = "flowdapt_trigger_test_stages"

STAGES_SOURCE = '''
def produce(value: int = 42):
    return value


def double(x):
    return 2 * x


def explode(x):
    raise RuntimeError(f"B failed on {x}")


def fallback(reason: str = "none"):
    return f"fallback ran: {reason}"


def echo(value=None):
    return value


def noop():
    return None
'''


def install_stages(root: Path) -> str:
    package = root / STAGES
    if not package.exists():
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(textwrap.dedent(STAGES_SOURCE))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return STAGES


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def workflow(name: str, *stages: tuple[str, str, list[str]]) -> dict[str, Any]:
    return {
        "kind": "workflow",
        "metadata": {"name": name},
        "spec": {"stages": [{"name": s, "target": f"{STAGES}.{fn}", "depends_on": deps} for s, fn, deps in stages]},
    }


@dataclass
class Live:
    url: str
    server: FlowdaptServer
    settings: Settings
    uvicorn: uvicorn.Server
    thread: threading.Thread

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(30)

    def wait_runs(self, http: httpx.Client, workflow: str, count: int = 1, timeout: float = 20.0, final: bool = True) -> list[dict]:
        """The workflow's runs (oldest first) once ``count`` of them exist (and have ended)."""
        deadline = time.monotonic() + timeout
        while True:
            items = http.get("/runs", params={"workflow": workflow, "limit": 1000}).json()["items"]
            done = [r for r in items if r["state"] in ("finished", "failed", "cancelled")] if final else items
            if len(done) >= count:
                return sorted(done, key=lambda r: r["started_at"])
            if time.monotonic() > deadline:
                raise AssertionError(f"{workflow}: {len(done)} of {count} runs after {timeout}s: {items}")
            time.sleep(0.02)


def start(app_dir: Path, stages_root: Path, overrides: dict[str, Any] | None = None, services: str | None = None) -> Live:
    install_stages(stages_root)
    base = {
        "executor.backend": "local",
        "executor.options": {"mode": "thread", "workers": 2},
        "allowed_targets": [STAGES],
        "api.shutdown_timeout": 5,
        "triggers.resync_interval": 0,
    }
    base.update(overrides or {})
    settings = load_settings(app_dir, overrides=base)
    plugins = create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))
    server = FlowdaptServer(settings, plugins, services)
    app = create_app(settings, plugins, server=server)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="flowdapt-trigger-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    return Live(f"http://127.0.0.1:{port}", server, settings, uv, thread)
