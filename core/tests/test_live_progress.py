"""What a running task tells the driver while it runs (engine.live): a stage that waits for a busy
worker stays pending and its time starts when work began; a map chunk of slow items moves its
progress before the chunk ends. On the Local executor's process and thread pools, which have a
way to the driver while a task runs (inline tasks never wait)."""

from __future__ import annotations

import asyncio
import time

import pytest
from test_engine import stage, wf

from flowdapt import execute_workflow_async
from flowdapt.builtin.local_executor import LocalExecutor
from flowdapt.resources.run import WorkflowRun

POOLS = ["thread", "process"]


@pytest.mark.parametrize("mode", POOLS)
def test_a_run_waiting_for_a_busy_worker_is_pending_and_its_stage_time_excludes_the_wait(mode, settings, plugins):
    async def main():
        ex = LocalExecutor(mode, workers=1, settings=settings)
        await ex.start()
        try:
            busy = asyncio.ensure_future(
                execute_workflow_async(wf(stage("s", "sleepy"), name="busy"), {"seconds": 2.5}, executor=ex)
            )
            await asyncio.sleep(0.3)
            waiting_run = WorkflowRun(workflow="waiting")
            events: list[tuple[float, str, str]] = []

            def listener(event, run, stage_name):
                events.append((time.monotonic(), event, run.state.value))

            waiting = asyncio.ensure_future(
                execute_workflow_async(
                    wf(stage("s", "sleepy"), name="waiting"),
                    {"seconds": 0.3},
                    executor=ex,
                    run=waiting_run,
                    listeners=[listener],
                )
            )
            await asyncio.sleep(1.2)  # well past a ship interval: the busy run's stage is running
            seen_waiting = (waiting_run.state.value, waiting_run.stages["s"].state.value, waiting_run.stages["s"].started_at)
            busy_run = await asyncio.wait_for(busy, 30)
            busy_ended = time.monotonic()
            done = await asyncio.wait_for(waiting, 30)
            return seen_waiting, busy_run, busy_ended, done, events
        finally:
            await ex.stop()

    seen_waiting, busy_run, busy_ended, done, events = asyncio.run(main())
    assert seen_waiting == ("pending", "pending", None), seen_waiting
    assert busy_run.state == "finished" and done.state == "finished", (busy_run.error, done.error)
    record = done.stages["s"]
    duration = (record.finished_at - record.started_at).total_seconds()
    # 0.3 s of its own work; it waited about 1.9 s for the worker before that.
    assert 0.25 <= duration < 1.2, duration
    names = [e[1] for e in events]
    assert names.index("run_started") < names.index("stage_started") < names.index("run_finished"), names
    # Listeners heard the start once the worker was free (within a ship interval), not at submit.
    started = events[names.index("run_started")][0]
    assert started > busy_ended - 0.6, (started, busy_ended)


@pytest.mark.parametrize("mode", POOLS)
def test_map_progress_moves_while_a_chunk_of_slow_items_runs(mode, settings, plugins):
    progress: list[tuple[float, int]] = []
    chunk_ends: list[float] = []

    def listener(event, run, stage_name):
        if event == "stage_progress":
            progress.append((time.monotonic(), run.stages["m"].items_done))

    async def main():
        ex = LocalExecutor(mode, workers=2, settings=settings)
        await ex.start()
        try:
            began = time.monotonic()
            run = await execute_workflow_async(
                wf(stage("m", "slow_item", type="parameterized", map_on="x", chunk_size=15)),
                {"x": list(range(30)), "seconds": 0.1},
                executor=ex,
                listeners=[listener],
            )
            chunk_ends.append(time.monotonic() - began)
            return run, began
        finally:
            await ex.stop()

    run, began = asyncio.run(main())
    assert run.state == "finished", run.error
    assert run.stages["m"].items_done == 30 and run.result == list(range(30))
    # Two chunks of 15 items of 0.1 s run side by side for about 1.5 s; before either ended the
    # driver had heard of items done in them.
    early = [done for when, done in progress if when - began < 1.3 and 0 < done < 30]
    assert early, progress
    counts = [done for _, done in progress]
    assert counts == sorted(counts), counts  # never goes back
    assert counts[-1] == 30
