"""Workflow semantics on every executor: Local (process, thread, inline), Dask and Ray.

Each case runs on the parameterized executor and checks the documented result (DESIGN.md
section 4, reference section 3.3). Cases whose run record is deterministic also run on the
reference executor (Local inline) and must give an *identical* record: state, result, error,
and per-stage state, item counts, failures and attempts. The Dask and Ray executors run twice:
on a cluster they start themselves and, when CI exports ``FLOWDAPT_TEST_DASK_ADDRESS`` /
``FLOWDAPT_TEST_RAY_ADDRESS`` (scripts/ci/setup-dask.sh, setup-ray.sh), on a separately started
cluster connected by address.

``FLOWDAPT_TEST_EXECUTORS=dask,ray`` narrows the run to some executors (plugins run their own).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from executor_clusters import external_dask_address, external_ray_address  # noqa: E402

from flowdapt import execute_workflow  # noqa: E402
from flowdapt.builtin.local_executor import LocalExecutor  # noqa: E402
from flowdapt.resources import Config  # noqa: E402

ALL_EXECUTORS = ["local-process", "local-thread", "local-inline", "dask", "ray", "dask-external", "ray-external"]


def _selected() -> list[str]:
    wanted = os.environ.get("FLOWDAPT_TEST_EXECUTORS")
    if not wanted:
        return ALL_EXECUTORS
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    return [e for e in ALL_EXECUTORS if e in names or e.split("-")[0] in names]


# -- fixtures -------------------------------------------------------------------------------------


def _plugin_modules() -> list:
    from flowdapt.plugins import BUILTIN_PLUGINS

    modules = list(BUILTIN_PLUGINS)
    for name, module in (("lmdb", "flowdapt_lmdb"), ("ray", "flowdapt_ray"), ("dask", "flowdapt_dask")):
        if importlib.util.find_spec(module) is not None:
            modules.append((name, f"{module}.plugin"))
    return modules


@pytest.fixture(scope="module")
def suite_settings(tmp_path_factory):
    """One app dir for the module (executors live across tests); installed process-wide."""
    from flowdapt.plugins import create_plugin_system, set_plugin_system
    from flowdapt.settings import load_settings, set_settings

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("FLOWDAPT__")}
    app_dir = tmp_path_factory.mktemp("executors") / "app"
    settings = load_settings(app_dir=app_dir)
    set_settings(settings)
    set_plugin_system(create_plugin_system(load_entry_points=False, plugins=_plugin_modules()))
    yield settings
    set_settings(None)
    set_plugin_system(None)
    os.environ.update(saved)


def _disconnect_ray() -> None:
    """One process talks to one Ray cluster: drop a connection another suite left behind."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def make_executor(kind: str, settings):
    """An executor of ``kind``, not started; skips (loudly) when its plugin or cluster is missing."""
    if kind.startswith("local-"):
        return LocalExecutor(kind.split("-", 1)[1], workers=2, settings=settings)
    if kind.startswith("dask"):
        if importlib.util.find_spec("flowdapt_dask") is None:
            pytest.skip("flowdapt-dask is not installed")
        from flowdapt_dask import DaskExecutor, DaskExecutorOptions

        if kind == "dask-external":
            address = external_dask_address()
            if not address:
                pytest.skip(
                    "SKIPPED LOUDLY: FLOWDAPT_TEST_DASK_ADDRESS is not set, so the separately started Dask "
                    "cluster is not tested; run scripts/ci/setup-dask.sh (scripts/test.sh does) to test it"
                )
            return DaskExecutor(DaskExecutorOptions(address=address), settings)
        return DaskExecutor(DaskExecutorOptions(workers=2, threads_per_worker=1, dashboard_address=None), settings)
    if kind.startswith("ray"):
        if importlib.util.find_spec("flowdapt_ray") is None:
            pytest.skip("flowdapt-ray is not installed")
        from flowdapt_ray import RayExecutor, RayExecutorOptions

        if kind == "ray-external":
            address = external_ray_address()
            if not address:
                pytest.skip(
                    "SKIPPED LOUDLY: FLOWDAPT_TEST_RAY_ADDRESS is not set, so the separately started Ray "
                    "cluster is not tested; run scripts/ci/setup-ray.sh (scripts/test.sh does) to test it"
                )
            _disconnect_ray()
            return RayExecutor(RayExecutorOptions(address=address, log_to_driver=False), settings)
        _disconnect_ray()
        return RayExecutor(RayExecutorOptions(cpus=2, include_dashboard=False, log_to_driver=False), settings)
    raise ValueError(kind)


@pytest.fixture(scope="module", params=_selected())
def executor(request, suite_settings):
    ex = make_executor(request.param, suite_settings)
    asyncio.run(ex.start())
    yield ex
    asyncio.run(ex.stop())
    if request.param.startswith("ray"):
        _disconnect_ray()


