"""The per-task path, shared by every executor: run one chunk of a stage inside a worker.

A :class:`Task` is what travels to a worker. Its ``context`` and ``target`` may be pickled bytes
(process and remote workers) or live objects (threads, inline); either way they are decoded and
resolved once per worker and run, then cached: the per-item loop only calls the function.
"""

from __future__ import annotations

import asyncio
import contextvars
import signal
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from flowdapt.engine.context import RunContext, reset_run_context, set_run_context
from flowdapt.engine.live import Tracker, track, untrack
from flowdapt.engine.logs import Capture, start_capture, stop_capture
from flowdapt.engine.targets import Signature, import_target
from flowdapt.errors import StageTimeoutError
from flowdapt.resources.run import RunState

MODE_CALL = "call"  # one call with positional args (dependency outputs) and filtered kwargs (run input)
MODE_MAP = "map"  # one call per item: f(item, *args, **kwargs)

MAX_TRACEBACK_CHARS = 20_000


@dataclass(slots=True)
class Task:
    run_uid: str
    stage: str
    target: Any  # import path, cloudpickled callable (bytes) or callable
    context: Any  # RunContext or its cloudpickled bytes
    mode: str = MODE_CALL
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    items: list[Any] | None = None
    start: int = 0  # index of the first item of this chunk in the whole list
    retries: int = 0
    retry_delay: float = 0.0
    timeout: float | None = None


@dataclass(slots=True)
class Failure:
    index: int  # item index in the whole list (0 for a plain call)
    type: str
    message: str
    traceback: str
    attempts: int = 1


@dataclass(slots=True)
class TaskResult:
    """Values in item order (None where an item failed) and the failures."""

    values: list[Any]
    failures: list[Failure]
    attempts: int = 1
    #: What the stage printed and logged (engine.logs record tuples), when the run captures.
    logs: list[tuple] | None = None
    #: When the task began on its worker (``time.time()`` there): stage times count from it,
    #: not from when the task was submitted (it may have waited for a worker).
    began: float | None = None

    # The driver's view of a finished task (engine.driver.Status).
    @property
    def done(self) -> int:
        return len(self.values)

    @property
    def never_ran(self) -> bool:
        return bool(self.failures) and not self.values


# -- per-process caches ------------------------------------------------------------------------

_targets: dict[Any, tuple[Callable[..., Any], Signature]] = {}
_contexts: OrderedDict[str, RunContext] = OrderedDict()
_MAX_CONTEXTS = 16
_cache_lock = threading.Lock()
_loop_local = threading.local()


def resolve(target: Any) -> tuple[Callable[..., Any], Signature]:
    """The callable and its signature; imported or unpickled once per process."""
    key = target if isinstance(target, (str, bytes)) else id(target)
    hit = _targets.get(key)
    if hit is not None and (isinstance(target, (str, bytes)) or hit[0] is target):
        return hit
    if isinstance(target, str):
        fn = import_target(target)
    elif isinstance(target, bytes):
        fn = cloudpickle.loads(target)
    else:
        fn = target
    resolved = (fn, Signature.of(fn))
    with _cache_lock:
        _targets[key] = resolved
    return resolved


def context_for(task: Task) -> RunContext:
    """The task's run context, decoded once per worker and run.

    ``task.context`` is a live :class:`RunContext` (threads, inline), its cloudpickled bytes, or a
    zero-argument loader returning either (e.g. a fetch from a cluster's object store), which is
    called only when this worker has not decoded the run's context yet.
    """
    ctx = task.context
    if isinstance(ctx, RunContext):
        return ctx
    hit = _contexts.get(task.run_uid)
    if hit is not None:
        return hit
    if callable(ctx):
        ctx = ctx()
    decoded = ctx if isinstance(ctx, RunContext) else cloudpickle.loads(ctx)
    with _cache_lock:
        _contexts[task.run_uid] = decoded
        while len(_contexts) > _MAX_CONTEXTS:
            _contexts.popitem(last=False)
    return decoded


def forget_run(run_uid: str) -> None:
    with _cache_lock:
        _contexts.pop(run_uid, None)


