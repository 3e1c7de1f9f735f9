"""The security suite reuses the API tests' live server (uvicorn in a thread, real SQLite store)."""

from __future__ import annotations

import pytest

from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from tests.server.conftest import (  # noqa: F401 - pytest fixtures
    LiveServer,
    http,
    live,
    make_server,
    make_settings,
    stages_package,
    start_server,
)

PLUGIN_ADMIN = ("plugin_admin", "flowdapt.builtin.plugin_admin")


def start_server_with(settings, extra_plugins=()) -> LiveServer:
    """``start_server`` with more built-in plugins than the API tests load (e.g. plugin_admin)."""
    plugins = create_plugin_system(load_entry_points=False, plugins=[*BUILTIN_PLUGINS, *extra_plugins])
    return start_server(settings, plugins)


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
