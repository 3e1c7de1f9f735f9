"""Run semantics (DESIGN.md section 4) through the public Python API on every Local mode."""

from __future__ import annotations

import pytest

from flowdapt import execute_workflow
from flowdapt.builtin.local_executor import LocalExecutor
from flowdapt.resources import Config

MODES = ["inline", "thread", "process"]


def wf(*stages, name="wf", annotations=None):
    meta = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"kind": "workflow", "metadata": meta, "spec": {"stages": list(stages)}}


def stage(name, target, *, depends_on=(), type="simple", **options):
    return {
        "name": name,
        "target": f"core_stages.{target}",
        "type": type,
        "depends_on": list(depends_on),
        "options": options,
    }


@pytest.fixture(params=MODES)
def executor(request, settings, plugins):
    return LocalExecutor(request.param, workers=2, settings=settings)


def run(workflow, input=None, executor=None, **kwargs):
    return execute_workflow(workflow, input, executor=executor, **kwargs)


def test_example_map_over_previous_output(executor):
    r = run(wf(stage("s1", "numbers"), stage("s2", "square", depends_on=["s1"], type="parameterized")), executor=executor)
    assert r.state == "finished", r.error
    assert r.result == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    assert r.finished_at >= r.started_at
    assert r.stages["s2"].items_total == 10 and r.stages["s2"].items_done == 10
    assert r.stages["s1"].state == "finished" and r.stages["s1"].items_total is None


def test_root_stage_gets_input_filtered_to_its_parameters(executor):
    r = run(wf(stage("s", "echo_kwargs")), {"a": 1, "unused": 5}, executor=executor)
    assert r.result == {"a": 1, "b": 2}
    r = run(wf(stage("s", "takes_everything")), {"x": 1, "y": 2}, executor=executor)
    assert r.result == {"x": 1, "y": 2}


def test_dependency_outputs_are_positional_in_depends_on_order(executor):
    r = run(
        wf(
            stage("five", "numbers"),
            stage("three", "numbers"),
            stage("t5", "total", depends_on=["five"]),
            stage("t3", "total", depends_on=["three"]),
            stage("collect", "collect", depends_on=["t3", "t5"]),
        ),
        {"n": 4},
        executor=executor,
    )
    assert r.result == [6, 6]
    r = run(wf(stage("a", "numbers"), stage("b", "collect", depends_on=["a"])), {"n": 2}, executor=executor)
    assert r.result == [[0, 1]]


def test_extra_dependency_outputs_are_dropped_without_varargs(executor):
    r = run(
        wf(stage("a", "numbers"), stage("b", "numbers"), stage("c", "first_only", depends_on=["a", "b"])),
        {"n": 3},
        executor=executor,
    )
    assert r.result == [0, 1, 2]


