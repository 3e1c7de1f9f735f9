"""The DAG driver: the run semantics every executor shares.

:func:`drive` runs a plan's stages, each as soon as its own dependencies finish. It owns what a
run means: the DAG order, skipping the stages downstream of a failure, cutting a map stage into
chunks and streaming their results as they finish, per-item failure records and
``allow_partial_failure``, cancelling the rest of the run on the first failure, the per-stage
progress/state records (through the :class:`RunObserver`) and the shape of each stage's output.

Where and how work runs is an executor's :class:`Backend`: it submits one stage call or one map
chunk and says what came back, cuts a map's items into chunks, assembles a map's output from its
chunks and brings outputs to the driver. Stage outputs are whatever the backend makes them: the
values themselves (:class:`~flowdapt.engine.executor.SubmitBackend`, every executor with a
``submit``) or handles that stay on a cluster (:mod:`flowdapt.engine.cluster`, Ray and Dask).
Retries and timeouts run on the worker (:func:`~flowdapt.engine.worker.run_task`); resubmitting
after a worker died is the backend's, since only it knows how a worker dies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

from flowdapt.engine.plan import Plan, PlannedStage
from flowdapt.engine.worker import Failure
from flowdapt.errors import StageError

Out = TypeVar("Out")


class RunObserver(Protocol):
    def stage_submitted(self, stage: str, items_total: int | None) -> None:
        """The stage's work went to the backend (``items_total`` for a map); it may wait for a worker."""

    def stage_began(self, stage: str, when: float | None) -> None:
        """Work of the stage began on a worker at ``when`` (``time.time()`` there; None: now, the
        backend does not say). Called per task; the first call starts the stage, and a later,
        earlier ``when`` moves its start back."""

    def items_progress(
        self, stage: str, done: int, failed: int, failures: Sequence[Failure], chunk: int | None = None
    ) -> None:
        """Items done and failed over the stage's finished chunks; ``chunk`` (its first item's
        index) is the chunk that just finished, whose live progress the counts now include."""

    def stage_finished(self, stage: str, error: Failure | None, attempts: int) -> None: ...
    def stage_cancelled(self, stage: str) -> None: ...
    def stage_logs(self, stage: str, records: list[tuple]) -> None:
        """What a stage call or map chunk printed and logged (engine.logs record tuples)."""


class Status(Protocol):
    """What the driver learns about one finished stage call or map chunk."""

    #: Failed items (a map chunk, by index in the whole list) or the call's failure.
    failures: list[Failure]
    attempts: int
    #: Items run (a map chunk; failed ones included).
    done: int
    #: The task never ran (e.g. its target could not be imported): a stage failure, not an item's.
    never_ran: bool
    #: What the task printed and logged (engine.logs record tuples), or None. Optional.
    logs: list[tuple] | None
    #: When the task began on its worker (``time.time()`` there), or None. Optional.
    began: float | None


class Backend(Protocol, Generic[Out]):
    """How one executor runs work; see the module docstring. ``Out`` is a stage output as the
    backend holds it: a value, or a handle on a cluster.

    A backend whose tasks tell the driver when they begin (:mod:`flowdapt.engine.live`) has
    ``reports_start = True``: its stages stay ``pending`` until then. Without it a stage counts
    as running once submitted, and its start moves to when work began once a task's result says.
    """

    async def call(self, stage: PlannedStage, deps: list[Out]) -> tuple[Status, Out | None]:
        """Run a stage that does not map, with its dependencies' outputs as positional arguments
        (and the run input as keyword arguments for a root stage). The output is None on failure."""

    def map_length(self, stage: PlannedStage, source: Out) -> tuple[int | None, str, Any]:
        """A dependency output to map over: its length (None when it is not a list-like), its type
        name, and what :meth:`chunks` gets as ``items``."""

    def chunks(
        self, stage: PlannedStage, n: int, items: Any, input_key: str | None, rest: list[Out]
    ) -> list[tuple[int, Any]]:
        """Cut ``n`` items into chunks, each ``(index of its first item, work)``, where ``work``
        is what :meth:`run_chunk` submits. ``items`` is from :meth:`map_length`, or the run input's
        list under ``input_key`` (``map_on``); ``rest`` are the other dependencies' outputs."""

    async def run_chunk(self, stage: PlannedStage, work: Any, start: int) -> tuple[Status, Any]:
        """Run one chunk; returns its status and its part of the output (a value or a handle)."""

    def map_output(self, stage: PlannedStage, parts: list[tuple[Status, Any]]) -> Out:
        """A map stage's output from its chunks' results, in item order, failed items left out."""

    async def results(self, plan: Plan, outputs: dict[str, Out]) -> dict[str, Any]:
        """The run's outputs by stage name, as values on the driver (at least the sinks')."""

    async def abort(self) -> None:
        """The run failed or was cancelled: stop the tasks it still has queued or running."""


class _Skipped(Exception):
    """A dependency failed, so this stage never ran."""


