"""A DAG driver for executors whose cluster keeps the results: Ray (object refs), Dask (futures).

The generic :func:`~flowdapt.engine.scheduler.run_plan` brings every stage output back to the
driver. Here outputs stay on the cluster: a stage task gets its dependencies' outputs as handles
the cluster resolves on the worker, and the driver only sees a small :class:`RemoteStatus` per
task (failures, attempts, item counts) to record progress and decide what to launch next. Only
the sinks' outputs come back to the driver, once, at the end.

Workers run the same per-task path as every executor (:func:`~flowdapt.engine.worker.run_task`);
:func:`remote_stage` and :func:`split_items` are the functions the cluster calls.

A subclass implements a handful of primitives (``_launch``, ``_split``, ``_fetch``, ``_cancel``,
``_put_context``) and optionally ``_resource_problem`` and ``_retryable``.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import math
import os
import re
import sys
import traceback
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowdapt.engine.context import RunContext
from flowdapt.engine.executor import Executor
from flowdapt.engine.plan import Plan, PlannedStage
from flowdapt.engine.scheduler import RunObserver, _Skipped, _stage_error, _wait_all
from flowdapt.engine.worker import MODE_CALL, MODE_MAP, Failure, Task, TaskResult, context_for, run_task
from flowdapt.errors import StageError


class InsufficientResourcesError(Exception):
    """A stage asks for resources that no node of the cluster has."""


# =============================================================================================
# Stage resources: one vocabulary for every cluster executor
# =============================================================================================

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
}
_BYTES_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)

#: Stage resource names -> the canonical names executors map to their cluster's own.
RESOURCE_ALIASES = {
    "cpus": "CPU",
    "cpu": "CPU",
    "num_cpus": "CPU",
    "gpus": "GPU",
    "gpu": "GPU",
    "num_gpus": "GPU",
    "memory": "memory",
    "mem": "memory",
}


def worker_sys_path() -> list[str]:
    """The driver's sys.path entries a worker on this machine would miss (not site-packages, not stdlib)."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    keep: list[str] = []
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if "site-packages" in real or "dist-packages" in real or any(real.startswith(p + os.sep) for p in prefixes):
            continue
        if real not in keep:
            keep.append(real)
    return keep


def plugin_package_dirs(plugins, skip: set[str], executor: str) -> list[str]:
    """Directories of the loaded plugins' top-level packages, except those in ``skip``: what a
    cluster executor ships to remote workers (``ship_plugins``)."""
    import importlib
    import logging
    from pathlib import Path

    skip = set(skip)
    packages: list[str] = []
    for info in plugins.plugins.values():
        top = info.module.split(".")[0]
        if not info.loaded or top in skip:
            continue
        skip.add(top)
        try:
            module = importlib.import_module(top)
        except Exception as exc:  # removed or broken since it was loaded: nothing to ship
            logging.getLogger(__name__).warning("not shipping plugin package %s to %s workers: %s", top, executor, exc)
            continue
        if getattr(module, "__file__", None):
            packages.append(str(Path(module.__file__).parent))
    return packages