@pytest.fixture(scope="module")
def reference(suite_settings):
    return LocalExecutor("inline", settings=suite_settings)


# -- helpers --------------------------------------------------------------------------------------


def wf(*stages, name="wf", annotations=None):
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"kind": "workflow", "metadata": meta, "spec": {"stages": list(stages)}}


def stage(name, target, *, depends_on=(), type="simple", resources=None, **options):
    out = {
        "name": name,
        "target": f"executor_stages.{target}" if isinstance(target, str) else target,
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


# -- argument passing -----------------------------------------------------------------------------


def test_map_over_previous_output(executor, reference):
    r = same_as_reference(
        wf(stage("s1", "numbers"), stage("s2", "square", depends_on=["s1"], type="parameterized")), None, executor, reference
    )
    assert r.state == "finished", r.error
    assert r.result == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    assert r.stages["s2"].items_total == 10 and r.stages["s2"].items_done == 10
    assert r.stages["s1"].state == "finished" and r.stages["s1"].items_total is None
    assert r.executor == executor.name


def test_root_stage_gets_input_filtered_to_its_parameters(executor, reference):
    r = same_as_reference(wf(stage("s", "echo_kwargs")), {"a": 1, "unused": 5}, executor, reference)
    assert r.result == {"a": 1, "b": 2}
    r = same_as_reference(wf(stage("s", "takes_everything")), {"x": 1, "y": 2}, executor, reference)
    assert r.result == {"x": 1, "y": 2}


def test_every_root_stage_gets_the_whole_input(executor, reference):
    r = same_as_reference(
        wf(stage("a", "echo_kwargs"), stage("b", "takes_everything"), stage("c", "numbers")),
        {"a": 7, "n": 2},
        executor,
        reference,
    )
    assert r.result == {"a": {"a": 7, "b": 2}, "b": {"a": 7, "n": 2}, "c": [0, 1]}


def test_dependency_outputs_are_positional_in_depends_on_order(executor, reference):
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


def test_extra_dependency_outputs_are_dropped_without_varargs(executor, reference):
    r = same_as_reference(
        wf(stage("a", "numbers"), stage("b", "as_dict"), stage("c", "first_only", depends_on=["a", "b"])),
        {"n": 3},
        executor,
        reference,
    )
    assert r.result == [0, 1, 2]


def test_fan_out_and_fan_in(executor, reference):
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


def test_map_on_input_key(executor, reference):
    r = same_as_reference(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": [1, 2]}, executor, reference)
    assert r.result == [2, 4]


def test_map_on_input_key_with_dependency_outputs(executor, reference):
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


def test_map_on_a_tuple_in_the_input(executor, reference):
    r = same_as_reference(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": (1, 2, 3)}, executor, reference)
    assert r.result == [2, 4, 6]


def test_map_passes_remaining_dependency_outputs_to_each_item(executor, reference):
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


def test_map_over_a_map_and_a_tuple(executor, reference):
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


def test_map_over_something_that_is_not_a_list_fails_clearly(executor, reference):
    r = same_as_reference(wf(stage("d", "as_dict"), stage("m", "double", depends_on=["d"], type="parameterized")), None, executor, reference)
    assert r.state == "failed"
    assert r.result[0] == "TypeError" and "maps over a list" in r.result[1] and "dict" in r.result[1]
    r = same_as_reference(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": 5}, executor, reference)
    assert r.state == "failed" and r.result[0] == "TypeError"


def test_empty_map(executor, reference):
    r = same_as_reference(wf(stage("m", "double", type="parameterized", map_on="x")), {"x": []}, executor, reference)
    assert r.state == "finished" and r.result == []
    r = same_as_reference(
        wf(stage("e", "numbers"), stage("m", "double", depends_on=["e"], type="parameterized"), stage("t", "total", depends_on=["m"])),
        {"n": 0},
        executor,
        reference,
    )
    assert r.result == 0


def test_large_map_keeps_item_order(executor, reference):
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


def test_several_sinks_give_a_mapping(executor, reference):
    r = same_as_reference(
        wf(stage("a", "numbers"), stage("b", "total", depends_on=["a"]), stage("c", "no_params")), {"n": 3}, executor, reference
    )
    assert r.result == {"b": 3, "c": "ok"}


def test_callable_targets_and_lambdas(executor, reference):
    workflow = wf(
        {"name": "s1", "target": lambda: list(range(3))},
        {"name": "s2", "target": lambda x: x + 1, "type": "parameterized", "depends_on": ["s1"]},
    )
    assert same_as_reference(workflow, None, executor, reference).result == [1, 2, 3]


def test_async_stage_functions(executor, reference):
    r = same_as_reference(
        wf(stage("n", "async_numbers"), stage("m", "async_double", depends_on=["n"], type="parameterized")),
        {"n": 3},
        executor,
        reference,
    )
    assert r.result == [0, 2, 4]


# -- failures -------------------------------------------------------------------------------------


def test_failure_is_recorded_with_type_message_and_traceback(executor, reference):
    r = same_as_reference(wf(stage("test_stage", "test_stage_error")), None, executor, reference)
    assert r.state == "failed"
    assert r.result == ["Exception", "test_stage_error: Failure"]
    assert r.error.stage == "test_stage" and "test_stage_error" in r.error.traceback
    assert r.stages["test_stage"].state == "failed"


def test_failure_skips_dependents_and_other_branches_finish_or_stop(executor, reference):
    r = same_as_reference(wf(stage("a", "fail"), stage("b", "total", depends_on=["a"])), None, executor, reference)
    assert r.state == "failed" and r.result == ["ValueError", "boom"]
    assert r.stages["b"].state == "skipped"


def test_item_failure_fails_the_stage_by_default(executor, reference):
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


def test_partial_failure_keeps_going_and_records_failures(executor, reference):
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


def test_retries(executor, tmp_path):
    counter = str(tmp_path / "count")
    r = run(wf(stage("f", "flaky", retries=2)), {"path": counter}, executor)
    assert r.state == "finished" and r.result == 3
    assert r.stages["f"].attempts == 3
    r = run(wf(stage("f", "flaky", retries=0)), {"path": str(tmp_path / "other")}, executor)
    assert r.state == "failed" and r.result == ["ConnectionError", "attempt 1 failed"]


def test_retries_of_map_items(executor, tmp_path):
    r = run(
        wf(stage("m", "flaky_item", type="parameterized", map_on="x", retries=1)),
        {"x": [1, 2, 3], "path": str(tmp_path / "item")},
        executor,
    )
    assert r.state == "finished", r.error
    assert r.result == [1, 2, 3]
    assert r.stages["m"].attempts == 2


def test_timeouts_of_sync_and_async_functions(executor):
    for target in ("sleepy", "async_sleepy", "busy"):
        r = run(wf(stage("s", target, timeout=0.3)), {"seconds": 3}, executor)
        assert r.state == "failed", target
        assert r.result[0] == "StageTimeoutError", (target, r.result)
        assert "timed out" in r.result[1]
    r = run(wf(stage("s", "sleepy", timeout=5)), {"seconds": 0.05}, executor)
    assert r.result == "slept"


# -- run context and config -------------------------------------------------------------------------


def test_run_context_fields(executor):
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


def test_configs_selected_by_name_and_annotation_reach_every_item(executor, reference):
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


def test_stages_start_when_their_own_dependencies_finish(executor, tmp_path):
    if executor.workers < 2:
        pytest.skip("needs two tasks at once (inline runs one at a time)")
    r = run(
        wf(stage("a", "a_fast"), stage("w", "wait_for_b"), stage("b", "b_after_a", depends_on=["a"]), stage("j", "join", depends_on=["b", "w"])),
        {"signal_dir": str(tmp_path)},
        executor,
    )
    assert r.state == "finished", r.result
    assert r.result == "abw"


def test_map_items_spread_over_workers(executor):
    if executor.workers < 2 or getattr(executor, "mode", None) in ("thread", "inline"):
        pytest.skip("one worker process")
    r = run(wf(stage("m", "pid_of", type="parameterized", map_on="x")), {"x": list(range(64))}, executor)
    assert len(set(r.result)) >= 2


def test_concurrent_runs_of_one_workflow_do_not_collide(executor):
    from flowdapt.api import execute_workflow_async

    workflow = wf(stage("n", "numbers"), stage("m", "double", depends_on=["n"], type="parameterized"), stage("t", "total", depends_on=["m"]))

    async def main():
        runs = await asyncio.gather(*(execute_workflow_async(workflow, {"n": i}, executor=executor) for i in range(6)))
        return [r.result for r in runs]

    assert asyncio.run(main()) == [sum(2 * j for j in range(i)) for i in range(6)]


# -- object store ---------------------------------------------------------------------------------


def test_object_store_round_trip_between_stages_and_between_runs(executor):
    if importlib.util.find_spec("flowdapt_lmdb") is None:
        pytest.skip("flowdapt-lmdb (the default cluster memory) is not installed")
    r = run(wf(stage("put", "put_values"), stage("get", "get_values", depends_on=["put"])), {"n": 5}, executor, namespace=f"os-{executor.name}")
    assert r.state == "finished", r.error
    assert r.result == [0, 1, 4, 9, 16]
    train = run(wf(stage("train", "train_model", type="parameterized", map_on="ids")), {"ids": list(range(20))}, executor, namespace=f"models-{executor.name}")
    assert train.state == "finished", train.error
    read = run(wf(stage("read", "read_model", type="parameterized", map_on="ids")), {"ids": list(range(20))}, executor, namespace=f"models-{executor.name}")
    assert read.state == "finished", read.error
    assert read.result == [pytest.approx(float(i), abs=1e-6) for i in range(20)]
