"""Worker side of the cluster executors: what Ray or Dask runs for one stage call or map chunk.

The driver (:mod:`flowdapt.engine.cluster`) launches :func:`remote_stage` with the handles of the
stage's dependencies, which the cluster resolves on the worker; the worker runs the same per-task
path as every executor (:func:`~flowdapt.engine.worker.run_task`) and returns a small
:class:`RemoteStatus` for the driver beside the output, which stays on the cluster.
:func:`split_items` cuts a stage output into map chunks on the cluster.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flowdapt.engine.worker import MODE_CALL, MODE_MAP, Failure, Task, context_for, run_task


@dataclass(slots=True)
class RemoteStatus:
    """What the driver learns about a finished remote task (the output itself stays remote)."""

    failures: list[Failure]
    attempts: int = 1
    done: int = 0  # items run (a map chunk) or 1 (a call)
    length: int | None = None  # len() of the output kept, when it is a list-like (for a downstream map)
    value_type: str = ""
    never_ran: bool = False  # the target could not be resolved: a stage failure, not an item's
    logs: list[tuple] | None = None  # what the stage printed and logged (engine.logs records)
    began: float | None = None  # when the task began on its worker (time.time() there)


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
    if (
        isinstance(value, (str, bytes, dict))
        or not hasattr(value, "__iter__")
        or not hasattr(value, "__len__")
    ):
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
    status, value = _status_of(task, result)
    status.logs = result.logs
    status.began = result.began
    return status, value


def _status_of(task: Task, result) -> tuple[RemoteStatus, Any]:
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
    return RemoteStatus(
        result.failures, result.attempts, len(result.values), len(values_out), "list"
    ), values_out


def split_items(bounds: tuple[tuple[int, int], ...], group: Group, *values: Any) -> tuple[list[Any], ...]:
    """Cut a stage output into map chunks on the cluster (the driver never holds the list)."""
    (source,) = _assemble((group,), values)
    if not isinstance(source, list):
        source = list(source)
    return tuple(source[lo:hi] for lo, hi in bounds)