def parse_bytes(value: Any) -> int:
    """``"8GB"`` -> 8_000_000_000, ``"8GiB"`` -> 8 * 2**30, ``512`` -> 512."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return int(value)
    match = _BYTES_RE.match(str(value))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"{value!r} is not a size like 512, '500MB' or '8GiB'")
    return int(float(match.group(1)) * _UNITS[unit])


def parse_stage_resources(stage: str, resources: dict[str, Any]) -> dict[str, float]:
    """A stage's ``resources`` as ``{"CPU": 2.0, "GPU": 1.0, "memory": 8e9, "<label>": n}``.

    Raises StageError naming the stage and the resource when a value is not a non-negative number
    (or a size, for memory).
    """
    parsed: dict[str, float] = {}
    for raw_name, raw_value in (resources or {}).items():
        name = RESOURCE_ALIASES.get(str(raw_name).lower(), str(raw_name))
        if raw_value is None:
            continue
        try:
            if name == "memory":
                value = float(parse_bytes(raw_value))
            else:
                if isinstance(raw_value, bool) or not isinstance(raw_value, (int, float, str)):
                    raise ValueError(f"{raw_value!r} is not a number")
                value = float(raw_value)
                if value < 0 or math.isnan(value):
                    raise ValueError(f"{raw_value!r} is negative")
        except ValueError as exc:
            raise StageError(stage, "ValueError", f"resources.{raw_name}: {exc}") from None
        parsed[name] = value
    return parsed


def describe_resources(resources: dict[str, float]) -> str:
    def fmt(name: str, value: float) -> str:
        if name == "memory":
            return f"memory={value / 1e9:g}GB"
        return f"{name}={value:g}"

    return ", ".join(fmt(k, v) for k, v in sorted(resources.items())) or "nothing"


def missing_resources(
    stage: str, wanted: dict[str, float], nodes: Sequence[dict[str, float]], hint: str = "", unit: str = "node"
) -> str | None:
    """Why no node can run a task wanting ``wanted``, or None when one can."""
    if not wanted:
        return None
    if not nodes:
        return f"stage '{stage}' asks for {describe_resources(wanted)} but the cluster has no {unit}s"
    for node in nodes:
        if all(node.get(name, 0.0) >= amount for name, amount in wanted.items()):
            return None
    # Name the first resource that no single node has enough of (or the combination).
    for name, amount in sorted(wanted.items()):
        best = max(node.get(name, 0.0) for node in nodes)
        if best < amount:
            have = f"no {unit} has it" if best == 0 else f"the largest {unit} has {describe_resources({name: best})}"
            return (
                f"stage '{stage}' asks for {describe_resources({name: amount})} but {have} "
                f"({unit}s in the cluster: {len(nodes)}){hint}"
            )
    return f"stage '{stage}' asks for {describe_resources(wanted)} together, which no single {unit} has{hint}"


# =============================================================================================
# Worker side: what the cluster runs
# =============================================================================================


@dataclass(slots=True)
class RemoteStatus:
    """What the driver learns about a finished remote task (the output itself stays remote)."""

    failures: list[Failure]
    attempts: int = 1
    done: int = 0  # items run (a map chunk) or 1 (a call)
    length: int | None = None  # len() of the output kept, when it is a list-like (for a downstream map)
    value_type: str = ""
    never_ran: bool = False  # the target could not be resolved: a stage failure, not an item's


@dataclass(frozen=True, slots=True)
class Group:
    """How consecutive handles passed to a remote function form one argument.

    ``count`` handles; ``chunked``: they are chunks of one list (concatenated); ``pair``: each
    resolves to ``(RemoteStatus, value)`` (Dask futures of :func:`remote_stage`) rather than the value.
    """

    count: int
    chunked: bool = False
    pair: bool = False


@dataclass(frozen=True, slots=True)
class InputSlice:
    """Map items taken from the run input on the worker (the context is already there)."""

    key: str
    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class RemoteCall:
    """What :func:`remote_stage` needs besides the handles' values."""

    task: Task
    groups: tuple[Group, ...]
    #: Root stages take the run input as keyword arguments, read from the context on the worker
    #: (minus the ``map_on`` key), so it never travels with each task.
    input_kwargs: bool = False
    drop_key: str | None = None
    #: Map chunks: the items are an :class:`InputSlice`, a list carried inline, or (None) the
    #: first group.
    items: Any = None
    #: The first value is the run's encoded context (a cluster handle resolved on the worker).
    context_arg: bool = False
    #: Worker setup the cluster could not run at worker start (a shared connection): an object with
    #: a ``key`` and a ``__call__``, run once per worker process and key before the task.
    setup: Any = None


def _assemble(groups: Sequence[Group], values: Sequence[Any]) -> list[Any]:
    args: list[Any] = []
    i = 0
    for group in groups:
        part = values[i : i + group.count]
        i += group.count
        if group.pair:
            part = [v[1] for v in part]
        if group.chunked:
            merged: list[Any] = []
            for chunk in part:
                merged.extend(chunk)
            args.append(merged)
        else:
            args.append(part[0])
    return args


def _length(value: Any) -> tuple[int | None, str]:
    kind = type(value).__name__
    if isinstance(value, list):
        return len(value), kind
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__") or not hasattr(value, "__len__"):
        return None, kind
    try:
        return len(value), kind
    except TypeError:
        return None, kind


def _failure(exc: BaseException, index: int = 0) -> Failure:
    tb = "".join(traceback.format_exception(exc))[-20_000:]
    return Failure(index, type(exc).__name__, str(exc), tb)


_setups_done: set[str] = set()


def _ensure_setup(setup: Any) -> None:
    if setup is None or setup.key in _setups_done:
        return
    setup()
    _setups_done.add(setup.key)


