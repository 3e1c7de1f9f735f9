"""The run lifecycle: pending -> running -> finished | failed | cancelled, with per-stage records."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from flowdapt.engine.context import RunContext
from flowdapt.engine.executor import Executor
from flowdapt.engine.live import register_live_sink, unregister_live_sink
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
    """Keeps ``run.stages`` current and tells listeners; the scheduler's observer.

    A stage is ``pending`` until work of it began on a worker (a task waiting for a busy worker
    does not count), and the run is ``pending`` until its first stage began; a stage's time counts
    from then. Map progress counts the finished chunks and, where tasks say how far they got while
    they run (:mod:`flowdapt.engine.live`), the running ones.
    """

    def __init__(
        self, run: WorkflowRun, plan: Plan, listeners: Sequence[RunListener] = (), log_sink: LogSink | None = None
    ):
        self.run = run
        self.listeners = list(listeners)
        self.log_sink = log_sink
        #: Called once, when the run's first stage began (the ``flowdapt_run_started`` hook).
        self.on_run_started: Callable[[], None] | None = None
        for name in plan.stages:
            run.stages.setdefault(name, StageRun())
        self._run_started = False
        self._submitted: dict[str, datetime] = {}
        #: Stages whose start is when they were submitted, until a task says when it began.
        self._guessed: set[str] = set()
        #: Per map stage: counts over its finished chunks, the running chunks' live counts by
        #: chunk start, and the chunks finished (a late live count of one is ignored).
        self._counts: dict[str, tuple[int, int]] = {}
        self._live: dict[str, dict[int, tuple[int, int]]] = {}
        self._ended: dict[str, set[int]] = {}

    def emit(self, event: str, stage: str | None = None) -> None:
        for listener in self.listeners:
            try:
                listener(event, self.run, stage)
            except Exception:  # a broken listener must not break the run
                log.exception("run listener failed on %s", event)

    def start_run(self) -> None:
        """The run is running from now (its first stage began); once. Also called as a run ends
        without a stage having begun, so listeners and hooks always see a start before the end."""
        if self._run_started:
            return
        self._run_started = True
        if self.run.state is RunState.pending:
            self.run.state = RunState.running
        self.emit("run_started")
        if self.on_run_started is not None:
            try:
                self.on_run_started()
            except Exception:
                log.exception("a flowdapt_run_started hook failed")

    def stage_submitted(self, stage: str, items_total: int | None) -> None:
        self.run.stages[stage].items_total = items_total
        self._submitted[stage] = utcnow()

    def stage_began(self, stage: str, when: float | None) -> None:
        record = self.run.stages[stage]
        now = utcnow()
        if when is None:
            if record.started_at is not None:
                return
            started, guessed = now, True
        else:
            started = datetime.fromtimestamp(when, UTC).replace(tzinfo=None)
            # Another host's clock: never before the submit, never after now.
            floor = self._submitted.get(stage)
            if floor is not None and started < floor:
                started = floor
            started = min(started, now)
            guessed = False
        if record.started_at is None:
            if record.state is not StageState.pending:
                return  # cancelled or skipped while it waited
            record.state = StageState.running
            record.started_at = started
            if guessed:
                self._guessed.add(stage)
            self.start_run()
            self.emit("stage_started", stage)
        elif not guessed and (stage in self._guessed or started < record.started_at):
            self._guessed.discard(stage)
            record.started_at = started

    def live(self, stage: str, message: tuple) -> None:
        """A running task's news (engine.live): it began, its chunk's progress, its log records."""
        if stage not in self.run.stages:
            return
        began, progress, records = message
        if began is not None:
            self.stage_began(stage, began)
        if progress is not None:
            self.items_live(stage, *progress)
        if records:
            self.stage_logs(stage, records)

    def items_live(self, stage: str, chunk: int, done: int, failed: int) -> None:
        record = self.run.stages[stage]
        if record.finished_at is not None or chunk in self._ended.get(stage, ()):
            return
        self._live.setdefault(stage, {})[chunk] = (done, failed)
        self._set_counts(stage, record)
        self.emit("stage_progress", stage)

    def items_progress(
        self, stage: str, done: int, failed: int, failures: Sequence[Failure], chunk: int | None = None
    ) -> None:
        record = self.run.stages[stage]
        if chunk is not None:
            self._ended.setdefault(stage, set()).add(chunk)
            live = self._live.get(stage)
            if live:
                live.pop(chunk, None)
        self._counts[stage] = (done, failed)
        self._set_counts(stage, record)
        for f in failures:
            if len(record.failures) >= MAX_RECORDED_FAILURES:
                break
            record.failures.append(ItemFailure(index=f.index, error=[f.type, f.message]))
        self.emit("stage_progress", stage)

    def _set_counts(self, stage: str, record: StageRun) -> None:
        done, failed = self._counts.get(stage, (0, 0))
        for live_done, live_failed in self._live.get(stage, {}).values():
            done += live_done
            failed += live_failed
        if record.items_total is not None:  # (live counts are a running task's word)
            done = min(done, record.items_total)
        record.items_done = done
        record.items_failed = failed

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
            # Never submitted: skipped. Submitted (waiting for a worker, or running): cancelled.
            submitted = record.state is StageState.running or stage in self._submitted
            record.state = StageState.cancelled if submitted else StageState.skipped
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
    # Tasks running in this process (threads) or in Local worker processes say while they run
    # that they began, how far they got and what they printed, not only with their results.
    register_live_sink(str(run.uid), asyncio.get_running_loop(), recorder.live)
    try:
        return await _execute(plan, ctx, executor, recorder, hooks)
    finally:
        unregister_live_sink(str(run.uid))


async def _execute(plan: Plan, ctx: RunContext, executor: Executor, recorder: RunRecorder, hooks) -> WorkflowRun:
    run = ctx.run
    run.state = RunState.pending  # running once its first stage began (RunRecorder.start_run)
    run.executor = executor.name
    run.namespace = ctx.namespace
    if hooks is not None:
        recorder.on_run_started = lambda: hooks.flowdapt_run_started(run=run, workflow=plan.workflow)
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
        recorder.start_run()  # listeners see a run start before it ends, even one that never ran
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
    recorder.start_run()  # listeners see a run start before it ends, even one that never ran
    run.finished_at = utcnow()
    recorder.emit("run_finished")
    if hooks is not None:
        try:
            hooks.flowdapt_run_finished(run=run, workflow=plan.workflow)
        except Exception:
            log.exception("a flowdapt_run_finished hook failed")
    return run
