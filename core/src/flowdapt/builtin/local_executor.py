"""The Local executor: a pool of worker processes (default), threads, or inline in the caller.

``inline`` runs stages in the calling thread, so breakpoints and debuggers work. Map items go to
workers in chunks; a stage target is imported once per worker process (see engine.worker).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import dataclasses
import multiprocessing
import os
import signal
import sys
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowdapt.builtin.process_pool import ProcessPool, WorkerDied
from flowdapt.engine.executor import WORKER_CRASHED, Executor, node_record
from flowdapt.engine.fork_server import forkserver_context
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


#: Native thread pools a worker process sizes from the environment (OpenMP, OpenBLAS, MKL).
NATIVE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_native_threads() -> None:
    """One native (BLAS/OpenMP) thread per worker process, unless the environment chose.

    The pool already runs one worker per core; a numpy matmul that also starts a thread per core
    in every worker oversubscribes the machine (3,000 small ridge fits took 20x longer on a busy
    2-core machine). Ray does the same for its workers. Set before any task imports numpy (the
    forkserver preloads only Flowdapt's own modules); any of these variables set by the user wins.
    """
    if not any(name in os.environ for name in NATIVE_THREAD_ENV):
        for name in NATIVE_THREAD_ENV:
            os.environ[name] = "1"


def _init_worker(paths: list[str], settings_dump: dict[str, Any] | None) -> None:
    # Ctrl-C goes to the driver, which shuts the pool down; workers must not die half-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_native_threads()
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


def _run_with_context(task: Task, context: bytes | None) -> TaskResult:
    task.context = context
    return run_task(task)


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
        self._processes: ProcessPool | None = None
        self._threads: cf.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._thread_futures: dict[str, set[cf.Future]] = {}

    @property
    def ships_pickles(self) -> bool:  # type: ignore[override]
        return self.mode == "process"

    @property
    def workers(self) -> int:
        return 1 if self.mode == "inline" else self._workers

    @property
    def runs_in_caller(self) -> bool:  # type: ignore[override]
        return self.mode == "inline"

    @property
    def reports_start(self) -> bool:  # type: ignore[override]
        """Worker processes tell over their pipe, threads through the run's sink, when a task that
        waited for a worker begins and how far it got (engine.live); inline tasks never wait."""
        return self.mode != "inline"

    def _new_process_pool(self) -> ProcessPool:
        ctx = forkserver_context() if self.start_method == "forkserver" else multiprocessing.get_context(self.start_method)
        paths = [p for p in sys.path if p]
        dump = self.settings.model_dump(mode="json") if self.settings is not None else None
        return ProcessPool(self._workers, ctx, _init_worker, (paths, dump), _run_with_context)

    async def start(self) -> None:
        if self.running:
            return
        if self.mode == "thread":
            self._threads = cf.ThreadPoolExecutor(self._workers, thread_name_prefix="flowdapt-worker")
        elif self.mode == "process":
            # Start every worker now, so the first run does not pay for process start-up.
            pool = self._new_process_pool()
            await asyncio.get_running_loop().run_in_executor(None, pool.start)
            self._processes = pool
        await super().start()

    async def stop(self) -> None:
        processes, self._processes = self._processes, None
        threads, self._threads = self._threads, None
        loop = asyncio.get_running_loop()
        if processes is not None:
            await loop.run_in_executor(None, processes.close)
        if threads is not None:
            await loop.run_in_executor(None, lambda: threads.shutdown(wait=True, cancel_futures=True))
        await super().stop()

    async def submit(self, task: Task) -> TaskResult:
        if self.mode == "inline":
            return run_task(task)
        if not self.running:
            await self.start()
        if self.mode == "thread":
            return await self._submit_thread(task)
        try:
            # The run context travels once per worker and run (the pool tracks what each worker has).
            bare = dataclasses.replace(task, context=None)
            return await self._processes.submit(bare, task.run_uid, task.context)
        except WorkerDied as exc:
            return _crashed(task, str(exc))
        except RuntimeError as exc:  # the task or its result could not be pickled, or the pool closed
            return _crashed(task, str(exc), "RuntimeError")

    async def _submit_thread(self, task: Task) -> TaskResult:
        future = self._threads.submit(run_task, task)
        futures = self._thread_futures.setdefault(task.run_uid, set())
        futures.add(future)
        try:
            return await asyncio.wrap_future(future)
        except cf.CancelledError:
            raise asyncio.CancelledError() from None
        finally:
            futures.discard(future)
            if not futures:
                self._thread_futures.pop(task.run_uid, None)

    async def reload_code(self) -> None:
        """New worker processes for new tasks (they import the installed code afresh, with the
        current ``sys.path``); the old processes finish the tasks they have, then exit."""
        await super().reload_code()
        if self.mode != "process" or not self.running or self._processes is None:
            return
        pool = self._new_process_pool()
        await asyncio.get_running_loop().run_in_executor(None, pool.start)
        old, self._processes = self._processes, pool
        threading.Thread(target=old.close_when_idle, name="flowdapt-retire-pool", daemon=True).start()

    async def cancel(self, run_uid: str) -> None:
        """Queued tasks of the run are dropped; in process mode its running tasks are killed
        (their worker processes restart). Threads cannot be interrupted: they run to the end."""
        if self._processes is not None:
            self._processes.cancel(run_uid)
        for future in list(self._thread_futures.get(run_uid, ())):
            future.cancel()

    def environment_info(self) -> dict[str, Any]:
        cpus = os.cpu_count() or 1
        return {
            "executor": self.name,
            "mode": self.mode,
            "workers": self.workers,
            "nodes": [_this_node(cpus)],
            "cpus": cpus,
        }


def _this_node(cpus: int) -> dict[str, Any]:
    import socket

    return node_record(socket.gethostname(), "127.0.0.1", {"CPU": float(cpus)})


def _crashed(task: Task, message: str, exc_type: str = WORKER_CRASHED) -> TaskResult:
    return TaskResult([], [Failure(task.start, exc_type, message, "")])


@hookimpl
def flowdapt_register_executors(register):
    def factory(options: LocalExecutorOptions, settings=None) -> LocalExecutor:
        return LocalExecutor(options.mode, options.workers, start_method=options.start_method, settings=settings)

    register("local", factory, LocalExecutorOptions)
