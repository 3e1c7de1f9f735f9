"""Ray clusters, settings and the conformance backends for the Ray plugin's tests.

The conformance suites run on the cluster CI starts separately (``FLOWDAPT_TEST_RAY_ADDRESS``,
exported by scripts/ci/setup-ray.sh) when there is one, else on a small local instance started
in this test process on first use. One process talks to one Ray cluster at a time, so fixtures
that start their own instance first drop the connection another test left behind.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading

import pytest

from flowdapt.plugins import BUILTIN_PLUGINS
from flowdapt.testing.conformance import Backend
from flowdapt.testing.conformance.executors import executor_settings

#: The built-ins, this plugin, and LMDB (the default cluster memory) when it is installed.
PLUGINS = (
    *BUILTIN_PLUGINS,
    *((("lmdb", "flowdapt_lmdb.plugin"),) if importlib.util.find_spec("flowdapt_lmdb") else ()),
    ("ray", "flowdapt_ray.plugin"),
)

_lock = threading.Lock()


def external_ray_address() -> str | None:
    return os.environ.get("FLOWDAPT_TEST_RAY_ADDRESS") or None


def ray_address() -> str:
    """The external cluster, else a local instance of this process (2 CPUs), started once."""
    external = external_ray_address()
    if external:
        return external
    import ray

    with _lock:
        if not ray.is_initialized():
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        return ray.get_runtime_context().gcs_address


def _disconnect_ray() -> None:
    """Drop this process's Ray connection (and the local instance it started, if any)."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


@pytest.fixture(scope="module")
def suite_settings(tmp_path_factory):
    """An app dir with the Ray plugin loaded, installed process-wide for the module."""
    settings, restore = executor_settings(
        Backend("executors", "ray", plugins=PLUGINS), tmp_path_factory.mktemp("ray") / "app"
    )
    yield settings
    restore()


@pytest.fixture(scope="session")
def disconnect_ray():
    """``disconnect_ray()`` drops this process's Ray connection, for fixtures that start their own."""
    return _disconnect_ray


# -- what the shipped conformance suites run against (test_conformance.py) ----------------------


@pytest.fixture(scope="module", params=["ray", "ray-external"])
def flowdapt_executor_backend(request):
    if request.param == "ray-external":
        address = external_ray_address()
        if not address:
            pytest.skip(
                "SKIPPED LOUDLY: FLOWDAPT_TEST_RAY_ADDRESS is not set, so the separately started Ray "
                "cluster is not tested; run scripts/ci/setup-ray.sh (scripts/test.sh does) to test it"
            )
        options = {"address": address, "log_to_driver": False}
    else:
        options = {"cpus": 2, "include_dashboard": False, "log_to_driver": False}
    _disconnect_ray()
    yield Backend("executors", "ray", options, plugins=PLUGINS, id=request.param)
    _disconnect_ray()


@pytest.fixture(scope="module")
def ray_connection_for_the_module():
    """Leaves no Ray connection behind for the next module (which may start its own instance)."""
    yield
    _disconnect_ray()


@pytest.fixture
def flowdapt_cluster_memory_backend(ray_connection_for_the_module):
    # Per test: the address of the cluster this process is connected to now (an executor test
    # may have replaced it); {unique} gives each test its own empty key prefix on it.
    return Backend("cluster_memory", "ray", {"address": ray_address(), "prefix": "{unique}"}, plugins=PLUGINS)
