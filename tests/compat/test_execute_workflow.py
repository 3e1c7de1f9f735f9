"""Stage code written against the original's API, run through the original's
``flowdapt.compute.resources.workflow.execute.execute_workflow`` on the original's
``flowdapt.compute.executor.local.LocalExecutor``, as the original plugins' test suites do."""

from __future__ import annotations

import logging
import re

import pytest

from flowdapt.compute.executor.local import LocalExecutor
from flowdapt.compute.resources.workflow.execute import execute_workflow
from flowdapt.lib.errors import ResourceNotFoundError
from tests.compat.conftest import pipeline, pipeline_config, single_stage

pytestmark = pytest.mark.timeout(120)


def check_first_run(result: dict) -> None:
    assert result["cities"] == ["Los Angeles", "Oslo"]
    # 24 rows; shifting by 1 and 2 adds NaNs to the first two rows, which are dropped.
    assert result["shapes"] == {"Los Angeles": [22, 6], "Oslo": [22, 6]}
    by_city = {item["city"]: item for item in result["trained"]}
    oslo = by_city["Oslo"]
    assert oslo["features"] == sorted(
        ["%-temp", "%-wind", "%-temp_shift-1", "%-wind_shift-1", "%-temp_shift-2", "%-wind_shift-2"]
    )
    assert oslo["labels"] == ["&-target"]
    # Oslo's targets are 5..28; the rows left are 7..28, whose mean the model predicts.
    assert oslo["prediction"] == pytest.approx(17.5)
    assert by_city["Los Angeles"]["prediction"] == pytest.approx(24.5)
    assert oslo["neighbours"] is False and oslo["behind"] is True
    assert re.fullmatch(r"[a-z]+-[a-z]+", oslo["model"])


async def test_pipeline_on_the_originals_thread_executor_then_processes(flowdapt_app_dir, caplog):
    executor = LocalExecutor(use_processes=False, cpus=2)
    assert executor.kind == "local"
    await executor.start()
    try:
        assert executor.running
        info = await executor.environment_info()
        assert info["processes"] is False and info["cpus"] == 2
        with caplog.at_level(logging.INFO, logger="flowdapt_compat_stages"):
            result = await execute_workflow(
                pipeline(), namespace="testing", return_result=True, executor=executor, config=pipeline_config()
            )
        check_first_run(result)
        fetched = [r for r in caplog.records if r.name == "flowdapt_compat_stages" and r.getMessage().startswith("CityFetched")]
        assert sorted(r.getMessage() for r in fetched) == [
            "CityFetched city='Los Angeles' rows=24",
            "CityFetched city='Oslo' rows=24",
        ]
        assert fetched[0].fields["rows"] == 24
    finally:
        await executor.close()
    assert not executor.running

    # The same artifacts, five hours later, from worker processes: the data found is extended.
    processes = LocalExecutor(use_processes=True, cpus=2)
    run = await execute_workflow(
        pipeline(), namespace="testing", executor=processes, config=pipeline_config(end="2026-01-02T05:00:00")
    )
    assert not processes.running, "an executor execute_workflow started is closed again"
    assert run.state == "finished", run.error
    assert run.result["shapes"] == {"Los Angeles": [27, 6], "Oslo": [27, 6]}
    assert all(item["rows"] == 27 for item in run.result["trained"])


async def test_missing_object_raises_what_the_originals_callers_catch(flowdapt_app_dir):
    with pytest.raises(FileNotFoundError, match="no object 'nothing-here' in namespace 'testing'") as info:
        await execute_workflow(single_stage("missing", "read_missing"), namespace="testing", return_result=True)
    assert isinstance(info.value, KeyError) and isinstance(info.value, ResourceNotFoundError)
    assert "read_missing" in info.value.__cause__.traceback  # the stage's own traceback travels with it

    with pytest.raises(ValueError, match="broken on purpose"):
        await execute_workflow(single_stage("failing", "fail"), return_result=True)

    with pytest.raises(KeyError) as key_error:
        await execute_workflow(single_stage("lookup", "lookup"), return_result=True)
    assert key_error.value.args == ("city",)

    run = await execute_workflow(single_stage("failing", "fail"))
    assert run.state == "failed"
    assert (run.error.type, run.error.message) == ("ValueError", "broken on purpose")


async def test_default_executor_is_a_thread_pool_and_params_reach_it(flowdapt_app_dir):
    # No executor: a thread-pool LocalExecutor, as in the original; its arguments pass through.
    result = await execute_workflow(pipeline(), return_result=True, config=pipeline_config(study="threads"))
    check_first_run(result)
    result = await execute_workflow(
        pipeline(), return_result=True, config=pipeline_config(study="procs"), use_processes=True, cpus=2
    )
    check_first_run(result)


async def test_pipeline_on_the_originals_dask_executor(flowdapt_app_dir):
    pytest.importorskip("flowdapt_dask")
    from flowdapt.compute.executor.dask import DaskExecutor

    # The original's arguments: a LocalCluster of 2 single-threaded workers, default memory.
    executor = DaskExecutor(cpus=2, threads=1, memory="auto", gpus="disabled", dashboard_port=9968)
    assert executor.kind == "dask"
    await executor.start()
    try:
        info = await executor.environment_info()
        assert info["executor"] == "dask"
        result = await execute_workflow(
            pipeline(), namespace="testing", return_result=True, executor=executor, config=pipeline_config(study="dask")
        )
    finally:
        await executor.close()
    check_first_run(result)
