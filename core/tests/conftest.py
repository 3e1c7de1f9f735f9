from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Stage functions used by these tests live in core_stages.py; worker processes inherit sys.path.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def settings(flowdapt_settings):
    """Settings in a temporary app dir, installed as the process-wide settings (flowdapt.testing)."""
    return flowdapt_settings


@pytest.fixture
def plugins(flowdapt_builtin_plugins):
    """Only the built-in plugins, whatever else is installed."""
    return flowdapt_builtin_plugins


@pytest.fixture
def flowdapt_settings_overrides():
    """The test stage modules are allowed targets, as a user's own package would be through
    ``allowed_targets`` (the Python API checks targets as the server does)."""
    from flowdapt.testing import DEFAULT_TEST_OVERRIDES

    return {**DEFAULT_TEST_OVERRIDES, "allowed_targets": ["core_stages", "worker_env_stages"]}
