from __future__ import annotations

import os

import pytest


@pytest.fixture
def flowdapt_settings_overrides():
    from flowdapt.testing import DEFAULT_TEST_OVERRIDES

    return {**DEFAULT_TEST_OVERRIDES, "triggers.resync_interval": 0}


@pytest.fixture
def settings(flowdapt_settings):
    """Settings in a temporary app dir (never ~/.flowdapt), installed process-wide."""
    return flowdapt_settings


@pytest.fixture
def plugins(flowdapt_builtin_plugins):
    """Only the built-in plugins, whatever else is installed."""
    return flowdapt_builtin_plugins


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
