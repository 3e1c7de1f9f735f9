"""The Python path: ``flowdapt.execute_workflow`` without an executor reuses one started default
executor across calls, stops it at exit, and a Local run never imports Ray or Dask."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from flowdapt import execute_workflow
from flowdapt.api import _default_executor, close_default_executor

HERE = Path(__file__).parent


def pids_workflow(n: int = 8) -> dict:
    return {
        "kind": "workflow",
        "metadata": {"name": "pids"},
        "spec": {
            "stages": [
                {"name": "numbers", "target": "core_stages.numbers"},
                {"name": "pid", "target": "core_stages.pid_of", "type": "parameterized", "depends_on": ["numbers"]},
            ]
        },
    }


@pytest.fixture
def default_executor(settings, plugins):
    close_default_executor()
    yield
    close_default_executor()


def test_repeated_calls_reuse_one_started_executor(default_executor, settings, plugins):
    first = execute_workflow(pids_workflow(), {"n": 8}, settings=settings, plugins=plugins)
    assert first.state == "finished"
    executor = _default_executor.executor
    assert executor is not None and executor.running and executor.name == "local"
    workers = set(first.result)
    assert os.getpid() not in workers  # process mode: the stages ran in worker processes
    for _ in range(3):
        again = execute_workflow(pids_workflow(), {"n": 8}, settings=settings, plugins=plugins)
        assert again.state == "finished" and _default_executor.executor is executor
        workers |= set(again.result)
    # A pool per call would bring new processes each time; the kept one has `workers` of them.
    assert len(workers) <= executor.workers

    # Other options: the kept executor is replaced (stopped), not leaked beside the new one.
    execute_workflow(
        pids_workflow(), {"n": 2}, settings=settings, plugins=plugins, executor_options={"mode": "thread", "workers": 2}
    )
    assert not executor.running and _default_executor.executor is not executor
    assert _default_executor.executor.mode == "thread"

    close_default_executor()
    assert _default_executor.executor is None
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in workers):
        assert time.monotonic() < deadline, "worker processes outlived close_default_executor()"
        time.sleep(0.05)


def test_inline_runs_in_the_calling_thread_and_is_not_kept(default_executor, settings, plugins):
    import threading

    workflow = {"kind": "workflow", "metadata": {"name": "t"}, "spec": {"stages": [{"name": "t", "target": "core_stages.thread_ident"}]}}
    result = execute_workflow(
        workflow, settings=settings, plugins=plugins, executor_options={"mode": "inline"}, return_result=True
    )
    assert result == threading.get_ident()
    assert _default_executor.executor is None


SCRIPT = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import flowdapt
wf = {"kind": "workflow", "metadata": {"name": "pids"}, "spec": {"stages": [
    {"name": "numbers", "target": "core_stages.numbers"},
    {"name": "pid", "target": "core_stages.pid_of", "type": "parameterized", "depends_on": ["numbers"]}]}}
times, pids = [], set()
for _ in range(3):
    t = time.perf_counter()
    pids |= set(flowdapt.execute_workflow(wf, {"n": 4}, return_result=True))
    times.append(time.perf_counter() - t)
loaded = sorted(m for m in ("ray", "distributed", "dask") if m in sys.modules)
print(json.dumps({"pids": sorted(pids), "loaded": loaded, "times": times}))
"""


def test_a_script_exits_cleanly_and_a_local_run_imports_neither_ray_nor_dask(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDAPT__")}
    env.update(FLOWDAPT__APP_DIR=str(tmp_path / "app"), FLOWDAPT__CLUSTER_MEMORY__BACKEND="memory",
               FLOWDAPT__EXECUTOR__OPTIONS__WORKERS="2",
               # The stage module is put on sys.path by the script, not beside it: allow it by name.
               FLOWDAPT__ALLOWED_TARGETS='["core_stages"]')
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(HERE)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 60
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] == [], "a Local run imported Ray or Dask"
    # The workers the script used are gone: the default executor was stopped at exit.
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in out["pids"]):
        assert time.monotonic() < deadline, "worker processes outlived the script"
        time.sleep(0.05)
