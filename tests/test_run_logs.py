"""Run logs on the Local executor (process, thread, inline) through the Python API, and
``flowdapt exec`` keeping stage output off stdout (issue 16, item 1)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowdapt.api import execute_workflow
from flowdapt.builtin.local_executor import LocalExecutor
from flowdapt.engine.logs import STDERR, STDOUT, SYSTEM, from_wire
from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.settings import load_settings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # log_stages, for this process and the workers it starts

MODES = ["process", "thread", "inline"]
#: The built-ins only, whatever else is installed or was set up by other tests.
PLUGINS = create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))


def settings_for(tmp_path, **logs):
    overrides = {"allowed_targets": ["log_stages"]}
    overrides.update({f"logs.{k}": v for k, v in logs.items()})
    return load_settings(app_dir=tmp_path / "app", overrides=overrides)


def workflow(*stages):
    return {"kind": "workflow", "metadata": {"name": "logs"}, "spec": {"stages": list(stages)}}


def stage(name, target, *, maps=False, depends_on=(), **options):
    doc = {"name": name, "target": f"log_stages.{target}", "depends_on": list(depends_on)}
    if maps:
        doc["type"] = "parameterized"
    if options:
        doc["options"] = options
    return doc


def run_collecting(tmp_path, wf, run_input=None, mode="thread", workers=2, **logs):
    collected = []
    executor = LocalExecutor(mode, workers)
    run = execute_workflow(
        wf,
        run_input or {},
        executor=executor,
        settings=settings_for(tmp_path, **logs),
        plugins=PLUGINS,
        log_sink=lambda s, records: collected.extend(from_wire(s, records)),
    )
    return run, collected


@pytest.mark.parametrize("mode", MODES)
def test_prints_and_logging_are_captured_per_stage_and_item(tmp_path, mode, capfd):
    wf = workflow(stage("start", "start"), stage("each", "each", maps=True, depends_on=["start"]))
    run, records = run_collecting(tmp_path, wf, {"n": 4}, mode=mode)
    assert run.state == "finished", run.error
    assert run.result == [0, 2, 4, 6]
    start = [(r.stream, r.level, r.logger, r.message) for r in records if r.stage == "start"]
    assert start == [
        (STDOUT, logging.INFO, "", "starting 4"),
        ("log", logging.INFO, "log_stages", "info from start"),
        (STDERR, logging.WARNING, "", "to stderr"),
        ("log", logging.INFO, "log_stages.structured", "Structured n=4"),
    ]
    assert all(r.item is None for r in records if r.stage == "start")
    each = [r for r in records if r.stage == "each"]
    by_item = {}
    for r in each:
        by_item.setdefault(r.item, []).append((r.stream, r.message))
    assert by_item == {i: [(STDOUT, f"item {i} done"), ("log", f"warn {i}")] for i in range(4)}
    assert all(r.time > 0 for r in records)
    # Nothing reached the process's own streams (the workers' streams are the same files).
    out, err = capfd.readouterr()
    assert "starting" not in out + err and "item 1" not in out + err


@pytest.mark.parametrize("mode", ["thread", "inline"])  # a worker process's own buffer flushes when it likes
def test_capture_off_leaves_the_streams_alone(tmp_path, mode, capfd):
    wf = workflow(stage("start", "start"))
    run, records = run_collecting(tmp_path, wf, {"n": 2}, mode=mode, enabled=False)
    assert run.state == "finished"
    assert records == []
    out, _ = capfd.readouterr()
    assert "starting 2" in out


def test_level_setting_filters_logging_records_not_prints(tmp_path):
    wf = workflow(stage("start", "start"))
    run, records = run_collecting(tmp_path, wf, {"n": 1}, level="DEBUG")
    assert "debug from start" in [r.message for r in records]
    run, records = run_collecting(tmp_path, wf, {"n": 1}, level="ERROR")
    assert [r.message for r in records] == ["starting 1", "to stderr"]


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_lines_of_concurrent_workers_never_mix(tmp_path, mode):
    wf = workflow(stage("parts", "many_writes", maps=True, chunk_size=2, map_on="xs"))
    run, records = run_collecting(tmp_path, wf, {"xs": list(range(40))}, mode=mode, workers=4)
    assert run.state == "finished", run.error
    lines = sorted((r.item, r.message) for r in records)
    assert lines == [(i, "".join(f"{i}{p}" for p in "abcdefgh")) for i in range(40)]


def test_two_thread_mode_runs_at_once_keep_their_own_lines(tmp_path):
    import asyncio

    from flowdapt.api import execute_workflow_async

    settings = settings_for(tmp_path)
    wf = workflow(stage("parts", "many_writes", maps=True, map_on="xs", chunk_size=1))

    async def both():
        executor = LocalExecutor("thread", 4)
        await executor.start()
        got = {"a": [], "b": []}
        try:
            await asyncio.gather(
                *(
                    execute_workflow_async(
                        wf,
                        {"xs": [f"{key}{i}" for i in range(10)]},
                        executor=executor,
                        settings=settings,
                        plugins=PLUGINS,
                        log_sink=lambda s, r, key=key: got[key].extend(from_wire(s, r)),
                    )
                    for key in got
                )
            )
        finally:
            await executor.stop()
        return got

    got = asyncio.run(both())
    for key, records in got.items():
        assert sorted(r.message for r in records) == sorted(
            "".join(f"{key}{i}{p}" for p in "abcdefgh") for i in range(10)
        )


@pytest.mark.parametrize("mode", MODES)
def test_binary_and_undecodable_output_is_stored_replaced(tmp_path, mode):
    run, records = run_collecting(tmp_path, workflow(stage("bin", "binary")), mode=mode)
    assert run.state == "finished", run.error
    assert [r.message for r in records] == ["raw \ufffd\ufffd bytes", "lone \ufffd surrogate", "no newline at the end"]
    for r in records:
        r.message.encode("utf-8")  # storable


def test_a_flood_is_cut_at_the_bound_with_a_marker_on_the_worker(tmp_path):
    bound = 64 * 1024
    run, records = run_collecting(
        tmp_path, workflow(stage("flood", "flood")), {"lines": 200_000}, mode="process", max_bytes_per_run=bound
    )
    assert run.state == "finished" and run.result == 200_000
    (marker,) = [r for r in records if r.stream == SYSTEM]
    assert "dropped" in marker.message and "logs.max_bytes_per_run" in marker.message
    lines = [r for r in records if r.stream != SYSTEM]
    # What left the worker: what it sent while running (at most the bound) and its last lines.
    assert sum(r.size for r in lines) <= 2 * bound
    after = lines[records.index(marker) :]
    assert sum(r.size for r in after) <= bound
    assert lines[-1].message.startswith("199999 ")  # the newest lines are kept
    numbers = [int(r.message.split()[0]) for r in lines]
    assert numbers == sorted(numbers), "in order"
    dropped = int(marker.message.split()[0])
    assert dropped + len(lines) == 200_000


def test_a_huge_line_is_cut(tmp_path):
    run, records = run_collecting(tmp_path, workflow(stage("line", "huge_line")), {"chars": 1_000_000})
    assert run.state == "finished"
    (record,) = records
    assert len(record.message) < 70_000 and "more characters cut" in record.message


def test_output_of_a_failing_stage_is_kept(tmp_path):
    wf = workflow(stage("bad", "fails", maps=True, map_on="xs"))
    run, records = run_collecting(tmp_path, wf, {"xs": [1]})
    assert run.state == "failed"
    assert [(r.item, r.message) for r in records] == [(0, "before failing 1")]


@pytest.mark.parametrize("mode", MODES)
def test_async_stage_output_is_captured(tmp_path, mode):
    run, records = run_collecting(tmp_path, workflow(stage("co", "async_prints")), {"n": 3}, mode=mode)
    assert run.state == "finished", run.error
    assert [r.message for r in records] == ["from a coroutine 3", "logged from a coroutine"]


def test_python_api_writes_stage_output_to_stderr_by_default(tmp_path, capfd):
    run = execute_workflow(
        workflow(stage("start", "start")),
        {"n": 2},
        executor=LocalExecutor("inline"),
        settings=settings_for(tmp_path),
        plugins=PLUGINS,
    )
    assert run.state == "finished"
    out, err = capfd.readouterr()
    assert "starting" not in out
    assert "start | starting 2" in err and "start | INFO log_stages: info from start" in err


def _exec(tmp_path, *args):
    app = tmp_path / "app"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDAPT__")}
    return subprocess.run(
        [sys.executable, "-m", "flowdapt.cli.main", "--app-dir", str(app), "exec", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )


@pytest.mark.parametrize("mode", MODES)
def test_exec_keeps_stdout_for_the_result(tmp_path, mode):
    (tmp_path / "exec_stages.py").write_text(
        "import logging\n"
        "def make(n: int = 3):\n"
        "    print('making', n)\n"
        "    logging.getLogger('exec_stages').info('logged')\n"
        "    return list(range(n))\n"
        "def double(x):\n"
        "    print('doubling', x)\n"
        "    return 2 * x\n"
    )
    (tmp_path / "wf.yaml").write_text(
        "kind: workflow\nmetadata: {name: ex}\nspec:\n  stages:\n"
        "    - {name: make, target: exec_stages.make}\n"
        "    - {name: double, target: exec_stages.double, type: parameterized, depends_on: [make]}\n"
    )
    result = _exec(tmp_path, str(tmp_path / "wf.yaml"), "--mode", mode, "-i", "n=3", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [0, 2, 4]  # nothing else on stdout: `| jq` works
    assert "make | making 3" in result.stderr
    assert "make | INFO exec_stages: logged" in result.stderr
    for i in range(3):
        assert f"double[{i}] | doubling {i}" in result.stderr


@pytest.mark.parametrize("mode", MODES)
def test_records_of_a_running_stage_arrive_while_it_runs(tmp_path, mode):
    """A long stage's lines reach the sink while it runs (threads, Local worker processes), in
    order, each once; inline (the stage blocks the loop) they come in order with the result."""
    import time as clock

    arrivals = []
    executor = LocalExecutor(mode, 2)
    started = clock.monotonic()
    run = execute_workflow(
        workflow(stage("slow", "slow_prints")),
        {"n": 6, "delay": 0.25},
        executor=executor,
        settings=settings_for(tmp_path),
        plugins=PLUGINS,
        log_sink=lambda s, records: arrivals.append((clock.monotonic() - started, [r[5] for r in records])),
    )
    assert run.state == "finished", run.error
    lines = [line for _, batch in arrivals for line in batch]
    assert lines == [f"tick {i}" for i in range(6)]
    total = clock.monotonic() - started
    if mode == "inline":
        assert len(arrivals) == 1
    else:
        assert len(arrivals) >= 2 and arrivals[0][0] < total - 0.5, arrivals


def test_exec_keeps_stage_output_off_stdout_with_logs_disabled(tmp_path):
    (tmp_path / "quiet_stages.py").write_text("def make():\n    print('noise')\n    return 7\n")
    (tmp_path / "wf.yaml").write_text(
        "kind: workflow\nmetadata: {name: q}\nspec:\n  stages:\n    - {name: make, target: quiet_stages.make}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "flowdapt.cli.main", "--app-dir", str(tmp_path / "app"), "-o", "logs.enabled=false",
         "exec", str(tmp_path / "wf.yaml"), "--mode", "process", "--no-progress"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("FLOWDAPT__")},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == 7
    assert "make | noise" in result.stderr