def clear_caches() -> None:
    """Drop resolved targets and contexts (after a plugin install, so new code is imported)."""
    with _cache_lock:
        _targets.clear()
        _contexts.clear()


def forget_modules(top_level: Iterable[str]) -> list[str]:
    """Remove ``name`` and ``name.*`` from ``sys.modules`` for each top-level name; clear caches.

    The next import reads the files again, and stage targets are resolved again. Returns the
    module names removed. Objects already holding the old modules keep them.
    """
    import importlib
    import sys

    names = {n for n in top_level if n}
    removed = [mod for mod in list(sys.modules) if mod in names or any(mod.startswith(n + ".") for n in names)]
    for mod in removed:
        sys.modules.pop(mod, None)
    importlib.invalidate_caches()
    clear_caches()
    return sorted(removed)


# -- calling -----------------------------------------------------------------------------------


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop = getattr(_loop_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loop_local.loop = loop
    return loop


async def _bounded(coro, timeout: float, stage: str) -> Any:
    """The coroutine within ``timeout``; a timeout is a StageTimeoutError, like for sync calls
    (a TimeoutError the stage raises itself stays what it is)."""
    try:
        async with asyncio.timeout(timeout) as scope:
            return await coro
    except TimeoutError:
        if scope.expired():
            raise StageTimeoutError(f"stage '{stage}' timed out after {timeout:g}s") from None
        raise


def _run_coroutine(coro, timeout: float | None, stage: str = "") -> Any:
    if timeout is not None:
        coro = _bounded(coro, timeout, stage)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _thread_loop().run_until_complete(coro)
    # Called from a thread that already runs a loop (inline mode): use a helper thread.
    box: dict[str, Any] = {}
    context = contextvars.copy_context()  # the run context and the log capture go with it

    def runner() -> None:
        try:
            box["value"] = context.run(asyncio.run, coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=runner, name="flowdapt-async-stage")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class _Alarm:
    """A SIGALRM timer for sync calls in a process's main thread (where signals can interrupt)."""

    def __init__(self, seconds: float | None, stage: str):
        self.seconds = seconds
        self.stage = stage
        self.active = (
            seconds is not None
            and hasattr(signal, "setitimer")
            and threading.current_thread() is threading.main_thread()
        )
        self._previous = None

    def _fire(self, signum, frame):
        raise StageTimeoutError(f"stage '{self.stage}' timed out after {self.seconds:g}s")

    def __enter__(self):
        if self.active:
            self._previous = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous or signal.SIG_DFL)
        return False


def _interrupt(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """Ask a thread to raise ``exc_type`` at its next bytecode (it cannot stop a blocking C call)."""
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type))


def _call_with_watchdog(fn, args: tuple, kwargs: dict, timeout: float, stage: str) -> Any:
    """A sync call with a timeout outside a main thread (thread pools, Dask workers), where SIGALRM
    cannot interrupt: the call runs in a helper thread; on timeout the helper is asked to stop and
    abandoned, and the stage fails now."""
    context = contextvars.copy_context()
    box: dict[str, Any] = {}
    done = threading.Event()

    def runner() -> None:
        try:
            box["value"] = context.run(fn, *args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the caller's thread
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=runner, name=f"flowdapt-stage-{stage}", daemon=True)
    thread.start()
    if not done.wait(timeout):
        _interrupt(thread, StageTimeoutError)
        raise StageTimeoutError(f"stage '{stage}' timed out after {timeout:g}s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _call(fn, sig: Signature, args: tuple, kwargs: dict, timeout: float | None, stage: str) -> Any:
    if sig.is_async:
        return _run_coroutine(fn(*args, **kwargs), timeout, stage)
    if timeout is None:
        return fn(*args, **kwargs)
    alarm = _Alarm(timeout, stage)
    if not alarm.active:
        return _call_with_watchdog(fn, args, kwargs, timeout, stage)
    with alarm:
        return fn(*args, **kwargs)


def _describe(exc: BaseException) -> tuple[str, str, str]:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError) and not str(exc):
        message = "timed out"
    else:
        message = str(exc)
    tb = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK_CHARS:]
    return type(exc).__name__, message, tb


