"""The driver side of executors whose cluster keeps the results: Ray (object refs), Dask (futures).

:class:`ClusterExecutor` runs a plan with the one DAG driver (:func:`~flowdapt.engine.driver.drive`)
through a :class:`ClusterBackend`, whose stage outputs stay on the cluster: a stage task gets its
dependencies' outputs as handles the cluster resolves on the worker, and the driver only sees a
small :class:`~flowdapt.engine.remote.RemoteStatus` per task (failures, attempts, item counts) to
record progress and decide what to launch next. Only the sinks' outputs come back to the driver,
once, at the end.

Workers run :func:`~flowdapt.engine.remote.remote_stage` and
:func:`~flowdapt.engine.remote.split_items` (:mod:`flowdapt.engine.remote`); stage resources are
:mod:`flowdapt.engine.stage_resources`, what is shipped to remote workers
:mod:`flowdapt.engine.shipping`. The names the Ray and Dask plugins use are importable from here too.

A subclass implements a handful of primitives (``_launch``, ``_split``, ``_fetch``, ``_cancel``,
``_put_context``) and optionally ``_resource_problem`` and ``_retryable``.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowdapt.engine.context import RunContext
from flowdapt.engine.driver import RunObserver, chunk_bounds, drive
from flowdapt.engine.executor import Executor
from flowdapt.engine.plan import Plan, PlannedStage
from flowdapt.engine.remote import (  # noqa: F401 - re-exported for executor plugins
    Group,
    InputSlice,
    RemoteCall,
    RemoteStatus,
    remote_stage,
    split_items,
)
from flowdapt.engine.shipping import plugin_package_dirs, worker_sys_path  # noqa: F401 - re-exported
from flowdapt.engine.stage_resources import (  # noqa: F401 - re-exported for executor plugins
    RESOURCE_ALIASES,
    InsufficientResourcesError,
    describe_resources,
    missing_resources,
    parse_bytes,
    parse_stage_resources,
)
from flowdapt.engine.worker import MODE_CALL, MODE_MAP, Failure, Task, TaskResult
from flowdapt.errors import StageError


@dataclass
class RemoteOutput:
    """A stage output held by the cluster: one handle, or chunk handles of one list."""

    handles: list[Any]
    chunked: bool = False
    pair: bool = False
    length: int | None = None
    value_type: str = ""
    #: Chunked outputs: the number of values in each chunk.
    lengths: list[int] = field(default_factory=list)

    @property
    def group(self) -> Group:
        return Group(len(self.handles), self.chunked, self.pair)


@dataclass
class Launched:
    """A submitted remote task: ``status`` resolves to its RemoteStatus, ``value`` is the output handle."""

    status: Awaitable[RemoteStatus]
    value: Any
    pair: bool
    handles: list[Any]  # everything to cancel


class ClusterExecutor(Executor):
    """An executor whose cluster keeps intermediate results; see the module docstring."""

    #: Executor option ``wait_for_resources``: queue tasks whose resources no node has (autoscaling).
    wait_for_resources: bool = False
    #: ``_put_context`` returns a handle the cluster resolves on the worker (a Dask future), passed
    #: as the first argument of each task, rather than a value to put in ``Task.context``.
    context_as_handle: bool = False

    def __init__(self) -> None:
        super().__init__()
        self._inflight: dict[str, set[Any]] = {}

    # -- primitives ------------------------------------------------------------------------

    @abc.abstractmethod
    def _put_context(self, run_uid: str, blob: bytes) -> Any:
        """Store the run's encoded context on the cluster once; returns what goes in ``Task.context``."""

    def _release_context(self, run_uid: str) -> None:
        """The run is over: drop what ``_put_context`` stored."""

    @abc.abstractmethod
    def _launch(
        self,
        call: RemoteCall,
        handles: list[Any],
        *,
        stage: PlannedStage,
        key: str,
        resources: dict[str, float],
    ) -> Launched:
        """Submit :func:`remote_stage` with ``call`` and ``handles`` (resolved by the cluster on the worker)."""

    @abc.abstractmethod
    def _split(
        self, source: RemoteOutput, bounds: tuple[tuple[int, int], ...], *, stage: PlannedStage, key: str
    ) -> list[Any]:
        """Submit :func:`split_items`; returns one handle per chunk (each resolves to the chunk list)."""

    @abc.abstractmethod
    async def _fetch(self, handles: list[Any]) -> list[Any]:
        """Bring values to the driver without blocking the event loop."""

    @abc.abstractmethod
    def _cancel(self, handles: Sequence[Any]) -> None:
        """Cancel submitted tasks (queued or running) and forget their results."""

    def _resource_problem(self, stage: str, wanted: dict[str, float]) -> str | None:
        """Why the cluster cannot run a task wanting ``wanted``; None when it can."""
        return None

    def _retryable(self, exc: BaseException) -> bool:
        """A remote exception (not a stage's) after which the driver resubmits within ``retries``."""
        return False

    def _remote_failure(self, exc: BaseException, index: int) -> Failure:
        """A failure of the remote machinery (worker died, task cancelled) as a stage failure."""
        return Failure(index, type(exc).__name__, str(exc) or type(exc).__name__, "")

    # -- Executor API ------------------------------------------------------------------------

    async def submit(self, task: Task) -> TaskResult:
        """One task through the cluster (the generic path; ``execute`` does not use it)."""
        call = RemoteCall(task, (), items=task.items)
        stage = _AdHocStage(task.stage, retries=task.retries)
        status, launched = await run_remote_once(
            self, call, stage, f"flowdapt-{task.stage}-{task.run_uid}-adhoc"
        )
        logs = getattr(status, "logs", None)
        began = getattr(status, "began", None)
        if status.failures and (task.mode == MODE_CALL or status.never_ran):
            return TaskResult([None] if task.mode == MODE_CALL else [], status.failures, status.attempts, logs, began)
        (value,) = await self._fetch([launched.value])
        if launched.pair:
            value = value[1]
        if task.mode == MODE_CALL:
            return TaskResult([value], [], status.attempts, logs, began)
        # Put None back where items failed, as run_task does.
        values = list(value)
        for failure in sorted(status.failures, key=lambda f: f.index):
            values.insert(failure.index - task.start, None)
        return TaskResult(values, status.failures, status.attempts, logs, began)

    async def cancel(self, run_uid: str) -> None:
        handles = self._inflight.get(run_uid)
        if handles:
            self._cancel(list(handles))

    async def execute(self, plan: Plan, ctx: RunContext, observer: RunObserver) -> dict[str, Any]:
        run_uid = str(ctx.run.uid)
        wanted: dict[str, dict[str, float]] = {}
        for name, stage in plan.stages.items():
            wanted[name] = parse_stage_resources(name, stage.resources)
            problem = None if self.wait_for_resources else self._resource_problem(name, wanted[name])
            if problem:
                for other in plan.stages:
                    if other != name:
                        observer.stage_cancelled(other)
                raise StageError(name, InsufficientResourcesError.__name__, problem)
        context_payload = self._put_context(run_uid, self.encode_context(ctx))
        inflight = self._inflight.setdefault(run_uid, set())
        backend = ClusterBackend(self, ctx, context_payload, wanted, inflight)
        try:
            return await drive(plan, ctx.input, backend, observer)
        finally:
            self._inflight.pop(run_uid, None)
            self._release_context(run_uid)


