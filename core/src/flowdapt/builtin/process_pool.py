"""A process pool built for stage tasks: crash isolation, per-run cancellation, any event loop.

Unlike ``concurrent.futures.ProcessPoolExecutor``, a worker that dies fails only the task it was
running (its slot is restarted), and the tasks of one run can be stopped by killing only the
workers running them. One I/O thread multiplexes the workers' pipes and resolves each task's
asyncio future on the loop that submitted it, so the pool works from any event loop or thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import connection
from typing import Any

from flowdapt.engine.fork_server import main_module_hidden

log = logging.getLogger(__name__)

READY = b"\x00ready"
#: A running task's news (engine.live: it began, its progress, its log records), sent by the
#: worker before its result.
LIVE = b"\x00live"
START_TIMEOUT = 120.0
#: Shared blobs (run contexts) a worker keeps; the driver mirrors this FIFO per worker, so each
#: blob crosses the pipe once per worker and run instead of with every task.
SHARED_CAPACITY = 16


class WorkerDied(Exception):
    """The worker process running a task exited before returning its result."""


@dataclass
class _Job:
    payload: bytes
    run_uid: str
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    shared: bytes | None = None


class _Slot:
    def __init__(self, index: int):
        self.index = index
        self.process: Any = None
        self.conn: connection.Connection | None = None
        self.job: _Job | None = None
        self.ready = False
        self.seen: OrderedDict[str, None] = OrderedDict()

    def message(self, job: _Job) -> bytes:
        """The bytes for this worker: the job's shared blob only if the worker lacks it."""
        blob = None
        if job.shared is not None and job.run_uid not in self.seen:
            blob = job.shared
            self.seen[job.run_uid] = None
            while len(self.seen) > SHARED_CAPACITY:
                self.seen.popitem(last=False)
        return pickle.dumps((job.run_uid, blob, job.payload), protocol=pickle.HIGHEST_PROTOCOL)