def _attempt(task: Task, fn, sig, args, kwargs) -> tuple[bool, Any, int]:
    attempts = 0
    while True:
        attempts += 1
        try:
            return True, _call(fn, sig, args, kwargs, task.timeout, task.stage), attempts
        except Exception as exc:  # noqa: BLE001 - every stage failure is recorded
            if attempts > task.retries:
                return False, exc, attempts
            if task.retry_delay:
                time.sleep(task.retry_delay)


def run_task(task: Task) -> TaskResult:
    """Run a task in this worker. Never raises for a stage failure: failures are returned."""
    began = time.time()
    try:
        fn, sig = resolve(task.target)
        ctx = context_for(task)
    except Exception as exc:  # noqa: BLE001 - an unresolvable target fails the stage clearly
        return TaskResult([], [Failure(task.start, *_describe(exc))])
    run = ctx.run
    if run is not None and run.state is RunState.pending:
        # Work of the run began: stage code sees it running (the driver learns it through
        # engine.live, or from the result). In threads and inline this is the driver's own record.
        run.state = RunState.running
    token = set_run_context(ctx)
    options = ctx.capture
    capture = capture_token = None
    if options is not None:
        capture, capture_token = start_capture(options)
    # Tells the driver, while the task runs, that it began and how far it got (engine.live).
    tracker = track(task.run_uid, task.stage, task.start, capture, began)
    try:
        result = _run(task, fn, sig, capture, tracker)
    finally:
        if tracker is not None:
            untrack(tracker)  # before the capture ends: a ship in progress goes first
        logs = stop_capture(capture, capture_token) if capture is not None else None
        reset_run_context(token)
    if logs:
        result.logs = logs
    result.began = began
    return result


def _run(task: Task, fn, sig: Signature, capture: Capture | None, tracker: Tracker | None) -> TaskResult:
    kwargs = sig.filter_kwargs(task.kwargs) if task.kwargs else {}
    if task.mode == MODE_CALL:
        args = sig.bind_positional(task.args)
        ok, value, attempts = _attempt(task, fn, sig, args, kwargs)
        if ok:
            return TaskResult([value], [], attempts)
        return TaskResult([None], [Failure(task.start, *_describe(value), attempts)], attempts)
    # MODE_MAP: the per-item loop is the hot path; keep it free of per-item work.
    rest = task.args
    if not sig.varargs and len(rest) + 1 > sig.positional:
        rest = rest[: max(sig.positional - 1, 0)]
    values: list[Any] = []
    failures: list[Failure] = []
    append = values.append
    start = task.start
    simple = not sig.is_async and task.timeout is None and task.retries == 0
    # Who is told which item runs: the capture (a line's item, and the tracker reads it there),
    # else the tracker (live progress), else nobody.
    marker = capture if capture is not None else tracker
    if tracker is not None:
        tracker.failures = failures
    if simple and marker is None:
        for offset, item in enumerate(task.items or ()):
            try:
                append(fn(item, *rest, **kwargs))
            except Exception as exc:  # noqa: BLE001
                append(None)
                failures.append(Failure(start + offset, *_describe(exc)))
        return TaskResult(values, failures)
    if simple:
        # The same loop, telling the marker which item runs.
        for index, item in enumerate(task.items or (), start):
            marker.item = index
            try:
                append(fn(item, *rest, **kwargs))
            except Exception as exc:  # noqa: BLE001
                append(None)
                failures.append(Failure(index, *_describe(exc)))
        marker.item = None
        return TaskResult(values, failures)
    max_attempts = 1
    for offset, item in enumerate(task.items or ()):
        if marker is not None:
            marker.item = start + offset
        ok, value, attempts = _attempt(task, fn, sig, (item, *rest), kwargs)
        max_attempts = max(max_attempts, attempts)
        if ok:
            append(value)
        else:
            append(None)
            failures.append(Failure(start + offset, *_describe(value), attempts))
    if marker is not None:
        marker.item = None
    return TaskResult(values, failures, max_attempts)