@dataclass(frozen=True)
class _AdHocOptions:
    retries: int = 0


class _AdHocStage:
    def __init__(self, name: str, retries: int = 0):
        self.name = name
        self.resources: dict[str, Any] = {}
        self.options = _AdHocOptions(retries)


async def run_remote_once(
    ex: ClusterExecutor,
    call: RemoteCall,
    stage,
    key: str,
    handles: Sequence[Any] = (),
    resources: dict[str, float] | None = None,
    index: int = 0,
    inflight: set[Any] | None = None,
) -> tuple[RemoteStatus, Launched]:
    """Launch and await one remote task, resubmitting after retryable cluster failures
    (a worker that died) within the stage's ``retries``."""
    attempts = 0
    while True:
        attempts += 1
        launched = ex._launch(
            call,
            list(handles),
            stage=stage,
            key=f"{key}-a{attempts}" if attempts > 1 else key,
            resources=resources or {},
        )
        if inflight is not None:
            inflight.update(launched.handles)
        try:
            return await launched.status, launched
        except asyncio.CancelledError:
            ex._cancel(launched.handles)
            raise
        except Exception as exc:  # noqa: BLE001 - the cluster failed the task (worker died...)
            if ex._retryable(exc) and attempts <= stage.options.retries:
                continue
            failure = ex._remote_failure(exc, index)
            failure.attempts = attempts
            return RemoteStatus([failure], attempts, never_ran=True), launched
        finally:
            if inflight is not None:
                inflight.difference_update(launched.handles)


@dataclass(frozen=True, slots=True)
class _Chunk:
    call: RemoteCall
    handles: list[Any]
    key: str


