"""The security suite reuses the API tests' live server (uvicorn in a thread, real SQLite store)."""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn

from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.server import FlowdaptServer, create_app
from tests.server.conftest import (  # noqa: F401 - pytest fixtures
    LiveServer,
    free_port,
    http,
    live,
    make_server,
    make_settings,
    stages_package,
)

PLUGIN_ADMIN = ("plugin_admin", "flowdapt.builtin.plugin_admin")


def start_server_with(settings, extra_plugins=()) -> LiveServer:
    """``start_server`` with more built-in plugins than the API tests load (e.g. plugin_admin)."""
    plugins = create_plugin_system(load_entry_points=False, plugins=[*BUILTIN_PLUGINS, *extra_plugins])
    server = FlowdaptServer(settings, plugins)
    app = create_app(settings, plugins, server=server)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="flowdapt-security-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    return LiveServer(f"http://127.0.0.1:{config.port}", server, settings, uv, thread)


@pytest.fixture
def admin_server(tmp_path, stages_package):  # noqa: F811 - the fixture imported above
    started = []

    def factory(overrides=None):
        server = start_server_with(make_settings(tmp_path / f"admin{len(started)}", overrides), [PLUGIN_ADMIN])
        started.append(server)
        return server

    yield factory
    for server in started:
        if server.thread.is_alive():
            server.stop()