def remote_stage(call: RemoteCall, *values: Any) -> tuple[RemoteStatus, Any]:
    """Run one stage call or one map chunk on a worker. Never raises for a stage failure."""
    task = call.task
    try:
        _ensure_setup(call.setup)
        if call.context_arg:
            task.context, values = values[0], values[1:]
        args = _assemble(call.groups, values)
        if call.input_kwargs or isinstance(call.items, InputSlice):
            ctx = context_for(task)
            if call.input_kwargs:
                task.kwargs = {k: v for k, v in ctx.input.items() if k != call.drop_key}
        if task.mode == MODE_MAP:
            if isinstance(call.items, InputSlice):
                source = ctx.input[call.items.key]
                items = source[call.items.start : call.items.stop]
                if not isinstance(items, list):
                    items = list(items)
            elif call.items is not None:
                items = call.items
            else:
                items = args.pop(0)
                if not isinstance(items, list):
                    items = list(items)
            task.items = items
        task.args = tuple(args)
    except Exception as exc:  # noqa: BLE001 - e.g. a dependency output that cannot be assembled
        return RemoteStatus([_failure(exc, task.start)], never_ran=True), None
    result = run_task(task)
    if task.mode == MODE_CALL:
        if result.failures:
            return RemoteStatus(result.failures, result.attempts, never_ran=not result.values), None
        value = result.values[0]
        length, kind = _length(value)
        return RemoteStatus([], result.attempts, 1, length, kind), value
    if result.failures and not result.values:
        return RemoteStatus(result.failures, result.attempts, never_ran=True), None
    values_out = result.values
    if result.failures:
        failed = {f.index - task.start for f in result.failures}
        values_out = [v for j, v in enumerate(values_out) if j not in failed]
    return RemoteStatus(result.failures, result.attempts, len(result.values), len(values_out), "list"), values_out


def split_items(bounds: tuple[tuple[int, int], ...], group: Group, *values: Any) -> tuple[list[Any], ...]:
    """Cut a stage output into map chunks on the cluster (the driver never holds the list)."""
    (source,) = _assemble((group,), values)
    if not isinstance(source, list):
        source = list(source)
    return tuple(source[lo:hi] for lo, hi in bounds)


# =============================================================================================
# Driver side
# =============================================================================================


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
        self, call: RemoteCall, handles: list[Any], *, stage: PlannedStage, key: str, resources: dict[str, float]
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
        status, launched = await _RunDriver.run_remote_once(self, call, stage, f"flowdapt-{task.stage}-{task.run_uid}-adhoc")
        if status.failures and (task.mode == MODE_CALL or status.never_ran):
            return TaskResult([None] if task.mode == MODE_CALL else [], status.failures, status.attempts)
        (value,) = await self._fetch([launched.value])
        if launched.pair:
            value = value[1]
        if task.mode == MODE_CALL:
            return TaskResult([value], [], status.attempts)
        # Put None back where items failed, as run_task does.
        values = list(value)
        for failure in sorted(status.failures, key=lambda f: f.index):
            values.insert(failure.index - task.start, None)
        return TaskResult(values, status.failures, status.attempts)

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
        driver = _RunDriver(self, plan, ctx, observer, context_payload, wanted, inflight)
        try:
            return await driver.run()
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


