"""Dask-specific behaviour: connection errors, stage resources, worker environment, killed
workers, cancellation, unique keys, cluster info. One LocalCluster (2 workers) for the module."""

from __future__ import annotations

import asyncio
import time

import pytest

from flowdapt.api import execute_workflow_async
from flowdapt.errors import ConfigurationError
from flowdapt.testing.conformance.executors import run, stage, wf
from flowdapt_dask import DaskExecutor, DaskExecutorOptions


@pytest.fixture(scope="module")
def dask_executor(suite_settings):
    ex = DaskExecutor(
        DaskExecutorOptions(
            workers=2,
            threads_per_worker=1,
            resources={"special": 2},
            env_vars={"FLOWDAPT_DASK_TEST_MARK": "from-env"},
            dashboard_address=None,
        ),
        suite_settings,
    )
    asyncio.run(ex.start())
    yield ex
    asyncio.run(ex.stop())


def test_unreachable_scheduler_fails_within_seconds(suite_settings):
    ex = DaskExecutor(DaskExecutorOptions(address="tcp://127.0.0.1:1", connect_timeout=2), suite_settings)
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        asyncio.run(ex.start())
    assert time.monotonic() - started < 8


def test_compat_options():
    opts = DaskExecutorOptions.model_validate({"cluster_address": "tcp://h:8786", "cpus": 3, "threads": 2, "memory": "2GB"})
    assert opts.address == "tcp://h:8786" and opts.workers == 3 and opts.threads_per_worker == 2
    assert opts.memory_limit == "2GB"


def test_stage_resources_map_to_worker_resources(dask_executor):
    r = run(
        wf(
            stage("a", "needs_resources", resources={"cpus": 1, "special": 1, "memory": "100MB"}),
            stage("b", "double", depends_on=["a"], type="parameterized", resources={"special": 2}),
        ),
        {"x": [1, 2, 3]},
        dask_executor,
    )
    assert r.state == "finished", r.error
    assert r.result == [2, 4, 6]
    assert dask_executor._dask_resources({"CPU": 1.0, "special": 1.0, "memory": 1e8}) == {"CPU": 1.0, "special": 1.0}


def test_a_stage_asking_for_resources_no_worker_has_fails_naming_both(dask_executor):
    r = run(wf(stage("first", "no_params"), stage("train", "no_params", resources={"gpus": 1})), None, dask_executor)
    assert r.state == "failed" and r.result[0] == "InsufficientResourcesError"
    assert "stage 'train'" in r.result[1] and "GPU=1" in r.result[1] and "wait_for_resources" in r.result[1]
    r = run(wf(stage("big", "no_params", resources={"special": 3})), None, dask_executor)
    assert r.state == "failed" and "largest worker has special=2" in r.result[1]


def test_worker_environment(dask_executor):
    r = run(wf(stage("e", "env_var")), {"name": "FLOWDAPT_DASK_TEST_MARK"}, dask_executor)
    assert r.result == "from-env"


def test_a_killed_worker_is_retried_within_retries_or_fails(dask_executor, tmp_path):
    r = run(wf(stage("k", "kill_worker_once", retries=1)), {"path": str(tmp_path / "marker")}, dask_executor)
    assert r.state == "finished", r.result
    assert r.result == "survived"
    started = time.monotonic()
    r = run(wf(stage("k", "kill_worker_always")), None, dask_executor)
    assert r.state == "failed", r.result
    assert r.result[0] == "WorkerCrashedError" and "died" in r.result[1], r.result
    assert time.monotonic() - started < 60
    # The nanny restarts killed workers; the cluster keeps working.
    after = run(wf(stage("after", "no_params")), None, dask_executor)
    assert after.result == "ok", after.result


def test_cancelling_a_run_cancels_its_futures(dask_executor, tmp_path):
    async def main():
        task = asyncio.ensure_future(
            execute_workflow_async(
                wf(stage("slow", "wait_then_mark", type="parameterized", map_on="paths")),
                {"paths": [str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c"), str(tmp_path / "d")], "seconds": 2},
                executor=dask_executor,
            )
        )
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return dask_executor.client.processing()

    asyncio.run(main())
    # Queued chunks never start: with 2 workers, at most the 2 that were running finish.
    time.sleep(5)
    assert len(list(tmp_path.glob("[abcd]"))) <= 2
    assert not any(k.startswith("flowdapt-slow") for k in dask_executor.client.who_has())


def test_concurrent_runs_of_one_workflow_keep_their_own_results(dask_executor):
    async def main():
        workflow = wf(stage("n", "numbers"), stage("m", "square", depends_on=["n"], type="parameterized"), stage("t", "total", depends_on=["m"]))
        return await asyncio.gather(*(execute_workflow_async(workflow, {"n": i}, executor=dask_executor) for i in range(8)))

    runs = asyncio.run(main())
    assert [r.result for r in runs] == [sum(j * j for j in range(i)) for i in range(8)]
    # The driver holds no future of those runs once they ended, so the cluster can drop their data.
    import gc

    gc.collect()
    held = [k for k in dask_executor.client.futures if str(k).startswith(("flowdapt-n-", "flowdapt-m-", "flowdapt-t-"))]
    assert not held, held[:5]


def test_environment_info_reports_the_cluster(dask_executor):
    info = dask_executor.environment_info()
    assert info["executor"] == "dask" and info["workers"] == 2 and info["cpus"] == 2
    # One machine, as a node record in the shape of Ray's (what the original dashboard counts).
    [node] = info["nodes"]
    assert node["Alive"] is True and node["Resources"]["CPU"] == 2.0 and node["NodeManagerAddress"]
    assert info["address"].startswith("tcp://") and "dashboard_url" in info
