"""The Python API: run a workflow in this process, without a server."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures as cf
import contextlib
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flowdapt.engine.context import RunContext  # noqa: F401 - re-exported
from flowdapt.engine.executor import Executor
from flowdapt.engine.logs import echo_sink
from flowdapt.engine.prepare import (  # noqa: F401 - re-exported: the Python API's names for them
    allowed_target_prefixes,
    compile_checked,
    create_executor,
    ensure_user_modules,
    prepare_run,
    run_config,
    script_directory,
    stage_types,
)
from flowdapt.engine.runner import LogSink, RunListener, execute_plan
from flowdapt.errors import RunCancelledError, StageError
from flowdapt.plugins import PluginSystem, get_plugin_system
from flowdapt.resources.config import Config
from flowdapt.resources.loader import parse_resource
from flowdapt.resources.run import WorkflowRun
from flowdapt.resources.workflow import Workflow
from flowdapt.settings import Settings, get_settings


def _as_workflow(workflow: Workflow | Mapping[str, Any]) -> Workflow:
    if isinstance(workflow, Workflow):
        return workflow
    return parse_resource(workflow, kind="workflow")  # type: ignore[return-value]


async def execute_workflow_async(
    workflow: Workflow | Mapping[str, Any],
    input: Mapping[str, Any] | None = None,
    *,
    executor: Executor | str | None = None,
    config: Mapping[str, Any] | Sequence[Config] | None = None,
    namespace: str | None = None,
    run: WorkflowRun | None = None,
    source: str = "manual",
    settings: Settings | None = None,
    plugins: PluginSystem | None = None,
    listeners: Sequence[RunListener] = (),
    executor_options: Mapping[str, Any] | None = None,
    allowed_targets: Sequence[str] = (),
    allowed_beside: str | os.PathLike[str] | None = None,
    log_sink: LogSink | None = None,
) -> WorkflowRun:
    """Run a workflow to its end and return the run record (state, result, per-stage records).

    What the stages print and log (``logs`` settings) goes to ``log_sink(stage, records)``
    (:mod:`flowdapt.engine.logs` record tuples), by default written to stderr as
    ``stage[item] | line``.

    The run is prepared as the server prepares one (:mod:`flowdapt.engine.prepare`): string
    targets must lie in the allowed modules (plugins, ``user_modules``, ``settings.allowed_targets``
    and the prefixes in ``allowed_targets`` for this call, and the modules that lie in the
    directory ``allowed_beside``: by default the running script's, or the working directory in a
    notebook or REPL), the input must give the root stages their required arguments; either
    raises :class:`~flowdapt.errors.ValidationError` before anything runs.
    """
    settings = settings or get_settings()
    plugins = plugins or get_plugin_system(settings)
    ensure_user_modules(settings)
    plan = compile_checked(
        _as_workflow(workflow),
        settings,
        plugins,
        allowed_targets=allowed_targets,
        beside=script_directory if allowed_beside is None else allowed_beside,
    )
    owned = not isinstance(executor, Executor)
    if owned:
        executor = create_executor(settings, plugins, executor, executor_options)  # type: ignore[arg-type]
    assert isinstance(executor, Executor)
    ctx = prepare_run(
        plan, input, settings=settings, executor=executor.name, config=config, namespace=namespace, run=run, source=source
    )
    started_here = not executor.running
    if started_here:
        await executor.start()
    try:
        return await execute_plan(
            plan, ctx, executor, listeners=listeners, hooks=plugins.hook, log_sink=log_sink or echo_sink()
        )
    finally:
        if started_here or owned:
            await executor.stop()


def run_error(run: WorkflowRun) -> Exception:
    """The exception a failed or cancelled run stands for, to raise in the caller.

    A stage error whose type is a built-in exception (``ValueError``, ``FileNotFoundError``...) or
    one of Flowdapt's own (``ObjectNotFoundError``, a ``KeyError`` and ``FileNotFoundError``) is
    raised as that type, so ``except FileNotFoundError`` around a call works as it would around
    the stage itself; any other type is a :class:`StageError` naming it. Either way the stage's
    own traceback (from the worker) is attached as the cause.
    """
    error = run.error
    if error is None:
        return RunCancelledError(f"run {run.name} ended {run.state}")
    if run.state == "cancelled" or error.type == "RunCancelledError":
        return RunCancelledError(error.message)
    stage_error = StageError(error.stage or "?", error.type, error.message, error.traceback)
    exc = _rebuild(error.type, error.message)
    if exc is None:
        return stage_error
    exc.__cause__ = stage_error
    return exc


def _rebuild(type_name: str, message: str) -> Exception | None:
    import builtins

    from flowdapt.errors import FlowdaptError

    cls = getattr(builtins, type_name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        if issubclass(cls, KeyError):  # str(KeyError(k)) is repr(k): raise it with k again
            import ast

            with contextlib.suppress(ValueError, SyntaxError):
                return cls(ast.literal_eval(message))
        try:
            return cls(message)
        except Exception:  # a constructor that needs more than a message (UnicodeDecodeError)
            return None
    import flowdapt.object_store  # noqa: F401 - its ObjectNotFoundError is the one stages raise most

    own = _subclasses(FlowdaptError).get(type_name)
    if own is None:
        return None
    try:
        return own(message)
    except TypeError:  # its constructor needs more than the message
        return None


def _subclasses(cls: type) -> dict[str, type]:
    found: dict[str, type] = {}
    pending = [cls]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub.__module__.startswith("flowdapt."):
                found.setdefault(sub.__name__, sub)
            pending.append(sub)
    return found


class _DefaultExecutor:
    """The executor that :func:`execute_workflow` uses when it is given none (or a backend name).

    Starting an executor costs far more than a small run (a process pool, a Ray or Dask cluster),
    so the first call starts one and the following calls reuse it, on one event loop in a helper
    thread that outlives the calls; it is stopped at interpreter exit. A call with other settings,
    plugins, backend or options replaces it. Executors that run stages in the caller's thread
    (``mode: inline``) are not kept: they cost nothing to start and must run in the caller.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._key: tuple | None = None
        self._executor: Executor | None = None
        self._switch: asyncio.Lock | None = None
        self._atexit = False

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                # A daemon thread, so a program that never calls close() still exits; close()
                # runs from atexit, while daemon threads still run.
                self._thread = threading.Thread(target=serve, name="flowdapt-default-executor", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
                if not self._atexit:
                    atexit.register(self.close)
                    self._atexit = True
            return self._loop

    def run(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop()).result()

    async def get(self, key: tuple, make: Callable[[], Executor]) -> Executor:
        """The started executor for ``key`` (on the helper loop), replacing another one."""
        if self._switch is None:
            self._switch = asyncio.Lock()
        async with self._switch:
            if self._key == key and self._executor is not None and self._executor.running:
                return self._executor
            old, self._executor, self._key = self._executor, None, None
            if old is not None:
                await old.stop()
            executor = make()
            await executor.start()
            self._executor, self._key = executor, key
            return executor

    def close(self) -> None:
        """Stop the kept executor and the helper loop (at exit; tests)."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None:
            return
        executor, self._executor, self._key, self._switch = self._executor, None, None, None
        if thread is threading.current_thread():  # called on the loop itself (a run listener)

            async def finish() -> None:
                if executor is not None:
                    await executor.stop()
                loop.stop()

            loop.create_task(finish())
            return
        if executor is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(executor.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        with contextlib.suppress(Exception):
            loop.close()

    @property
    def executor(self) -> Executor | None:
        return self._executor


_default_executor = _DefaultExecutor()


def close_default_executor() -> None:
    """Stop the executor that :func:`execute_workflow` keeps between calls (also done at exit)."""
    _default_executor.close()


def _default_key(settings: Settings, plugins: PluginSystem, name: str | None, options: Mapping[str, Any] | None):
    backend = name or settings.executor.backend
    return (backend, id(plugins), settings.model_dump_json(), json.dumps(options, sort_keys=True, default=str))


def execute_workflow(
    workflow: Workflow | Mapping[str, Any],
    input: Mapping[str, Any] | None = None,
    *,
    executor: Executor | str | None = None,
    config: Mapping[str, Any] | Sequence[Config] | None = None,
    namespace: str | None = None,
    return_result: bool = False,
    **kwargs: Any,
) -> WorkflowRun | Any:
    """Run a workflow and return the finished run (or just its result with ``return_result``).

    ``executor`` is an :class:`Executor` (started and stopped here if it is not running), a backend
    name (``"local"``, ``"ray"``...), or None for the configured one. Without an Executor object,
    the first call starts one and later calls reuse it (see :func:`close_default_executor`).
    ``config`` is the merged config data, or a list of config resources to select from. Works
    inside a running event loop (a notebook). With ``return_result`` a run that did not finish
    raises its stage's error (see :func:`run_error`).
    """
    coro_args = dict(config=config, namespace=namespace, **kwargs)
    if isinstance(executor, Executor):
        run = _run_here(execute_workflow_async(workflow, input, executor=executor, **coro_args))
    else:
        settings = kwargs.get("settings") or get_settings()
        plugins = kwargs.get("plugins") or get_plugin_system(settings)
        coro_args.update(settings=settings, plugins=plugins)
        ensure_user_modules(settings)  # before the executor starts: its workers take sys.path then
        options = kwargs.get("executor_options")
        coro_args.pop("executor_options", None)
        probe = create_executor(settings, plugins, executor, options)  # not started: cheap
        if probe.runs_in_caller:
            run = _run_here(execute_workflow_async(workflow, input, executor=probe, **coro_args))
        else:
            key = _default_key(settings, plugins, executor, options)

            async def call() -> WorkflowRun:
                started = await _default_executor.get(key, lambda: probe)
                return await execute_workflow_async(workflow, input, executor=started, **coro_args)

            run = _default_executor.run(call())
    if return_result:
        if run.state != "finished":
            raise run_error(run)
        return run.result
    return run


def _run_here(coro) -> Any:
    """Run a coroutine to its end from sync code, also inside a running event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with cf.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