class _RunDriver:
    def __init__(self, executor: ClusterExecutor, plan: Plan, ctx: RunContext, observer, context_payload, wanted, inflight):
        self.ex = executor
        self.plan = plan
        self.ctx = ctx
        self.observer = observer
        self.context_payload = context_payload
        self.wanted = wanted
        self.inflight = inflight
        self.run_uid = str(ctx.run.uid)
        self.tasks: dict[str, asyncio.Task] = {}

    async def run(self) -> dict[str, Any]:
        for name, stage in self.plan.stages.items():
            self.tasks[name] = asyncio.ensure_future(self.run_stage(stage))
        try:
            await _wait_all(self.tasks, self.observer)
        except BaseException:
            for task in self.tasks.values():
                if not task.done():
                    task.cancel()
            self.ex._cancel(list(self.inflight))
            raise
        outputs: dict[str, RemoteOutput] = {name: self.tasks[name].result() for name in self.plan.sinks}
        return {name: await self.fetch(out) for name, out in outputs.items()}

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
        return await self.run_remote_once(
            self.ex, call, stage, key, handles, self.wanted[stage.name], index, self.inflight
        )

    @staticmethod
    async def run_remote_once(
        ex: ClusterExecutor,
        call: RemoteCall,
        stage,
        key: str,
        handles: list[Any] = (),
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
                call, list(handles), stage=stage, key=f"{key}-a{attempts}" if attempts > 1 else key, resources=resources or {}
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

    async def run_stage(self, stage: PlannedStage) -> RemoteOutput:
        try:
            deps: list[RemoteOutput] = [await self.tasks[dep] for dep in stage.depends_on]
        except (StageError, _Skipped):
            raise _Skipped(stage.name) from None
        if stage.maps:
            return await self.run_map(stage, deps)
        self.observer.stage_started(stage.name, None)
        call = RemoteCall(
            self.base_task(stage, MODE_CALL),
            tuple(d.group for d in deps),
            input_kwargs=stage.is_root,
        )
        handles = [h for d in deps for h in d.handles]
        status, launched = await self.run_remote(stage, call, handles, self.key(stage, "call"), 0)
        if status.failures:
            failure = status.failures[0]
            self.observer.stage_finished(stage.name, failure, failure.attempts)
            raise _stage_error(stage.name, failure, False)
        self.observer.stage_finished(stage.name, None, status.attempts)
        return RemoteOutput([launched.value], False, launched.pair, status.length, status.value_type)

    async def run_map(self, stage: PlannedStage, deps: list[RemoteOutput]) -> RemoteOutput:
        run_input = self.ctx.input
        if stage.map_on:
            if stage.map_on not in run_input:
                raise StageError(stage.name, "KeyError", f"map_on key {stage.map_on!r} is not in the run input")
            source_value = run_input[stage.map_on]
            if isinstance(source_value, (str, bytes, dict)) or not hasattr(source_value, "__iter__"):
                raise StageError(
                    stage.name,
                    "TypeError",
                    f"a parameterized stage maps over a list, but input key {stage.map_on!r} is a {type(source_value).__name__}",
                )
            inline = None if isinstance(source_value, list) else list(source_value)
            n = len(source_value) if inline is None else len(inline)
            rest = deps
        else:
            source = deps[0]
            if source.length is None:
                raise StageError(
                    stage.name,
                    "TypeError",
                    f"a parameterized stage maps over a list, but the output of {stage.depends_on[0]!r} is a {source.value_type}",
                )
            n = source.length
            rest = deps[1:]
        self.observer.stage_started(stage.name, n)
        if n == 0:
            self.observer.stage_finished(stage.name, None, 1)
            return RemoteOutput([], True, False, 0, "list", [])
        rest_groups = tuple(d.group for d in rest)
        rest_handles = [h for d in rest for h in d.handles]
        chunks: list[tuple[int, int, Any, list[Any], tuple[Group, ...]]] = []  # start, stop, items, handles, groups
        if stage.map_on:
            size = self.ex.chunk_size(n, stage)
            for lo in range(0, n, size):
                hi = min(lo + size, n)
                items = InputSlice(stage.map_on, lo, hi) if inline is None else inline[lo:hi]
                chunks.append((lo, hi, items, rest_handles, rest_groups))
        elif source.chunked:
            # A map over a map: its chunks are already on the cluster, sized for this cluster.
            lo = 0
            for handle, length in zip(source.handles, source.lengths, strict=True):
                if length:
                    chunks.append((lo, lo + length, None, [handle, *rest_handles], (Group(1, False, source.pair), *rest_groups)))
                lo += length
        else:
            size = self.ex.chunk_size(n, stage)
            bounds = tuple((lo, min(lo + size, n)) for lo in range(0, n, size))
            if len(bounds) == 1:
                parts = [(source.handles[0], source.pair)]
            else:
                parts = [(h, False) for h in self.ex._split(source, bounds, stage=stage, key=self.key(stage, "split"))]
            for (lo, hi), (handle, pair) in zip(bounds, parts, strict=True):
                chunks.append((lo, hi, None, [handle, *rest_handles], (Group(1, False, pair), *rest_groups)))
        return await self.run_chunks(stage, chunks, n)

    async def run_chunks(self, stage: PlannedStage, chunks, n: int) -> RemoteOutput:
        allow_partial = getattr(stage.options, "allow_partial_failure", False)
        pending: dict[asyncio.Task, int] = {}
        for i, (lo, _hi, items, handles, groups) in enumerate(chunks):
            task = self.base_task(stage, MODE_MAP)
            task.start = lo
            call = RemoteCall(task, groups, input_kwargs=stage.is_root, drop_key=stage.map_on, items=items)
            pending[asyncio.ensure_future(self.run_remote(stage, call, handles, self.key(stage, str(i)), lo))] = i
        results: dict[int, tuple[RemoteStatus, Launched]] = {}
        done_count = failed_count = 0
        attempts = 1
        try:
            while pending:
                finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for fut in finished:
                    i = pending.pop(fut)
                    status, launched = fut.result()
                    results[i] = (status, launched)
                    attempts = max(attempts, status.attempts)
                    # As run_plan: a failed map stage is marked by the runner from the StageError.
                    if status.never_ran:
                        raise _stage_error(stage.name, status.failures[0], False)
                    done_count += status.done
                    failed_count += len(status.failures)
                    self.observer.items_progress(stage.name, done_count, failed_count, status.failures)
                    if status.failures and not allow_partial:
                        raise _stage_error(stage.name, min(status.failures, key=lambda f: f.index), True)
        except BaseException:
            for fut in pending:
                fut.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise
        self.observer.stage_finished(stage.name, None, attempts)
        ordered = [results[i] for i in range(len(chunks))]
        lengths = [status.length or 0 for status, _ in ordered]
        return RemoteOutput(
            [launched.value for _, launched in ordered],
            True,
            ordered[0][1].pair if ordered else False,
            sum(lengths),
            "list",
            lengths,
        )
