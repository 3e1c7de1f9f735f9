"""The Local executor: a pool of worker processes (default), threads, or inline in the caller.

``inline`` runs stages in the calling thread, so breakpoints and debuggers work. Map items go to
workers in chunks; a stage target is imported once per worker process (see engine.worker).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowdapt.engine.executor import Executor
from flowdapt.engine.scheduler import WORKER_CRASHED
from flowdapt.engine.worker import Failure, Task, TaskResult, run_task
from flowdapt.hookspecs import hookimpl

Mode = Literal["process", "thread", "inline"]


class LocalExecutorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Mode = Field(default="process", description="process pool, thread pool, or inline in the caller")
    workers: int | None = Field(default=None, ge=1, description="pool size (default: CPU count)")
    start_method: Literal["forkserver", "spawn", "fork"] | None = Field(
        default=None, description="how worker processes start (default: forkserver on Linux, spawn elsewhere)"
    )
    # Accepted for resource files written for the original (LocalExecutor kwargs).
    use_processes: bool | None = None
    cpus: int | Literal["auto"] | None = None

    @model_validator(mode="after")
    def _compat(self) -> LocalExecutorOptions:
        if self.use_processes is not None and "mode" not in self.model_fields_set:
            self.mode = "process" if self.use_processes else "thread"
        if isinstance(self.cpus, int) and self.workers is None:
            self.workers = self.cpus
        return self


def _init_worker(paths: list[str], settings_dump: dict[str, Any] | None) -> None:
    # Ctrl-C goes to the driver, which shuts the pool down; workers must not die half-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    if settings_dump is not None:
        from flowdapt.settings import Settings, set_settings

        settings = Settings.model_validate(settings_dump)
        set_settings(settings)
        try:
            from flowdapt.plugins import get_plugin_system

            get_plugin_system(settings, quiet=True).hook.flowdapt_worker_setup(executor="local", settings=settings)
        except Exception as exc:  # a plugin's setup failing must not kill the pool
            print(f"flowdapt: worker setup hook failed: {exc}", file=sys.stderr)


def _ready() -> int:
    return os.getpid()


@contextlib.contextmanager
def _main_module_hidden():
    """Start worker processes without re-running the user's ``__main__`` script in them.

    Under forkserver/spawn, multiprocessing re-imports the main script in each worker, so a script
    without an ``if __name__ == "__main__"`` guard would run itself again. Stage callables travel
    by value (cloudpickle), so workers never need the main module.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None or not hasattr(main, "__file__"):
        yield
        return
    path = main.__file__
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _spawn_all(pool: cf.ProcessPoolExecutor, count: int) -> None:
    """Start every worker of the pool now (and wait until each has run its initializer)."""
    with _main_module_hidden():
        futures = [pool.submit(_ready) for _ in range(count * 2)]
    cf.wait(futures)
    for future in futures:
        future.result()


class LocalExecutor(Executor):
    name = "local"

    def __init__(
        self,
        mode: Mode = "process",
        workers: int | None = None,
        *,
        start_method: str | None = None,
        settings=None,
        use_processes: bool | None = None,
    ):
        super().__init__()
        if use_processes is not None:
            mode = "process" if use_processes else "thread"
        self.mode: Mode = mode
        self._workers = workers or os.cpu_count() or 1
        self.start_method = start_method or ("forkserver" if sys.platform == "linux" else "spawn")
        self.settings = settings
        self._pool: cf.Executor | None = None
        self._lock = threading.Lock()
        self._futures: dict[str, set[cf.Future]] = {}

    @property
    def ships_pickles(self) -> bool:  # type: ignore[override]
        return self.mode == "process"

    @property
    def workers(self) -> int:
        return 1 if self.mode == "inline" else self._workers

    def _new_pool(self) -> cf.Executor:
        if self.mode == "thread":
            return cf.ThreadPoolExecutor(self._workers, thread_name_prefix="flowdapt-worker")
        ctx = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            ctx.set_forkserver_preload(["flowdapt.engine.worker", "flowdapt.builtin.local_executor"])
        paths = [p for p in sys.path if p]
        dump = self.settings.model_dump(mode="json") if self.settings is not None else None
        return cf.ProcessPoolExecutor(self._workers, mp_context=ctx, initializer=_init_worker, initargs=(paths, dump))

    async def start(self) -> None:
        if self.running:
            return
        if self.mode != "inline":
            self._pool = self._new_pool()
            if self.mode == "process":
                # Start every worker now, so the first run does not pay for process start-up.
                pool = self._pool
                await asyncio.get_running_loop().run_in_executor(None, _spawn_all, pool, self._workers)
        await super().start()

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, lambda: pool.shutdown(wait=True, cancel_futures=True))
        await super().stop()

    def _ensure_pool(self) -> cf.Executor:
        with self._lock:
            if self._pool is None:
                self._pool = self._new_pool()
                if isinstance(self._pool, cf.ProcessPoolExecutor):
                    _spawn_all(self._pool, self._workers)
            return self._pool

    async def submit(self, task: Task) -> TaskResult:
        if self.mode == "inline":
            return run_task(task)
        pool = self._ensure_pool()
        try:
            future = pool.submit(run_task, task)
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            future = self._ensure_pool().submit(run_task, task)
        futures = self._futures.setdefault(task.run_uid, set())
        futures.add(future)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool as exc:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            return _crashed(task, f"a worker process died while running this stage ({exc})")
        except cf.CancelledError:
            raise asyncio.CancelledError() from None
        except Exception as exc:  # e.g. the task or its result could not be pickled
            return _crashed(task, f"{type(exc).__name__}: {exc}", type(exc).__name__)
        finally:
            futures.discard(future)
            if not futures:
                self._futures.pop(task.run_uid, None)

    async def cancel(self, run_uid: str) -> None:
        for future in list(self._futures.get(run_uid, ())):
            future.cancel()

    def environment_info(self) -> dict[str, Any]:
        return {
            "executor": self.name,
            "mode": self.mode,
            "workers": self.workers,
            "nodes": 1,
            "cpus": os.cpu_count(),
        }


def _crashed(task: Task, message: str, exc_type: str = WORKER_CRASHED) -> TaskResult:
    return TaskResult([], [Failure(task.start, exc_type, message, "")])


@hookimpl
def flowdapt_register_executors(register):
    def factory(options: LocalExecutorOptions, settings=None) -> LocalExecutor:
        return LocalExecutor(options.mode, options.workers, start_method=options.start_method, settings=settings)

    register("local", factory, LocalExecutorOptions)
