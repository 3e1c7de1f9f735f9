"""Local process workers run one native (BLAS/OpenMP) thread each, unless the user chose.

The workers start with ``spawn``: a forkserver keeps the environment of the moment it started
(the first test to use one), so only spawn sees this test's environment.
"""

from __future__ import annotations

import pytest

from flowdapt import execute_workflow
from flowdapt.builtin.local_executor import LocalExecutor

WORKFLOW = {
    "kind": "workflow",
    "metadata": {"name": "threads"},
    "spec": {"stages": [{"name": "env", "target": "worker_env_stages.native_threads"}]},
}


@pytest.fixture
def clean_thread_env(monkeypatch):
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_process_workers_get_one_native_thread(settings, plugins, clean_thread_env):
    result = execute_workflow(WORKFLOW, executor=LocalExecutor("process", workers=1, start_method="spawn", settings=settings),
                              return_result=True)
    assert result == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_a_thread_count_the_user_set_is_kept(settings, plugins, clean_thread_env):
    clean_thread_env.setenv("OPENBLAS_NUM_THREADS", "3")
    result = execute_workflow(WORKFLOW, executor=LocalExecutor("process", workers=1, start_method="spawn", settings=settings),
                              return_result=True)
    assert result == {"OMP_NUM_THREADS": None, "OPENBLAS_NUM_THREADS": "3", "MKL_NUM_THREADS": None}
