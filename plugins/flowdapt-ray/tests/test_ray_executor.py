"""Ray-specific behaviour: connection errors, stage resources, runtime env, killed workers,
cancellation, cluster info. One local Ray instance (2 CPUs) for the module."""

from __future__ import annotations

import asyncio
import time

import pytest

from flowdapt.api import execute_workflow_async
from flowdapt.errors import ConfigurationError, ValidationError
from flowdapt.testing.conformance.executors import run, stage, wf
from flowdapt_ray import RayExecutor, RayExecutorOptions


@pytest.fixture(scope="module")
def ray_executor(suite_settings, disconnect_ray):
    disconnect_ray()
    ex = RayExecutor(
        RayExecutorOptions(
            cpus=2,
            resources={"special": 2},
            env_vars={"FLOWDAPT_RAY_TEST_MARK": "from-runtime-env"},
            include_dashboard=False,
            log_to_driver=False,
        ),
        suite_settings,
    )
    asyncio.run(ex.start())
    yield ex
    asyncio.run(ex.stop())
    disconnect_ray()


def test_unreachable_address_fails_within_seconds(suite_settings):
    ex = RayExecutor(RayExecutorOptions(address="127.0.0.1:1", connect_timeout=2), suite_settings)
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        asyncio.run(ex.start())
    assert time.monotonic() - started < 5
    with pytest.raises(ConfigurationError, match="not 'auto', 'host:port'"):
        asyncio.run(RayExecutor(RayExecutorOptions(address="nonsense"), suite_settings).start())


def test_options_from_settings_and_compat_keys():
    opts = RayExecutorOptions.model_validate({"cluster_address": "ray://h:10001", "upload_plugins": True})
    assert opts.address == "ray://h:10001" and opts.ship_plugins is True
    assert RayExecutorOptions.model_validate({"address": "local"}).address is None
    with pytest.raises(Exception, match="extra"):
        RayExecutorOptions.model_validate({"adress": "x"})


def test_stage_resources_map_to_task_options(ray_executor):
    r = run(
        wf(
            stage("a", "needs_resources", resources={"cpus": 1, "memory": "100MB", "special": 1}),
            stage("b", "double", depends_on=["a"], type="parameterized", resources={"special": 0.5}),
        ),
        {"x": [1, 2, 3]},
        ray_executor,
    )
    assert r.state == "finished", r.error
    options = ray_executor._task_options(
        type("S", (), {"name": "s", "options": type("O", (), {"retries": 2})()})(),
        {"CPU": 2.0, "GPU": 1.0, "memory": 8e9, "special": 1.0},
    )
    assert options["num_cpus"] == 2 and options["num_gpus"] == 1 and options["memory"] == 8e9
    assert options["resources"] == {"special": 1.0} and options["max_retries"] == 2


def test_a_stage_asking_for_resources_no_node_has_fails_naming_both(ray_executor):
    started = time.monotonic()
    r = run(wf(stage("first", "no_params"), stage("train", "no_params", resources={"gpus": 1})), None, ray_executor)
    assert r.state == "failed"
    assert r.result[0] == "InsufficientResourcesError"
    assert "stage 'train'" in r.result[1] and "GPU=1" in r.result[1] and "wait_for_resources" in r.result[1]
    assert r.error.stage == "train" and r.stages["first"].state == "skipped"
    r = run(wf(stage("big", "no_params", resources={"special": 5})), None, ray_executor)
    assert r.state == "failed" and "special=5" in r.result[1] and "largest node has special=2" in r.result[1]
    # A malformed size is refused before the run starts, as the server refuses it at apply time.
    with pytest.raises(ValidationError, match=r"resources\.memory: 'lots' is not a size"):
        run(wf(stage("bad", "no_params", resources={"memory": "lots"})), None, ray_executor)
    assert time.monotonic() - started < 10


def test_runtime_env_reaches_the_workers(ray_executor):
    r = run(wf(stage("e", "env_var")), {"name": "FLOWDAPT_RAY_TEST_MARK"}, ray_executor)
    assert r.result == "from-runtime-env"


def test_a_killed_worker_is_retried_within_retries_or_fails(ray_executor, tmp_path):
    r = run(wf(stage("k", "kill_worker_once", retries=1)), {"path": str(tmp_path / "marker")}, ray_executor)
    assert r.state == "finished", r.error
    assert r.result == "survived"
    started = time.monotonic()
    r = run(wf(stage("k", "kill_worker_always")), None, ray_executor)
    assert r.state == "failed"
    assert r.result[0] == "WorkerCrashedError" and "died" in r.result[1]
    assert time.monotonic() - started < 60


def test_cancelling_a_run_cancels_its_ray_tasks(ray_executor, tmp_path):
    marker = tmp_path / "finished"

    async def main():
        task = asyncio.ensure_future(
            execute_workflow_async(
                wf(stage("slow", "wait_then_mark", type="parameterized", map_on="paths")),
                {"paths": [str(marker)] * 2, "seconds": 4},
                executor=ray_executor,
            )
        )
        await asyncio.sleep(1.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    time.sleep(4)
    assert not marker.exists(), "a cancelled Ray task kept running to the end"
    r = run(wf(stage("after", "no_params")), None, ray_executor)
    assert r.result == "ok"  # the workers are usable after a cancellation


def test_environment_info_reports_the_cluster(ray_executor):
    info = ray_executor.environment_info()
    assert info["executor"] == "ray" and info["cpus"] == 2
    # Ray's own node records, as the original reported them (its dashboard counts the list).
    [node] = info["nodes"]
    assert node["Alive"] is True and node["Resources"]["CPU"] == 2.0 and node["NodeID"]
    assert info["memory"] > 0 and "dashboard_url" in info and info["address"]


def test_chunks_are_sized_from_cluster_cpus(ray_executor):
    planned = type("P", (), {"options": type("O", (), {"chunk_size": None})()})()
    assert ray_executor.workers == 2
    assert ray_executor.chunk_size(10_000, planned) == 1250  # 2 CPUs x 4 chunks each
