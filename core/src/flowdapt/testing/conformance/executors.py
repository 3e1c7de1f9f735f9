"""The executor contract: workflow semantics that every executor gives identically.

Each case runs on the executor under test and checks the documented result (DESIGN.md section 4,
reference section 3.3). Cases whose run record is deterministic also run on the reference
executor (the built-in Local executor, inline) and must give an *identical* record: state,
result, error, and per-stage state, item counts, failures and attempts.

Run it against any registered executor::

    pytest --pyargs flowdapt.testing.conformance --flowdapt-executor dask:address=tcp://127.0.0.1:8786

or collect it in a plugin's own tests by subclassing :class:`ExecutorConformance` in a module
that overrides the ``flowdapt_executor_backend`` fixture (see docs/plugins.md)::

    @pytest.fixture(scope="module")
    def flowdapt_executor_backend():
        return Backend("executors", "myexec", {"workers": 2})

    class TestMyExecutor(ExecutorConformance):
        pass

The executor is built through the plugin registry with the backend's options and started once
per test class. What the executor can do comes from the executor itself: ``workers`` (tasks at
once) and ``ships_pickles`` (whether its workers are other processes). The object-store case
uses the cluster memory the suite's settings name (``cluster_memory.backend``; the Backend's
``settings`` may set it) and skips when no loaded plugin registers it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from flowdapt import execute_workflow
from flowdapt.resources import Config

#: Stage functions of the suite; importable on every worker where flowdapt is installed.
STAGES = "flowdapt.testing.conformance.stages"


# -- helpers --------------------------------------------------------------------------------------


def wf(*stages, name="wf", annotations=None):
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"kind": "workflow", "metadata": meta, "spec": {"stages": list(stages)}}


def stage(name, target, *, depends_on=(), type="simple", resources=None, **options):
    """A stage whose string target names a function of :mod:`flowdapt.testing.conformance.stages`."""
    out = {
        "name": name,
        "target": f"{STAGES}.{target}" if isinstance(target, str) else target,
        "type": type,
        "depends_on": list(depends_on),
        "options": options,
    }
    if resources:
        out["resources"] = resources
    return out


def run(workflow, input=None, executor=None, **kwargs):
    return execute_workflow(workflow, input, executor=executor, **kwargs)


def summary(run) -> dict[str, Any]:
    """What must be identical on every executor (timestamps, names and uids aside)."""
    stages = {}
    for name, record in run.stages.items():
        entry = {"state": str(record.state), "items_total": record.items_total, "error": record.error}
        if record.state == "finished":
            entry.update(
                items_done=record.items_done,
                items_failed=record.items_failed,
                failures=sorted((f.index, tuple(f.error)) for f in record.failures),
                attempts=record.attempts,
            )
        stages[name] = entry
    return {
        "state": str(run.state),
        "result": run.result,
        "error": None if run.error is None else (run.error.type, run.error.message, run.error.stage),
        "stages": stages,
    }


def same_as_reference(workflow, input, executor, reference, **kwargs):
    """Run on ``executor`` and on the reference; the records must be identical. Returns the run."""
    got = run(workflow, input, executor, **kwargs)
    expected = run(workflow, input, reference, **kwargs)
    assert summary(got) == summary(expected), f"{executor.name} differs from the reference executor"
    return got


def executor_settings(backend, app_dir):
    """Settings for an executor suite's app dir, installed process-wide with the backend's plugins.

    Returns a callable that undoes it. Usable outside the suite (a plugin's own executor tests).
    """
    from flowdapt.plugins import set_plugin_system
    from flowdapt.settings import load_settings, set_settings

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("FLOWDAPT__")}
    overrides = dict(backend.settings)
    # The suite's stage module is an allowed target, as a user's package is through the setting.
    overrides["allowed_targets"] = [*overrides.get("allowed_targets", []), STAGES]
    settings = load_settings(app_dir=app_dir, overrides=overrides)
    set_settings(settings)
    set_plugin_system(backend.plugin_system())

    def restore() -> None:
        set_settings(None)
        set_plugin_system(None)
        os.environ.update(saved)

    return settings, restore


class ExecutorConformance:
    """The executor conformance cases; subclass it as ``Test...`` to collect them."""

    @pytest.fixture(scope="class")
    @classmethod
    def suite_settings(cls, tmp_path_factory, flowdapt_executor_backend):
        """One app dir per class (the executor lives across tests); installed process-wide."""
        app_dir = tmp_path_factory.mktemp("executors") / "app"
        settings, restore = executor_settings(flowdapt_executor_backend, app_dir)
        yield settings
        restore()

    @pytest.fixture(scope="class")
    @classmethod
    def executor(cls, flowdapt_executor_backend, suite_settings):
        from flowdapt.plugins import get_plugin_system

        backend = flowdapt_executor_backend
        options = backend.options_for(suite_settings.app_dir)
        ex = get_plugin_system().create("executors", backend.name, options, suite_settings)
        asyncio.run(ex.start())
        yield ex
        asyncio.run(ex.stop())

    @pytest.fixture(scope="class")
    @classmethod
    def reference(cls, suite_settings):
        """The reference every deterministic record is compared with: Local, inline."""
        from flowdapt.plugins import get_plugin_system

        return get_plugin_system().create("executors", "local", {"mode": "inline"}, suite_settings)

    # -- argument passing -----------------------------------------------------------------------------

    def test_map_over_previous_output(self, executor, reference):
        r = same_as_reference(
            wf(stage("s1", "numbers"), stage("s2", "square", depends_on=["s1"], type="parameterized")), None, executor, reference
        )
        assert r.state == "finished", r.error
        assert r.result == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
        assert r.stages["s2"].items_total == 10 and r.stages["s2"].items_done == 10
        assert r.stages["s1"].state == "finished" and r.stages["s1"].items_total is None
        assert r.executor == executor.name

    def test_root_stage_gets_input_filtered_to_its_parameters(self, executor, reference):
        r = same_as_reference(wf(stage("s", "echo_kwargs")), {"a": 1, "unused": 5}, executor, reference)
        assert r.result == {"a": 1, "b": 2}
        r = same_as_reference(wf(stage("s", "takes_everything")), {"x": 1, "y": 2}, executor, reference)
        assert r.result == {"x": 1, "y": 2}

    def test_every_root_stage_gets_the_whole_input(self, executor, reference):
        r = same_as_reference(
            wf(stage("a", "echo_kwargs"), stage("b", "takes_everything"), stage("c", "numbers")),
            {"a": 7, "n": 2},
            executor,
            reference,
        )
        assert r.result == {"a": {"a": 7, "b": 2}, "b": {"a": 7, "n": 2}, "c": [0, 1]}

    def test_dependency_outputs_are_positional_in_depends_on_order(self, executor, reference):
        r = same_as_reference(
            wf(
                stage("five", "numbers"),
                stage("three", "as_tuple"),
                stage("t5", "total", depends_on=["five"]),
                stage("t3", "total", depends_on=["three"]),
                stage("collect", "collect", depends_on=["t3", "t5"]),
            ),
            {"n": 4},
            executor,
            reference,
        )
        assert r.result == [6, 6]
        r = same_as_reference(wf(stage("a", "numbers"), stage("b", "collect", depends_on=["a"])), {"n": 2}, executor, reference)
        assert r.result == [[0, 1]]

    def test_extra_dependency_outputs_are_dropped_without_varargs(self, executor, reference):
        r = same_as_reference(
            wf(stage("a", "numbers"), stage("b", "as_dict"), stage("c", "first_only", depends_on=["a", "b"])),
            {"n": 3},
            executor,
            reference,
        )
        assert r.result == [0, 1, 2]

    def test_fan_out_and_fan_in(self, executor, reference):
        r = same_as_reference(
            wf(
                stage("src", "numbers"),
                stage("sq", "square", depends_on=["src"], type="parameterized"),
                stage("dbl", "double", depends_on=["src"], type="parameterized"),
                stage("sum_sq", "total", depends_on=["sq"]),
                stage("sum_dbl", "total", depends_on=["dbl"]),
                stage("both", "add", depends_on=["sum_sq", "sum_dbl"]),
            ),
            {"n": 6},
            executor,
            reference,
        )
        assert r.result == (0 + 1 + 4 + 9 + 16 + 25) + 2 * 15

    # -- maps -----------------------------------------------------------------------------------------

    def test_map_on_input_key(self, executor, reference):
        r = same_as_reference(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": [1, 2]}, executor, reference)
        assert r.result == [2, 4]

    def test_map_on_input_key_with_dependency_outputs(self, executor, reference):
        r = same_as_reference(
            wf(
                stage("offset", "no_params"),
                stage("m", "add_offset", depends_on=["off"], type="parameterized", map_on="xs"),
                stage("off", "total", depends_on=["nums"]),
                stage("nums", "numbers"),
            ),
            {"xs": [1, 2, 3], "n": 3},
            executor,
            reference,
        )
        assert r.result == {"offset": "ok", "m": [4, 5, 6]}

    def test_map_on_a_tuple_in_the_input(self, executor, reference):
        r = same_as_reference(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": (1, 2, 3)}, executor, reference)
        assert r.result == [2, 4, 6]

    def test_map_passes_remaining_dependency_outputs_to_each_item(self, executor, reference):
        r = same_as_reference(
            wf(
                stage("items", "numbers"),
                stage("offset", "total", depends_on=["items"]),
                stage("m", "add_offset", depends_on=["items", "offset"], type="parameterized"),
            ),
            {"n": 4},
            executor,
            reference,
        )
        assert r.result == [6, 7, 8, 9]

    def test_map_over_a_map_and_a_tuple(self, executor, reference):
        r = same_as_reference(
            wf(
                stage("t", "as_tuple"),
                stage("sq", "square", depends_on=["t"], type="parameterized"),
                stage("lbl", "label", depends_on=["sq"], type="parameterized"),
                stage("d", "describe", depends_on=["lbl", "t"]),
            ),
            {"n": 50},
            executor,
            reference,
        )
        assert r.result == {"count": 50, "offset": tuple(range(50)), "first": "item-0"}
        assert r.stages["lbl"].items_total == 50

    def test_map_over_something_that_is_not_a_list_fails_clearly(self, executor, reference):
        r = same_as_reference(wf(stage("d", "as_dict"), stage("m", "double", depends_on=["d"], type="parameterized")), None, executor, reference)
        assert r.state == "failed"
        assert r.result[0] == "TypeError" and "maps over a list" in r.result[1] and "dict" in r.result[1]
        r = same_as_reference(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": 5}, executor, reference)
        assert r.state == "failed" and r.result[0] == "TypeError"

    def test_empty_map(self, executor, reference):
        r = same_as_reference(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": []}, executor, reference)
        assert r.state == "finished" and r.result == []
        r = same_as_reference(
            wf(stage("e", "numbers"), stage("m", "double", depends_on=["e"], type="parameterized"), stage("t", "total", depends_on=["m"])),
            {"n": 0},
            executor,
            reference,
        )
        assert r.result == 0

    def test_large_map_keeps_item_order(self, executor, reference):
        r = same_as_reference(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": list(range(5000))}, executor, reference)
        assert r.result == [2 * i for i in range(5000)]
        assert r.stages["m"].items_done == 5000
        r = same_as_reference(
            wf(stage("n", "numbers"), stage("m", "label", depends_on=["n"], type="parameterized", chunk_size=7)),
            {"n": 1000},
            executor,
            reference,
        )
        assert r.result == [f"item-{i}" for i in range(1000)]

    def test_several_sinks_give_a_mapping(self, executor, reference):
        r = same_as_reference(
            wf(stage("a", "numbers"), stage("b", "total", depends_on=["a"]), stage("c", "no_params")), {"n": 3}, executor, reference
        )
        assert r.result == {"b": 3, "c": "ok"}

    def test_callable_targets_and_lambdas(self, executor, reference):
        workflow = wf(
            {"name": "s1", "target": lambda: list(range(3))},
            {"name": "s2", "target": lambda x: x + 1, "type": "parameterized", "depends_on": ["s1"]},
        )
        assert same_as_reference(workflow, None, executor, reference).result == [1, 2, 3]

    def test_async_stage_functions(self, executor, reference):
        r = same_as_reference(
            wf(stage("n", "async_numbers"), stage("m", "async_double", depends_on=["n"], type="parameterized")),
            {"n": 3},
            executor,
            reference,
        )
        assert r.result == [0, 2, 4]

    # -- failures -------------------------------------------------------------------------------------

    def test_failure_is_recorded_with_type_message_and_traceback(self, executor, reference):
        r = same_as_reference(wf(stage("test_stage", "test_stage_error")), None, executor, reference)
        assert r.state == "failed"
        assert r.result == ["Exception", "test_stage_error: Failure"]
        assert r.error.stage == "test_stage" and "test_stage_error" in r.error.traceback
        assert r.stages["test_stage"].state == "failed"

    def test_failure_skips_dependents_and_other_branches_finish_or_stop(self, executor, reference):
        r = same_as_reference(wf(stage("a", "fail"), stage("b", "total", depends_on=["a"])), None, executor, reference)
        assert r.state == "failed" and r.result == ["ValueError", "boom"]
        assert r.stages["b"].state == "skipped"

    def test_item_failure_fails_the_stage_by_default(self, executor, reference):
        r = same_as_reference(
            wf(stage("m", "fail_on_three", type="parameterized", map_on="x"), stage("t", "total", depends_on=["m"])),
            {"x": [1, 2, 3, 4]},
            executor,
            reference,
        )
        assert r.state == "failed"
        assert r.result[0] == "RuntimeError" and "bad item 3" in r.result[1] and "item 2" in r.result[1]
        assert r.stages["t"].state == "skipped"
        assert "fail_on_three" in r.error.traceback

    def test_partial_failure_keeps_going_and_records_failures(self, executor, reference):
        r = same_as_reference(
            wf(stage("m", "fail_on_multiples_of_seven", type="parameterized", map_on="x", allow_partial_failure=True)),
            {"x": list(range(30))},
            executor,
            reference,
        )
        assert r.state == "finished"
        assert r.result == [x for x in range(30) if x == 0 or x % 7]
        record = r.stages["m"]
        assert record.items_failed == 4 and record.items_done == 30
        assert sorted(f.index for f in record.failures) == [7, 14, 21, 28]
        assert {tuple(f.error) for f in record.failures} == {("ArithmeticError", f"{i} is a multiple of 7") for i in (7, 14, 21, 28)}

    def test_retries(self, executor, tmp_path):
        counter = str(tmp_path / "count")
        r = run(wf(stage("f", "flaky", retries=2)), {"path": counter}, executor)
        assert r.state == "finished" and r.result == 3
        assert r.stages["f"].attempts == 3
        r = run(wf(stage("f", "flaky", retries=0)), {"path": str(tmp_path / "other")}, executor)
        assert r.state == "failed" and r.result == ["ConnectionError", "attempt 1 failed"]

    def test_retries_of_map_items(self, executor, tmp_path):
        r = run(
            wf(stage("m", "flaky_item", type="parameterized", map_on="x", retries=1)),
            {"x": [1, 2, 3], "path": str(tmp_path / "item")},
            executor,
        )
        assert r.state == "finished", r.error
        assert r.result == [1, 2, 3]
        assert r.stages["m"].attempts == 2

    def test_timeouts_of_sync_and_async_functions(self, executor):
        for target in ("sleepy", "async_sleepy", "busy"):
            r = run(wf(stage("s", target, timeout=0.3)), {"seconds": 3}, executor)
            assert r.state == "failed", target
            assert r.result[0] == "StageTimeoutError", (target, r.result)
            assert "timed out" in r.result[1]
        r = run(wf(stage("s", "sleepy", timeout=5)), {"seconds": 0.05}, executor)
        assert r.result == "slept"

    # -- run context and config -------------------------------------------------------------------------

    def test_run_context_fields(self, executor):
        r = run(wf(stage("ctx", "context_fields"), name="ctxwf"), {"k": "v"}, executor, config={"alpha": 1}, namespace="ns1")
        assert r.state == "finished", r.error
        assert r.result == {
            "input": {"k": "v"},
            "config": {"alpha": 1},
            "namespace": "ns1",
            "executor": executor.name,
            "workflow": "ctxwf",
            "stages": ["ctx"],
            "run_name": r.name,
            "run_uid": str(r.uid),
            "run_state": "running",
        }

    def test_configs_selected_by_name_and_annotation_reach_every_item(self, executor, reference):
        def config(name, selector, data):
            return Config.model_validate({"kind": "config", "metadata": {"name": name}, "spec": {"selector": selector, "data": data}})

        configs = [
            config("by-name", {"type": "name", "value": "cfgwf"}, {"factor": 2, "a": 1}),
            config("by-group", {"type": "annotation", "value": {"group": "g"}}, {"factor": 3}),
            config("other", {"type": "name", "value": "nope"}, {"factor": 100}),
        ]
        r = same_as_reference(
            wf(stage("m", "context_in_map", type="parameterized", map_on="x"), name="cfgwf", annotations={"group": "g"}),
            {"x": [1, 2], "tag": "t"},
            executor,
            reference,
            config=configs,
            namespace="cfg-ns",
        )
        assert r.result == [[1, 3, "cfg-ns", "t"], [2, 3, "cfg-ns", "t"]]

    # -- DAG scheduling and concurrency -------------------------------------------------------------------

    def test_stages_start_when_their_own_dependencies_finish(self, executor, tmp_path):
        if executor.workers < 2:
            pytest.skip("needs two tasks at once (inline runs one at a time)")
        r = run(
            wf(stage("a", "a_fast"), stage("w", "wait_for_b"), stage("b", "b_after_a", depends_on=["a"]), stage("j", "join", depends_on=["b", "w"])),
            {"signal_dir": str(tmp_path)},
            executor,
        )
        assert r.state == "finished", r.result
        assert r.result == "abw"

    def test_map_items_spread_over_workers(self, executor):
        if executor.workers < 2 or not executor.ships_pickles:
            pytest.skip("one worker process (its workers share the driver's memory)")
        r = run(wf(stage("m", "pid_of", type="parameterized", map_on="x")), {"x": list(range(64))}, executor)
        assert len(set(r.result)) >= 2

    def test_concurrent_runs_of_one_workflow_do_not_collide(self, executor):
        from flowdapt.api import execute_workflow_async

        workflow = wf(stage("n", "numbers"), stage("m", "double", depends_on=["n"], type="parameterized"), stage("t", "total", depends_on=["m"]))

        async def main():
            runs = await asyncio.gather(*(execute_workflow_async(workflow, {"n": i}, executor=executor) for i in range(6)))
            return [r.result for r in runs]

        assert asyncio.run(main()) == [sum(2 * j for j in range(i)) for i in range(6)]

    # -- waiting for workers, live progress -----------------------------------------------------------

    def test_a_stage_waiting_for_a_busy_worker_does_not_count_the_wait(self, executor):
        """Every worker busy: the next run's stage time starts when its task began on a worker.
        An executor that says when a waiting task begins (``reports_start``) also keeps that
        stage, and its run, ``pending`` until then."""
        from flowdapt.api import execute_workflow_async
        from flowdapt.resources.run import WorkflowRun

        if executor.runs_in_caller:
            pytest.skip("inline runs one task at a time in the caller: nothing waits for a worker")
        slots = executor.workers
        hold = wf(stage("h", "slow_item", type="parameterized", map_on="x", chunk_size=1), name="hold")
        waiting_run = WorkflowRun(workflow="waits")

        async def main():
            holding = asyncio.ensure_future(
                execute_workflow_async(hold, {"x": list(range(slots)), "seconds": 3.0}, executor=executor)
            )
            await asyncio.sleep(0.5)
            waiting = asyncio.ensure_future(
                execute_workflow_async(wf(stage("s", "sleepy"), name="waits"), {"seconds": 0.3}, executor=executor, run=waiting_run)
            )
            await asyncio.sleep(1.5)
            seen = (waiting_run.state.value, waiting_run.stages["s"].state.value)
            return seen, await asyncio.wait_for(holding, 60), await asyncio.wait_for(waiting, 60)

        seen, held, done = asyncio.run(main())
        assert held.state == "finished" and done.state == "finished", (held.error, done.error)
        if executor.reports_start:
            assert seen == ("pending", "pending"), seen
        record = done.stages["s"]
        duration = (record.finished_at - record.started_at).total_seconds()
        assert 0.2 <= duration < 1.5, f"0.3 s of work after about 2 s of waiting counted as {duration:.2f} s"

    def test_map_progress_moves_before_a_chunk_of_slow_items_ends(self, executor):
        if not executor.reports_start:
            pytest.skip("the executor reports progress when chunks end (reports_start is False)")
        from flowdapt.api import execute_workflow_async

        seen: list[tuple[float, int]] = []

        def listener(event, run, stage_name):
            if event == "stage_progress":
                seen.append((asyncio.get_running_loop().time(), run.stages["m"].items_done))

        async def main():
            began = asyncio.get_running_loop().time()
            r = await execute_workflow_async(
                wf(stage("m", "slow_item", type="parameterized", map_on="x", chunk_size=15)),
                {"x": list(range(15)), "seconds": 0.15},
                executor=executor,
                listeners=[listener],
            )
            return r, began

        r, began = asyncio.run(main())
        assert r.state == "finished", r.error
        assert r.result == list(range(15)) and r.stages["m"].items_done == 15
        # One chunk of 15 items of 0.15 s: about 2.2 s; the driver heard of items done in it
        # well before it ended.
        assert [done for when, done in seen if 0 < done < 15 and when - began < 2.0], seen
        counts = [done for _, done in seen]
        assert counts == sorted(counts) and counts[-1] == 15, counts

    # -- object store ---------------------------------------------------------------------------------

    def test_object_store_round_trip_between_stages_and_between_runs(self, executor, suite_settings):
        from flowdapt.plugins import get_plugin_system

        memory = get_plugin_system().resolve("cluster_memory", suite_settings.cluster_memory.backend)
        if memory not in get_plugin_system().names("cluster_memory"):
            pytest.skip(f"no loaded plugin registers the cluster memory {memory!r} the suite's settings name")
        r = run(wf(stage("put", "put_values"), stage("get", "get_values", depends_on=["put"])), {"n": 5}, executor, namespace=f"os-{executor.name}")
        assert r.state == "finished", r.error
        assert r.result == [0, 1, 4, 9, 16]
        train = run(wf(stage("train", "train_model", type="parameterized", map_on="ids")), {"ids": list(range(20))}, executor, namespace=f"models-{executor.name}")
        assert train.state == "finished", train.error
        read = run(wf(stage("read", "read_model", type="parameterized", map_on="ids")), {"ids": list(range(20))}, executor, namespace=f"models-{executor.name}")
        assert read.state == "finished", read.error
        assert read.result == [pytest.approx(float(i), abs=1e-6) for i in range(20)]

    # -- run logs ---------------------------------------------------------------------------------

    def test_stage_output_is_captured_per_stage_and_item(self, executor, reference):
        """What stages print and log reaches the run's log sink from any worker, tagged with its
        stage and map item, one record per line, as on the reference executor."""
        from flowdapt.engine.logs import from_wire

        workflow = wf(
            stage("start", "prints_and_logs"),
            stage("each", "item_output", depends_on=["start"], type="parameterized", chunk_size=2),
        )

        def lines(on):
            got = []
            r = run(workflow, {"n": 6}, on, log_sink=lambda s, records: got.extend(from_wire(s, records)))
            assert r.state == "finished", r.error
            return sorted(
                (x.stage, -1 if x.item is None else x.item, x.stream, x.level, x.logger, x.message) for x in got
            )

        got = lines(executor)
        assert got == lines(reference)
        assert ("start", -1, "stdout", 20, "", "printed 6") in got
        assert ("start", -1, "stderr", 30, "", "on stderr") in got
        assert ("start", -1, "log", 20, "conformance.stages", "logged 6") in got
        assert ("start", -1, "log", 30, "conformance.structured", "Structured n=6") in got
        for i in range(6):
            assert ("each", i, "stdout", 20, "", f"{i}p{i}q{i}r{i}s") in got
            assert ("each", i, "log", 30, "conformance.stages", f"item {i}") in got