def test_map_on_input_key_with_dependency_outputs(executor):
    r = run(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": [1, 2]}, executor=executor)
    assert r.result == [2, 4]
    r = run(
        wf(
            stage("offset", "no_params"),
            stage("m", "add_offset", depends_on=["off"], type="parameterized", map_on="xs"),
            stage("off", "total", depends_on=["nums"]),
            stage("nums", "numbers"),
        ),
        {"xs": [1, 2, 3], "n": 3},
        executor=executor,
    )
    assert r.result == {"offset": "ok", "m": [4, 5, 6]}


def test_map_passes_remaining_dependency_outputs_to_each_item(executor):
    r = run(
        wf(
            stage("items", "numbers"),
            stage("offset", "total", depends_on=["items"]),
            stage("m", "add_offset", depends_on=["items", "offset"], type="parameterized"),
        ),
        {"n": 4},
        executor=executor,
    )
    assert r.result == [6, 7, 8, 9]


def test_several_sinks_give_a_mapping(executor):
    r = run(wf(stage("a", "numbers"), stage("b", "total", depends_on=["a"]), stage("c", "no_params")), {"n": 3}, executor=executor)
    assert r.result == {"b": 3, "c": "ok"}


def test_empty_map(executor):
    r = run(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": []}, executor=executor)
    assert r.state == "finished" and r.result == []


def test_large_map_keeps_item_order(executor):
    r = run(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": list(range(5000))}, executor=executor)
    assert r.result == [2 * i for i in range(5000)]
    assert r.stages["m"].items_done == 5000


def test_failure_is_recorded_with_type_message_and_traceback(executor):
    r = run(wf(stage("test_stage", "test_stage_error")), executor=executor)
    assert r.state == "failed"
    assert r.result == ["Exception", "test_stage_error: Failure"]
    assert r.error.stage == "test_stage" and "test_stage_error" in r.error.traceback
    assert r.stages["test_stage"].state == "failed"


def test_failure_skips_dependents(executor):
    r = run(wf(stage("a", "fail"), stage("b", "total", depends_on=["a"])), executor=executor)
    assert r.state == "failed" and r.result == ["ValueError", "boom"]
    assert r.stages["b"].state == "skipped"


def test_item_failure_fails_the_stage_by_default(executor):
    r = run(wf(stage("m", "fail_on_three", type="parameterized", map_on="x")), {"x": [1, 2, 3, 4]}, executor=executor)
    assert r.state == "failed"
    assert r.result[0] == "RuntimeError" and "bad item 3" in r.result[1] and "item 2" in r.result[1]


def test_partial_failure_keeps_going_and_records_failures(executor):
    r = run(
        wf(stage("m", "fail_on_three", type="parameterized", map_on="x", allow_partial_failure=True)),
        {"x": [1, 2, 3, 4]},
        executor=executor,
    )
    assert r.state == "finished"
    assert r.result == [1, 2, 4]
    record = r.stages["m"]
    assert record.items_failed == 1 and record.items_done == 4
    assert record.failures[0].index == 2 and record.failures[0].error == ["RuntimeError", "bad item 3"]


def test_retries(executor, tmp_path):
    counter = str(tmp_path / "count")
    r = run(wf(stage("f", "flaky", retries=2)), {"path": counter}, executor=executor)
    assert r.state == "finished" and r.result == 3
    assert r.stages["f"].attempts == 3
    r = run(wf(stage("f", "flaky", retries=0)), {"path": str(tmp_path / "other")}, executor=executor)
    assert r.state == "failed" and r.result[0] == "ConnectionError"


def test_timeout(settings, plugins):
    for mode in ("process", "inline"):
        r = run(wf(stage("s", "sleepy", timeout=0.2)), {"seconds": 3}, executor=LocalExecutor(mode, workers=1, settings=settings))
        assert r.state == "failed", mode
        assert r.result[0] == "StageTimeoutError" and "timed out" in r.result[1]


def test_async_stage_functions(executor):
    r = run(wf(stage("m", "async_double", type="parameterized", map_on="x")), {"x": [1, 2, 3]}, executor=executor)
    assert r.result == [2, 4, 6]


def test_run_context_fields(executor):
    r = run(
        wf(stage("ctx", "context_fields"), name="ctxwf"),
        {"k": "v"},
        executor=executor,
        config={"alpha": 1},
        namespace="ns1",
    )
    assert r.state == "finished", r.error
    assert r.result == {
        "input": {"k": "v"},
        "config": {"alpha": 1},
        "namespace": "ns1",
        "executor": "local",
        "workflow": "ctxwf",
        "run_name": r.name,
        "run_state": "running",
    }


def test_configs_selected_by_name_and_annotation(executor):
    def config(name, selector, data):
        return Config.model_validate({"kind": "config", "metadata": {"name": name}, "spec": {"selector": selector, "data": data}})

    configs = [
        config("by-name", {"type": "name", "value": "cfgwf"}, {"factor": 2, "a": 1}),
        config("by-group", {"type": "annotation", "value": {"group": "g"}}, {"factor": 3}),
        config("other", {"type": "name", "value": "nope"}, {"factor": 100}),
        config("two-keys", {"type": "annotation", "value": {"group": "g", "env": "prod"}}, {"factor": 999}),
        config("no-selector", None, {"factor": 7}),
    ]
    r = run(
        wf(stage("m", "context_in_map", type="parameterized", map_on="x"), name="cfgwf", annotations={"group": "g"}),
        {"x": [1]},
        executor=executor,
        config=configs,
    )
    assert r.result == [[1, 3]]  # annotation configs merge after name configs; a partial annotation match does not apply


def test_callable_targets_and_lambdas(executor):
    workflow = wf(
        {"name": "s1", "target": lambda: list(range(3))},
        {"name": "s2", "target": lambda x: x + 1, "type": "parameterized", "depends_on": ["s1"]},
    )
    assert run(workflow, executor=executor).result == [1, 2, 3]


def test_return_result():
    from flowdapt.api import execute_workflow as ew

    workflow = wf({"name": "s", "target": lambda n: n * 2})
    assert ew(workflow, {"n": 4}, executor=LocalExecutor("inline"), return_result=True) == 8


def test_stages_start_when_their_own_dependencies_finish(settings, plugins):
    r = run(
        wf(
            stage("a", "a_fast"),
            stage("w", "wait_for_b"),
            stage("b", "b_after_a", depends_on=["a"]),
            stage("j", "join", depends_on=["b", "w"]),
        ),
        executor=LocalExecutor("thread", workers=3, settings=settings),
    )
    assert r.state == "finished", r.result
    assert r.result == "abw"


def test_process_pool_spreads_map_items_over_workers(settings, plugins):
    r = run(
        wf(stage("m", "pid_of", type="parameterized", map_on="x")),
        {"x": list(range(64))},
        executor=LocalExecutor("process", workers=2, settings=settings),
    )
    assert len(set(r.result)) == 2


def test_executor_reused_across_runs(settings, plugins):
    import asyncio

    from flowdapt.api import execute_workflow_async

    async def main():
        ex = LocalExecutor("process", workers=2, settings=settings)
        await ex.start()
        try:
            runs = await asyncio.gather(
                *(
                    execute_workflow_async(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": [i, i + 1]}, executor=ex)
                    for i in range(5)
                )
            )
        finally:
            await ex.stop()
        return [r.result for r in runs]

    assert asyncio.run(main()) == [[2 * i, 2 * i + 2] for i in range(5)]


def test_execute_workflow_inside_a_running_loop(settings, plugins):
    import asyncio

    async def main():
        return execute_workflow(wf(stage("s", "no_params")), executor=LocalExecutor("inline"))

    assert asyncio.run(main()).result == "ok"


def test_default_executor_from_settings(settings, plugins):
    r = execute_workflow(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": [1]})
    assert r.result == [2] and r.executor == "local"


def test_killed_worker_fails_the_run_or_retries_never_hangs(settings, plugins, tmp_path):
    import asyncio

    from flowdapt.api import execute_workflow_async

    async def main():
        ex = LocalExecutor("process", workers=2, settings=settings)
        await ex.start()
        try:
            dead = await asyncio.wait_for(execute_workflow_async(wf(stage("d", "die_always")), executor=ex), 60)
            retried = await asyncio.wait_for(
                execute_workflow_async(wf(stage("d", "die_once", retries=1)), {"path": str(tmp_path / "marker")}, executor=ex), 60
            )
            after = await execute_workflow_async(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": [1, 2]}, executor=ex)
        finally:
            await ex.stop()
        return dead, retried, after

    dead, retried, after = asyncio.run(main())
    assert dead.state == "failed" and dead.result[0] == "WorkerCrashedError" and "worker process died" in dead.result[1]
    assert retried.state == "finished" and retried.result == "survived"
    assert after.result == [2, 4], "the pool is rebuilt after a crash"


def test_cancelling_a_run_kills_only_its_tasks(settings, plugins):
    import asyncio
    import time

    from flowdapt.api import execute_workflow_async
    from flowdapt.resources.run import WorkflowRun

    async def main():
        ex = LocalExecutor("process", workers=2, settings=settings)
        await ex.start()
        try:
            doomed_run = WorkflowRun(workflow="wf")
            doomed = asyncio.ensure_future(
                execute_workflow_async(wf(stage("s", "sleepy")), {"seconds": 60}, executor=ex, run=doomed_run)
            )
            other = asyncio.ensure_future(execute_workflow_async(wf(stage("s", "sleepy")), {"seconds": 1.5}, executor=ex))
            await asyncio.sleep(0.5)
            started = time.monotonic()
            doomed.cancel()
            with pytest.raises(asyncio.CancelledError):
                await doomed
            cancel_time = time.monotonic() - started
            other_run = await asyncio.wait_for(other, 30)
            after = await execute_workflow_async(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": [1, 2]}, executor=ex)
        finally:
            await ex.stop()
        return doomed_run, cancel_time, other_run, after

    doomed_run, cancel_time, other_run, after = asyncio.run(main())
    assert doomed_run.state == "cancelled" and doomed_run.stages["s"].state == "cancelled"
    assert cancel_time < 5
    assert other_run.state == "finished" and other_run.result == "slept"
    assert after.result == [2, 4]
