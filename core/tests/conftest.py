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
