"""The shipped executor conformance suite (flowdapt.testing.conformance.executors) on the Local
executor in its three modes. The Dask and Ray plugins run the same suite in their own tests.
"""

from __future__ import annotations

import importlib.util

import pytest

from flowdapt.plugins import BUILTIN_PLUGINS
from flowdapt.testing.conformance import Backend
from flowdapt.testing.conformance.executors import ExecutorConformance

# The object-store case needs the default cluster memory (LMDB), shared by worker processes.
PLUGINS = (*BUILTIN_PLUGINS, *((("lmdb", "flowdapt_lmdb.plugin"),) if importlib.util.find_spec("flowdapt_lmdb") else ()))

LOCAL = [
    Backend("executors", "local", {"mode": mode, "workers": 2}, plugins=PLUGINS, id=f"local-{mode}")
    for mode in ("process", "thread", "inline")
]


@pytest.fixture(scope="module", params=LOCAL, ids=lambda b: b.test_id)
def flowdapt_executor_backend(request):
    return request.param


class TestLocalExecutor(ExecutorConformance):
    pass