def stage_error(stage: str, failure: Failure, mapped: bool) -> StageError:
    message = failure.message
    if mapped:
        message = f"{message} (item {failure.index})" if message else f"item {failure.index}"
    return StageError(stage, failure.type, message, failure.traceback)


def chunk_bounds(n: int, size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def _not_a_list(stage: PlannedStage, type_name: str) -> StageError:
    source = f"input key {stage.map_on!r}" if stage.map_on else f"the output of {stage.depends_on[0]!r}"
    return StageError(
        stage.name, "TypeError", f"a parameterized stage maps over a list, but {source} is a {type_name}"
    )


async def drive(
    plan: Plan, run_input: dict[str, Any], backend: Backend, observer: RunObserver
) -> dict[str, Any]:
    """Run every stage; returns outputs by stage name. Raises StageError on the first failure."""
    tasks: dict[str, asyncio.Task] = {}
    reports_start = bool(getattr(backend, "reports_start", False))

    async def run_stage(stage: PlannedStage) -> Any:
        try:
            deps = [await tasks[dep] for dep in stage.depends_on]
        except (StageError, _Skipped):
            raise _Skipped(stage.name) from None
        if stage.maps:
            return await _run_map(stage, deps, run_input, backend, observer, reports_start)
        _submitted(observer, stage.name, None, reports_start)
        status, output = await backend.call(stage, deps)
        observer.stage_began(stage.name, getattr(status, "began", None))
        _ship_logs(observer, stage.name, status)
        if status.failures:
            failure = status.failures[0]
            observer.stage_finished(stage.name, failure, failure.attempts)
            raise stage_error(stage.name, failure, False)
        observer.stage_finished(stage.name, None, status.attempts)
        return output

    for name, stage in plan.stages.items():
        tasks[name] = asyncio.ensure_future(run_stage(stage))
    try:
        await _wait_all(tasks, observer)
    except BaseException:
        for task in tasks.values():
            if not task.done():
                task.cancel()
        await backend.abort()
        raise
    return await backend.results(plan, {name: task.result() for name, task in tasks.items()})


def _submitted(observer: RunObserver, stage: str, items_total: int | None, reports_start: bool) -> None:
    observer.stage_submitted(stage, items_total)
    if not reports_start:
        observer.stage_began(stage, None)


async def _run_map(
    stage: PlannedStage,
    deps: list[Any],
    run_input: dict[str, Any],
    backend: Backend,
    observer: RunObserver,
    reports_start: bool,
) -> Any:
    if stage.map_on:
        if stage.map_on not in run_input:
            raise StageError(stage.name, "KeyError", f"map_on key {stage.map_on!r} is not in the run input")
        items = run_input[stage.map_on]
        if not isinstance(items, list):
            if isinstance(items, (str, bytes, dict)) or not hasattr(items, "__iter__"):
                raise _not_a_list(stage, type(items).__name__)
            items = list(items)
        n, rest = len(items), deps
    else:
        n, type_name, items = backend.map_length(stage, deps[0])
        if n is None:
            raise _not_a_list(stage, type_name)
        rest = deps[1:]
    _submitted(observer, stage.name, n, reports_start)
    if n == 0:
        observer.stage_began(stage.name, None)
        observer.stage_finished(stage.name, None, 1)
        return backend.map_output(stage, [])
    allow_partial = getattr(stage.options, "allow_partial_failure", False)
    chunks = backend.chunks(stage, n, items, stage.map_on, rest)
    pending = {
        asyncio.ensure_future(backend.run_chunk(stage, work, start)): i
        for i, (start, work) in enumerate(chunks)
    }
    starts = [start for start, _ in chunks]
    parts: list[Any] = [None] * len(chunks)
    done_count = failed_count = 0
    attempts = 1
    try:
        while pending:
            finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for fut in finished:
                i = pending.pop(fut)
                parts[i] = part = fut.result()
                status = part[0]
                observer.stage_began(stage.name, getattr(status, "began", None))
                _ship_logs(observer, stage.name, status)
                attempts = max(attempts, status.attempts)
                if status.never_ran:
                    # The chunk never ran (e.g. the target could not be imported): not an item failure.
                    # The runner marks the failed map stage from the StageError.
                    raise stage_error(stage.name, status.failures[0], False)
                done_count += status.done
                failed_count += len(status.failures)
                observer.items_progress(stage.name, done_count, failed_count, status.failures, starts[i])
                if status.failures and not allow_partial:
                    raise stage_error(stage.name, min(status.failures, key=_index), True)
    except BaseException:
        for fut in pending:
            fut.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        raise
    observer.stage_finished(stage.name, None, attempts)
    return backend.map_output(stage, parts)


def _ship_logs(observer: RunObserver, stage: str, status: Status) -> None:
    logs = getattr(status, "logs", None)
    if logs:
        sink = getattr(observer, "stage_logs", None)
        if sink is not None:
            sink(stage, logs)


def _index(failure: Failure) -> int:
    return failure.index


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
