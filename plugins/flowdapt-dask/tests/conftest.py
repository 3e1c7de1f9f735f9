"""Dask clusters, settings and the conformance backends for the Dask plugin's tests.

The conformance suites run on the cluster CI starts separately (``FLOWDAPT_TEST_DASK_ADDRESS``,
exported by scripts/ci/setup-dask.sh) when there is one, else on a small LocalCluster started in
this test process on first use and kept for the session.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import threading

import pytest

from flowdapt.plugins import BUILTIN_PLUGINS
from flowdapt.testing.conformance import Backend
from flowdapt.testing.conformance.executors import executor_settings

#: The built-ins, this plugin, and LMDB (the default cluster memory) when it is installed.
PLUGINS = (
    *BUILTIN_PLUGINS,
    *((("lmdb", "flowdapt_lmdb.plugin"),) if importlib.util.find_spec("flowdapt_lmdb") else ()),
    ("dask", "flowdapt_dask.plugin"),
)

_lock = threading.Lock()
_dask_cluster = None


def external_dask_address() -> str | None:
    return os.environ.get("FLOWDAPT_TEST_DASK_ADDRESS") or None


def dask_address() -> str:
    """The external cluster, else a LocalCluster of this process (1 worker, 2 threads), started once."""
    external = external_dask_address()
    if external:
        return external
    global _dask_cluster
    with _lock:
        if _dask_cluster is None:
            from distributed import LocalCluster

            _dask_cluster = LocalCluster(
                n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None, silence_logs=40
            )
            atexit.register(_dask_cluster.close)
        return _dask_cluster.scheduler_address


@pytest.fixture(scope="module")
def suite_settings(tmp_path_factory):
    """An app dir with the Dask plugin loaded, installed process-wide for the module."""
    settings, restore = executor_settings(
        Backend("executors", "dask", plugins=PLUGINS), tmp_path_factory.mktemp("dask") / "app"
    )
    yield settings
    restore()


# -- what the shipped conformance suites run against (test_conformance.py) ----------------------


@pytest.fixture(scope="module", params=["dask", "dask-external"])
def flowdapt_executor_backend(request):
    if request.param == "dask-external":
        address = external_dask_address()
        if not address:
            pytest.skip(
                "SKIPPED LOUDLY: FLOWDAPT_TEST_DASK_ADDRESS is not set, so the separately started Dask "
                "cluster is not tested; run scripts/ci/setup-dask.sh (scripts/test.sh does) to test it"
            )
        options = {"address": address}
    else:
        options = {"workers": 2, "threads_per_worker": 1, "dashboard_address": None}
    return Backend("executors", "dask", options, plugins=PLUGINS, id=request.param)


@pytest.fixture(scope="session")
def flowdapt_cluster_memory_backend():
    # {unique} gives each test its own empty key prefix on the one shared cluster.
    return Backend("cluster_memory", "dask", {"address": dask_address(), "prefix": "{unique}"}, plugins=PLUGINS)