def _worker_main(conn: connection.Connection, init: Callable[..., None], init_args: tuple, handler: Callable[[Any, Any], Any]) -> None:
    from flowdapt.engine.live import set_live_transport

    shared: OrderedDict[str, bytes] = OrderedDict()
    send_lock = threading.Lock()  # the live shipping thread sends too

    def send_live(run_uid: str, stage: str, message: tuple) -> None:
        data = LIVE + pickle.dumps((run_uid, stage, message), protocol=pickle.HIGHEST_PROTOCOL)
        with send_lock:
            conn.send_bytes(data)

    try:
        init(*init_args)
        set_live_transport(send_live)
        conn.send_bytes(READY)
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                return
            try:
                key, blob, payload = pickle.loads(data)
                if blob is not None:
                    shared[key] = blob
                    while len(shared) > SHARED_CAPACITY:
                        shared.popitem(last=False)
                result = handler(pickle.loads(payload), shared.get(key))
                out = pickle.dumps((True, result), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as exc:  # noqa: BLE001 - reported to the driver, the worker lives on
                out = pickle.dumps((False, (type(exc).__name__, str(exc))), protocol=pickle.HIGHEST_PROTOCOL)
            with send_lock:
                conn.send_bytes(out)
    except KeyboardInterrupt:
        return
    except (BrokenPipeError, ConnectionResetError, EOFError):
        # The driver went away (it exited, or was killed): nobody is left to tell; exit quietly
        # rather than print a traceback into the user's terminal.
        return


class ProcessPool:
    """``size`` worker processes running ``handler(task, shared)``; ``init(*init_args)`` runs once in each."""

    def __init__(self, size: int, mp_context, init: Callable[..., None], init_args: tuple, handler: Callable[[Any], Any]):
        self.size = size
        self._ctx = mp_context
        self._init = init
        self._init_args = init_args
        self._handler = handler
        self._slots = [_Slot(i) for i in range(size)]
        self._queue: deque[_Job] = deque()
        self._lock = threading.RLock()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._started = threading.Event()
        self._start_error: str | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start every worker and wait until each has run ``init`` (blocking)."""
        with self._lock:
            for slot in self._slots:
                self._spawn(slot)
        self._thread = threading.Thread(target=self._io_loop, name="flowdapt-process-pool", daemon=True)
        self._thread.start()
        if not self._started.wait(START_TIMEOUT):
            self.close()
            raise RuntimeError(f"worker processes did not start within {START_TIMEOUT:.0f}s")
        if self._start_error:
            self.close()
            raise RuntimeError(self._start_error)

    def _spawn(self, slot: _Slot) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker_main,
            args=(child, self._init, self._init_args, self._handler),
            name=f"flowdapt-worker-{slot.index}",
            daemon=True,
        )
        with main_module_hidden():
            process.start()
        child.close()  # so the parent sees EOF when the worker dies
        slot.process, slot.conn, slot.job, slot.ready = process, parent, None, False
        slot.seen.clear()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            jobs = list(self._queue)
            self._queue.clear()
            for slot in self._slots:
                if slot.job is not None:
                    jobs.append(slot.job)
                    slot.job = None
        for job in jobs:
            _resolve(job, cancelled=True)
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        for slot in self._slots:
            if slot.conn is not None:
                with contextlib.suppress(OSError):
                    slot.conn.close()
            if slot.process is not None:
                slot.process.join(timeout=2)
                if slot.process.is_alive():
                    slot.process.kill()
                    slot.process.join(timeout=2)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def busy(self) -> bool:
        """Tasks are queued or running."""
        with self._lock:
            return bool(self._queue) or any(slot.job is not None for slot in self._slots)

    def close_when_idle(self, limit: float = 24 * 3600.0, poll: float = 0.2) -> None:
        """Block until the tasks already given have finished (or ``limit`` seconds), then close."""
        deadline = time.monotonic() + limit
        while self.busy and time.monotonic() < deadline:
            time.sleep(poll)
        self.close()

    # -- submitting ----------------------------------------------------------------------

    def submit(self, task: Any, run_uid: str, shared: bytes | None = None) -> asyncio.Future:
        """Queue a task; returns a future (on the running loop) with ``handler(task, shared)``.

        ``shared`` (the run context) is sent to each worker once per ``run_uid``, not per task.
        """
        loop = asyncio.get_running_loop()
        job = _Job(pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL), run_uid, loop.create_future(), loop, shared)
        with self._lock:
            if self._closing:
                raise RuntimeError("the process pool is closed")
            self._queue.append(job)
            self._dispatch()
        return job.future

    def cancel(self, run_uid: str) -> int:
        """Drop the run's queued tasks and kill the workers running its tasks; returns how many were killed."""
        killed = 0
        with self._lock:
            kept = deque()
            for job in self._queue:
                if job.run_uid == run_uid:
                    _resolve(job, cancelled=True)
                else:
                    kept.append(job)
            self._queue = kept
            for slot in self._slots:
                if slot.job is not None and slot.job.run_uid == run_uid and slot.process is not None:
                    _resolve(slot.job, cancelled=True)
                    # Not ready: a result the worker sent before dying must not free it for
                    # another run's task, which would then die with it.
                    slot.ready = False
                    slot.process.kill()
                    killed += 1
        return killed

    def _dispatch(self) -> None:
        # Called with the lock held: hand queued jobs to idle, ready workers.
        for slot in self._slots:
            if not self._queue:
                return
            if slot.ready and slot.job is None and slot.conn is not None:
                job = self._queue.popleft()
                while job.future.cancelled() and self._queue:
                    job = self._queue.popleft()
                if job.future.cancelled():
                    return
                slot.job = job
                try:
                    slot.conn.send_bytes(slot.message(job))
                except OSError:
                    pass  # the worker died; the I/O thread sees EOF and fails the job

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # -- the I/O thread ------------------------------------------------------------------

    def _io_loop(self) -> None:
        while True:
            with self._lock:
                if self._closing:
                    return
                conns = {slot.conn: slot for slot in self._slots if slot.conn is not None}
            try:
                ready = connection.wait([*conns, self._wake_r])
            except OSError:
                if self._closing:
                    return
                continue
            for item in ready:
                if item == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                    continue
                self._on_readable(conns[item])

    def _on_readable(self, slot: _Slot) -> None:
        conn = slot.conn
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            self._on_death(slot)
            return
        if data[: len(LIVE)] == LIVE:
            from flowdapt.engine.live import deliver_live

            try:
                deliver_live(*pickle.loads(data[len(LIVE) :]))
            except Exception:  # a bad message must not stop the pool
                log.exception("could not read a running task's news from worker %d", slot.index)
            return
        with self._lock:
            if data == READY:
                slot.ready = True
                if all(s.ready for s in self._slots):
                    self._started.set()
                self._dispatch()
                return
            job, slot.job = slot.job, None
            self._dispatch()
        if job is not None:
            ok, value = pickle.loads(data)
            if ok:
                _resolve(job, value=value)
            else:
                _resolve(job, error=RuntimeError(f"{value[0]}: {value[1]}"))

    def _on_death(self, slot: _Slot) -> None:
        with self._lock:
            process, job = slot.process, slot.job
            slot.job = None
            with contextlib.suppress(OSError):
                slot.conn.close()
            slot.conn = None
            if process is not None:
                process.join(timeout=5)
            code = process.exitcode if process is not None else None
            if not slot.ready and not self._started.is_set():
                self._start_error = f"a worker process exited during start-up (exit code {code}); see its output above"
                self._started.set()
                return
            if job is not None:
                _resolve(job, error=WorkerDied(f"a worker process died while running this stage (exit code {code})"))
            if self._closing:
                return
            try:
                self._spawn(slot)
            except Exception as exc:  # leave the slot empty; the remaining workers carry on
                log.error("could not restart worker %d: %s", slot.index, exc)


def _resolve(job: _Job, *, value: Any = None, error: BaseException | None = None, cancelled: bool = False) -> None:
    def apply() -> None:
        if job.future.done():
            return
        if cancelled:
            job.future.cancel()
        elif error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(value)

    try:
        job.loop.call_soon_threadsafe(apply)
    except RuntimeError:  # the submitting loop is closed; nobody is waiting any more
        pass
