from __future__ import annotations

import os

import pytest


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings in a temporary app dir (never ~/.flowdapt), installed process-wide."""
    from flowdapt.settings import load_settings, set_settings

    for key in list(os.environ):
        if key.startswith("FLOWDAPT__"):
            monkeypatch.delenv(key)
    s = load_settings(app_dir=tmp_path / "app", overrides={"triggers.resync_interval": 0})
    set_settings(s)
    yield s
    set_settings(None)


@pytest.fixture
def plugins(settings):
    """Only the built-in plugins, whatever else is installed."""
    from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system, set_plugin_system

    system = create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))
    set_plugin_system(system)
    yield system
    set_plugin_system(None)


@pytest.fixture
def live_server(tmp_path, monkeypatch):
    """A started API server with the trigger service; ``live_server(overrides)`` for settings."""
    from .live import start

    for key in list(os.environ):
        if key.startswith("FLOWDAPT__"):
            monkeypatch.delenv(key)
    started = []

    def factory(overrides=None, services=None):
        live = start(tmp_path / f"app{len(started)}", tmp_path / "stages", overrides, services)
        started.append(live)
        return live

    yield factory
    for live in started:
        live.stop()
