"""The run lifecycle: pending -> running -> finished | failed | cancelled, with per-stage records."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from flowdapt.engine.context import RunContext
from flowdapt.engine.executor import Executor
from flowdapt.engine.logs import register_live_sink, unregister_live_sink
from flowdapt.engine.plan import Plan
from flowdapt.engine.worker import Failure
from flowdapt.errors import RunCancelledError, StageError
from flowdapt.resources.base import utcnow
from flowdapt.resources.run import ItemFailure, RunError, RunState, StageRun, StageState, WorkflowRun

log = logging.getLogger(__name__)

MAX_RECORDED_FAILURES = 100

#: ``listener(event, run, stage)``: event is one of run_started, stage_started, stage_progress,
#: stage_finished, run_finished. Called in the event loop; must be cheap and must not block.
RunListener = Callable[[str, WorkflowRun, str | None], None]

#: ``sink(stage, records)``: what a stage call or map chunk printed and logged, as
#: :mod:`flowdapt.engine.logs` record tuples ``(time, level, stream, logger, item, message)``.
#: Called in the event loop once per task that produced output; must not block.
LogSink = Callable[[str, list[tuple]], None]


class RunRecorder:
    """Keeps ``run.stages`` current and tells listeners; the scheduler's observer."""

    def __init__(
        self, run: WorkflowRun, plan: Plan, listeners: Sequence[RunListener] = (), log_sink: LogSink | None = None
    ):
        self.run = run
        self.listeners = list(listeners)
        self.log_sink = log_sink
        for name in plan.stages:
            run.stages.setdefault(name, StageRun())

    def emit(self, event: str, stage: str | None = None) -> None:
        for listener in self.listeners:
            try:
                listener(event, self.run, stage)
            except Exception:  # a broken listener must not break the run
                log.exception("run listener failed on %s", event)

    def stage_started(self, stage: str, items_total: int | None) -> None:
        record = self.run.stages[stage]
        record.state = StageState.running
        record.started_at = utcnow()
        record.items_total = items_total
        self.emit("stage_started", stage)

    def items_progress(self, stage: str, done: int, failed: int, failures: Sequence[Failure]) -> None:
        record = self.run.stages[stage]
        record.items_done = done
        record.items_failed = failed
        for f in failures:
            if len(record.failures) >= MAX_RECORDED_FAILURES:
                break
            record.failures.append(ItemFailure(index=f.index, error=[f.type, f.message]))
        self.emit("stage_progress", stage)

    def stage_finished(self, stage: str, error: Failure | None, attempts: int) -> None:
        record = self.run.stages[stage]
        record.finished_at = utcnow()
        record.attempts = attempts
        if error is None:
            record.state = StageState.finished
        else:
            record.state = StageState.failed
            record.error = [error.type, error.message]
        self.emit("stage_finished", stage)

    def stage_logs(self, stage: str, records: list[tuple]) -> None:
        if self.log_sink is None:
            return
        try:
            self.log_sink(stage, records)
        except Exception:  # a broken sink must not break the run
            log.exception("run log sink failed")

    def stage_cancelled(self, stage: str) -> None:
        record = self.run.stages[stage]
        if record.state in (StageState.pending, StageState.running):
            record.state = StageState.skipped if record.state is StageState.pending else StageState.cancelled
            record.finished_at = utcnow()


def _result_of(plan: Plan, outputs: dict[str, Any]) -> Any:
    if len(plan.sinks) == 1:
        return outputs[plan.sinks[0]]
    return {name: outputs[name] for name in plan.sinks}


async def execute_plan(
    plan: Plan,
    ctx: RunContext,
    executor: Executor,
    *,
    listeners: Sequence[RunListener] = (),
    hooks=None,
    log_sink: LogSink | None = None,
) -> WorkflowRun:
    """Run the plan and fill in ``ctx.run``: state, result, error, timestamps, stage records.

    ``log_sink`` receives what the stages print and log, when the run captures it
    (``ctx.capture``); without one the captured output is dropped."""
    run = ctx.run
    recorder = RunRecorder(run, plan, listeners, log_sink)
    live = log_sink is not None and ctx.capture is not None
    if live:
        # Tasks running in this process (threads, inline) or in Local worker processes send
        # their records while they run, not only with their results.
        register_live_sink(str(run.uid), asyncio.get_running_loop(), recorder.stage_logs)
    try:
        return await _execute(plan, ctx, executor, recorder, hooks)
    finally:
        if live:
            unregister_live_sink(str(run.uid))


async def _execute(plan: Plan, ctx: RunContext, executor: Executor, recorder: RunRecorder, hooks) -> WorkflowRun:
    run = ctx.run
    run.state = RunState.running
    run.executor = executor.name
    run.namespace = ctx.namespace
    recorder.emit("run_started")
    if hooks is not None:
        hooks.flowdapt_run_started(run=run, workflow=plan.workflow)
    try:
        outputs = await executor.execute(plan, ctx, recorder)
        run.result = _result_of(plan, outputs)
        run.state = RunState.finished
    except StageError as exc:
        # A stage failure that the scheduler raised: mark the stage if it was not yet.
        record = run.stages.get(exc.stage)
        if record is not None and record.state is not StageState.failed:
            record.state = StageState.failed
            record.error = [exc.exc_type, exc.exc_message]
            record.finished_at = utcnow()
        run.state = RunState.failed
        run.result = [exc.exc_type, exc.exc_message]
        run.error = RunError(type=exc.exc_type, message=exc.exc_message, stage=exc.stage, traceback=exc.traceback)
    except (asyncio.CancelledError, RunCancelledError) as exc:
        for name, record in run.stages.items():
            if record.state in (StageState.pending, StageState.running):
                recorder.stage_cancelled(name)
        run.state = RunState.cancelled
        run.result = ["RunCancelledError", str(exc) or "run cancelled"]
        run.error = RunError(type="RunCancelledError", message=str(exc) or "run cancelled")
        run.finished_at = utcnow()
        recorder.emit("run_finished")
        raise
    except Exception as exc:  # an executor or engine failure, not a stage's
        log.exception("run %s failed outside a stage", run.name)
        run.state = RunState.failed
        run.result = [type(exc).__name__, str(exc)]
        import traceback

        run.error = RunError(type=type(exc).__name__, message=str(exc), traceback=traceback.format_exc())
    run.finished_at = utcnow()
    recorder.emit("run_finished")
    if hooks is not None:
        try:
            hooks.flowdapt_run_finished(run=run, workflow=plan.workflow)
        except Exception:
            log.exception("a flowdapt_run_finished hook failed")
    return run