class ClusterBackend:
    """The driver's backend for a :class:`ClusterExecutor`: outputs are :class:`RemoteOutput` handles."""

    def __init__(self, executor: ClusterExecutor, ctx: RunContext, context_payload, wanted, inflight) -> None:
        self.ex = executor
        self.ctx = ctx
        self.context_payload = context_payload
        self.wanted = wanted
        self.inflight = inflight
        self.run_uid = str(ctx.run.uid)
        self.reports_start = executor.reports_start

    def base_task(self, stage: PlannedStage, mode: str) -> Task:
        options = stage.options
        return Task(
            run_uid=self.run_uid,
            stage=stage.name,
            target=self.ex.encode_target(stage.target),
            context=None if self.ex.context_as_handle else self.context_payload,
            mode=mode,
            retries=options.retries,
            retry_delay=options.retry_delay,
            timeout=options.timeout,
        )

    def key(self, stage: PlannedStage, suffix: str) -> str:
        return f"flowdapt-{stage.name}-{self.run_uid}-{suffix}"

    async def run_remote(
        self, stage: PlannedStage, call: RemoteCall, handles: list[Any], key: str, index: int
    ) -> tuple[RemoteStatus, Launched]:
        if self.ex.context_as_handle:
            call = dataclasses.replace(call, context_arg=True)
            handles = [self.context_payload, *handles]
        return await run_remote_once(
            self.ex, call, stage, key, handles, self.wanted[stage.name], index, self.inflight
        )

    # -- the driver's Backend ----------------------------------------------------------------

    async def call(
        self, stage: PlannedStage, deps: list[RemoteOutput]
    ) -> tuple[RemoteStatus, RemoteOutput | None]:
        call = RemoteCall(
            self.base_task(stage, MODE_CALL), tuple(d.group for d in deps), input_kwargs=stage.is_root
        )
        handles = [h for d in deps for h in d.handles]
        status, launched = await self.run_remote(stage, call, handles, self.key(stage, "call"), 0)
        if status.failures:
            return status, None
        return status, RemoteOutput([launched.value], False, launched.pair, status.length, status.value_type)

    def map_length(self, stage: PlannedStage, source: RemoteOutput) -> tuple[int | None, str, Any]:
        return source.length, source.value_type, source

    def chunks(
        self, stage: PlannedStage, n: int, items: Any, input_key: str | None, rest: list[RemoteOutput]
    ) -> list[tuple[int, _Chunk]]:
        rest_groups = tuple(d.group for d in rest)
        rest_handles = [h for d in rest for h in d.handles]
        parts: list[tuple[int, Any, list[Any], tuple[Group, ...]]] = []  # start, items, handles, groups
        if input_key:
            # Items the run input holds as a list are read from the context on the worker.
            from_context = items is self.ctx.input[input_key]
            for lo, hi in chunk_bounds(n, self.ex.chunk_size(n, stage)):
                parts.append(
                    (
                        lo,
                        InputSlice(input_key, lo, hi) if from_context else items[lo:hi],
                        rest_handles,
                        rest_groups,
                    )
                )
        elif items.chunked:
            # A map over a map: its chunks are already on the cluster, sized for this cluster.
            lo = 0
            for handle, length in zip(items.handles, items.lengths, strict=True):
                if length:
                    parts.append(
                        (lo, None, [handle, *rest_handles], (Group(1, False, items.pair), *rest_groups))
                    )
                lo += length
        else:
            bounds = tuple(chunk_bounds(n, self.ex.chunk_size(n, stage)))
            if len(bounds) == 1:
                split = [(items.handles[0], items.pair)]
            else:
                split = [
                    (h, False)
                    for h in self.ex._split(items, bounds, stage=stage, key=self.key(stage, "split"))
                ]
            for (lo, _hi), (handle, pair) in zip(bounds, split, strict=True):
                parts.append((lo, None, [handle, *rest_handles], (Group(1, False, pair), *rest_groups)))
        chunks = []
        for i, (lo, chunk_items, handles, groups) in enumerate(parts):
            task = self.base_task(stage, MODE_MAP)
            task.start = lo
            call = RemoteCall(task, groups, input_kwargs=stage.is_root, drop_key=input_key, items=chunk_items)
            chunks.append((lo, _Chunk(call, handles, self.key(stage, str(i)))))
        return chunks

    async def run_chunk(self, stage: PlannedStage, work: _Chunk, start: int) -> tuple[RemoteStatus, Launched]:
        return await self.run_remote(stage, work.call, work.handles, work.key, start)

    def map_output(self, stage: PlannedStage, parts: list[tuple[RemoteStatus, Launched]]) -> RemoteOutput:
        lengths = [status.length or 0 for status, _ in parts]
        return RemoteOutput(
            [launched.value for _, launched in parts],
            True,
            parts[0][1].pair if parts else False,
            sum(lengths),
            "list",
            lengths,
        )

    async def results(self, plan: Plan, outputs: dict[str, RemoteOutput]) -> dict[str, Any]:
        return {name: await self.fetch(outputs[name]) for name in plan.sinks}

    async def fetch(self, out: RemoteOutput) -> Any:
        if not out.handles:
            return []
        values = await self.ex._fetch(out.handles)
        if out.pair:
            values = [v[1] for v in values]
        if not out.chunked:
            return values[0]
        merged: list[Any] = []
        for chunk in values:
            merged.extend(chunk)
        return merged

    async def abort(self) -> None:
        self.ex._cancel(list(self.inflight))
