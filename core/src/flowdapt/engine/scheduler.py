"""Drive a plan's DAG: each stage starts as soon as its own dependencies finish."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from flowdapt.engine.context import RunContext
from flowdapt.engine.executor import Executor
from flowdapt.engine.plan import Plan, PlannedStage
from flowdapt.engine.worker import MODE_CALL, MODE_MAP, Failure, Task, TaskResult
from flowdapt.errors import StageError


class RunObserver(Protocol):
    def stage_started(self, stage: str, items_total: int | None) -> None: ...
    def items_progress(self, stage: str, done: int, failed: int, failures: Sequence[Failure]) -> None: ...
    def stage_finished(self, stage: str, error: Failure | None, attempts: int) -> None: ...
    def stage_cancelled(self, stage: str) -> None: ...


class _Skipped(Exception):
    """A dependency failed, so this stage never ran."""


def _as_items(stage: PlannedStage, value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        source = f"input key {stage.map_on!r}" if stage.map_on else f"the output of {stage.depends_on[0]!r}"
        raise StageError(
            stage.name, "TypeError", f"a parameterized stage maps over a list, but {source} is a {type(value).__name__}"
        )
    return list(value)


#: Failure type of a task whose worker died; the scheduler resubmits it per the stage's retries.
WORKER_CRASHED = "WorkerCrashedError"


async def _submit(executor: Executor, task: Task) -> TaskResult:
    """Submit a task; a task whose worker process died is resubmitted up to ``task.retries`` times."""
    for attempt in range(task.retries + 1):
        result = await executor.submit(task)
        if result.values or not result.failures or result.failures[0].type != WORKER_CRASHED:
            return result
        result.attempts = attempt + 1
        result.failures[0].attempts = attempt + 1
    return result


def _stage_error(stage: str, failure: Failure, mapped: bool) -> StageError:
    message = failure.message
    if mapped:
        message = f"{message} (item {failure.index})" if message else f"item {failure.index}"
    return StageError(stage, failure.type, message, failure.traceback)


async def _run_map(
    plan_stage: PlannedStage,
    items: list[Any],
    base: dict[str, Any],
    executor: Executor,
    observer: RunObserver,
) -> tuple[list[Any], int]:
    n = len(items)
    observer.stage_started(plan_stage.name, n)
    if n == 0:
        return [], 1
    size = executor.chunk_size(n, plan_stage)
    allow_partial = getattr(plan_stage.options, "allow_partial_failure", False)
    pending = {
        asyncio.ensure_future(_submit(executor, Task(items=items[i : i + size], start=i, **base))): i
        for i in range(0, n, size)
    }
    results: dict[int, TaskResult] = {}
    done_count = failed_count = 0
    attempts = 1
    try:
        while pending:
            finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for fut in finished:
                start = pending.pop(fut)
                result = fut.result()
                results[start] = result
                attempts = max(attempts, result.attempts)
                if result.failures and not result.values:
                    # The chunk never ran (e.g. the target could not be imported): not an item failure.
                    raise _stage_error(plan_stage.name, result.failures[0], False)
                done_count += len(result.values)
                failed_count += len(result.failures)
                observer.items_progress(plan_stage.name, done_count, failed_count, result.failures)
                if result.failures and not allow_partial:
                    raise _stage_error(plan_stage.name, result.failures[0], True)
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise
    output: list[Any] = []
    for start in sorted(results):
        result = results[start]
        if result.failures:
            failed = {f.index - start for f in result.failures}
            output.extend(v for j, v in enumerate(result.values) if j not in failed)
        else:
            output.extend(result.values)
    return output, attempts


async def run_plan(plan: Plan, ctx: RunContext, executor: Executor, observer: RunObserver) -> dict[str, Any]:
    """Run every stage; returns outputs by stage name. Raises StageError on the first failure."""
    context_blob = executor.encode_context(ctx)
    run_uid = str(ctx.run.uid)
    run_input = ctx.input
    tasks: dict[str, asyncio.Task] = {}

    async def run_stage(stage: PlannedStage) -> Any:
        try:
            args = [await tasks[dep] for dep in stage.depends_on]
        except (StageError, _Skipped):
            raise _Skipped(stage.name) from None
        options = stage.options
        base = {
            "run_uid": run_uid,
            "stage": stage.name,
            "target": executor.encode_target(stage.target),
            "context": context_blob,
            "retries": options.retries,
            "retry_delay": options.retry_delay,
            "timeout": options.timeout,
        }
        kwargs = run_input if stage.is_root else {}
        if stage.maps:
            if stage.map_on:
                if stage.map_on not in run_input:
                    raise StageError(stage.name, "KeyError", f"map_on key {stage.map_on!r} is not in the run input")
                items = _as_items(stage, run_input[stage.map_on])
                rest = tuple(args)
                kwargs = {k: v for k, v in kwargs.items() if k != stage.map_on}
            else:
                items = _as_items(stage, args[0])
                rest = tuple(args[1:])
            output, attempts = await _run_map(
                stage, items, {**base, "mode": MODE_MAP, "args": rest, "kwargs": kwargs}, executor, observer
            )
            observer.stage_finished(stage.name, None, attempts)
            return output
        observer.stage_started(stage.name, None)
        result = await _submit(executor, Task(mode=MODE_CALL, args=tuple(args), kwargs=kwargs, **base))
        if result.failures:
            failure = result.failures[0]
            observer.stage_finished(stage.name, failure, failure.attempts)
            raise _stage_error(stage.name, failure, False)
        observer.stage_finished(stage.name, None, result.attempts)
        return result.values[0]

    for name, stage in plan.stages.items():
        tasks[name] = asyncio.ensure_future(run_stage(stage))
    try:
        await _wait_all(tasks, observer)
    except BaseException:
        unfinished = [t for t in tasks.values() if not t.done()]
        for task in unfinished:
            task.cancel()
        await executor.cancel(run_uid)
        raise
    return {name: task.result() for name, task in tasks.items()}


async def _wait_all(tasks: dict[str, asyncio.Task], observer: RunObserver) -> None:
    pending = set(tasks.values())
    names = {task: name for name, task in tasks.items()}
    first_error: BaseException | None = None
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.cancelled():
                continue
            exc = task.exception()
            if isinstance(exc, _Skipped):
                observer.stage_cancelled(names[task])
            elif exc is not None and first_error is None:
                first_error = exc
        if first_error is not None:
            for task in pending:
                task.cancel()
                observer.stage_cancelled(names[task])
            # Let cancelled stages unwind before reporting.
            await asyncio.gather(*pending, return_exceptions=True)
            raise first_error
