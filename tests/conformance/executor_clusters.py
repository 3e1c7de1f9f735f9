"""Ray and Dask clusters for the conformance suites (not collected).

``ray_address()`` / ``dask_address()`` return the cluster a test should use: the separately
started one CI exports (``FLOWDAPT_TEST_RAY_ADDRESS``, ``FLOWDAPT_TEST_DASK_ADDRESS``; see
``scripts/ci/setup-ray.sh`` and ``setup-dask.sh``), else a small one started in this test process
on first use and kept for the session (closed at exit).
"""

from __future__ import annotations

import atexit
import os
import threading

_lock = threading.Lock()
_dask_cluster = None


def external_ray_address() -> str | None:
    return os.environ.get("FLOWDAPT_TEST_RAY_ADDRESS") or None


def external_dask_address() -> str | None:
    return os.environ.get("FLOWDAPT_TEST_DASK_ADDRESS") or None


def ray_address() -> str:
    external = external_ray_address()
    if external:
        return external
    import ray

    with _lock:
        if not ray.is_initialized():
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        return ray.get_runtime_context().gcs_address


def dask_address() -> str:
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
