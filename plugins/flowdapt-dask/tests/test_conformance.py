"""The executor conformance suite (tests/conformance/test_executors.py) on the Dask executor: a
LocalCluster and, when CI exports FLOWDAPT_TEST_DASK_ADDRESS, a separately started cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

CONFORMANCE = Path(__file__).resolve().parents[3] / "tests" / "conformance"
sys.path.insert(0, str(CONFORMANCE))

import test_executors as suite  # noqa: E402
from test_executors import *  # noqa: E402,F401,F403 - collects every conformance case here


@pytest.fixture(scope="module", params=["dask", "dask-external"])
def executor(request, suite_settings):
    import asyncio

    ex = suite.make_executor(request.param, suite_settings)
    asyncio.run(ex.start())
    yield ex
    asyncio.run(ex.stop())
