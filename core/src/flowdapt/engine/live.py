"""What a running task tells its run's driver while it runs: that it began, how far a map chunk
has got, and what it has printed and logged so far (:mod:`flowdapt.engine.logs` records).

Without this the driver learns about a task only when it ends: a stage whose task waits for a
busy worker would look as if it ran, the wait counted in its duration, and a map chunk of slow
items would sit at 0 done until the whole chunk ended.

How it works, and why it costs the run path almost nothing:

* :func:`track` registers a :class:`Tracker` for a task where there is a way to the driver: a
  worker process's transport (:func:`set_live_transport`; the Local process pool sends over the
  worker's pipe) or, in the driver's own process (threads), the run's registered sink
  (:func:`register_live_sink`). Elsewhere (inline, Ray and Dask workers on other processes) there
  is none, and what the task did comes with its result only.
* The task itself only stores the index of the item it is running (one attribute per item) and
  keeps its failures in a list the tracker can see. One shipping thread per process looks at the
  trackers every :data:`LIVE_INTERVAL` seconds and sends, per task, one message with what changed
  since its last: the time the task began (once), the chunk's items done and failed, and the
  log records piled up. A task that has not said it began yet is looked at every
  :data:`BEGAN_INTERVAL` seconds; a task shorter than that sends nothing: its result says it all.
* A message is ``(began, progress, records)``: ``began`` the worker's ``time.time()`` when the
  task began, or None once said; ``progress`` ``(chunk start, items done, items failed)`` or None;
  ``records`` a list of log record tuples or None. On the driver it goes to the run's sink on the
  run's event loop (:func:`deliver_live`); the :class:`~flowdapt.engine.runner.RunRecorder` turns
  it into stage state, progress and stored log lines.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import Any

#: Seconds between ships of a running task's progress and log records.
LIVE_INTERVAL = 0.5
#: A task running this long says that it began at the next tick of this period, sooner than
#: its first progress (a run shows ``running`` within this of its work beginning).
BEGAN_INTERVAL = 0.1

#: ``send(stage, message)`` for one task; see the module docstring for ``message``.
Send = Callable[[str, tuple], None]


class Tracker:
    """One running task, as the shipping thread sees it."""

    __slots__ = (
        "send", "stage", "start", "began", "item", "failures", "capture", "records", "announced", "sent", "lock",
    )

    def __init__(self, send: Send, stage: str, start: int, capture: Any, began: float, records: bool = True) -> None:
        self.send: Send | None = send
        self.stage = stage
        #: Index of the chunk's first item in the whole list (0 for a plain call).
        self.start = start
        #: When the task began (``time.time()``), as its result also says.
        self.began = began
        #: The item being run (index in the whole list), set by the task's map loop; with a log
        #: capture the loop sets the capture's ``item`` instead, and the tracker reads that.
        self.item: int | None = None
        #: The task's failures so far (the map loop's own list).
        self.failures: list | None = None
        #: The task's log capture (engine.logs.Capture), whose records leave with each ship
        #: when ``records`` (a route may carry only the start and progress; the records then
        #: come with the result).
        self.capture = capture
        self.records = records
        self.announced = False
        self.sent = (0, 0)
        #: Keeps a ship and the task's end apart, so records and progress arrive in order and
        #: nothing is sent for a task that has ended.
        self.lock = threading.Lock()

    def ship(self) -> None:
        """Send what changed since the last ship (from the shipping thread)."""
        with self.lock:
            send = self.send
            if send is None:
                return
            began = None if self.announced else self.began
            capture = self.capture
            item = capture.item if capture is not None else self.item
            progress = None
            if item is not None:
                failures = self.failures
                counts = (item - self.start, len(failures) if failures is not None else 0)
                if counts != self.sent:
                    self.sent = counts
                    progress = (self.start, *counts)
            records = capture.take() if capture is not None and self.records else None
            if began is None and progress is None and not records:
                return
            self.announced = True
            send(self.stage, (began, progress, records or None))


def track(run_uid: str | None, stage: str, start: int, capture: Any, began: float) -> Tracker | None:
    """A tracker for a task that began at ``began``, or None where there is no way to the driver."""
    if run_uid is None:
        return None
    route = _route(run_uid)
    if route is None:
        return None
    tracker = Tracker(route[0], stage, start, capture, began, route[1])
    _ensure_shipper()
    with _trackers_lock:
        _trackers.add(tracker)
    return tracker


def untrack(tracker: Tracker) -> None:
    """The task ended: a ship in progress finishes first, then nothing more is sent for it."""
    with tracker.lock:
        tracker.send = None
    with _trackers_lock:
        _trackers.discard(tracker)


# -- the ways to the driver --------------------------------------------------------------------

_trackers: set[Tracker] = set()
_trackers_lock = threading.Lock()
_shipper_pid: int | None = None
#: In a worker process: ``transport(run_uid, stage, message)`` sends a message to the driver,
#: and whether it carries log records.
_transport: Callable[[str, str, tuple], None] | None = None
_transport_records = True
#: In the driver's process: run uid -> (event loop, ``sink(stage, message)``) of each active run.
_driver_sinks: dict[str, tuple[Any, Send]] = {}


def set_live_transport(transport: Callable[[str, str, tuple], None] | None, *, records: bool = True) -> None:
    """A worker process's way to send a running task's messages to the driver, which hands them
    to :func:`deliver_live` (the Local process pool sends over the worker's pipe; Dask workers
    through the scheduler's events). ``records=False``: the way is for small messages only, so
    log records stay with the task and come with its result."""
    global _transport, _transport_records
    _transport = transport
    _transport_records = records


def register_live_sink(run_uid: str, loop: Any, sink: Send) -> None:
    """Messages of the run's running tasks go to ``sink(stage, message)``, called on ``loop``."""
    _driver_sinks[run_uid] = (loop, sink)


def unregister_live_sink(run_uid: str) -> None:
    _driver_sinks.pop(run_uid, None)


def deliver_live(run_uid: str, stage: str, message: tuple) -> None:
    """Hand a message that arrived from a worker to the run's sink, on its loop (any thread)."""
    entry = _driver_sinks.get(run_uid)
    if entry is None:
        return  # the run ended; what its tasks did came with their results
    loop, sink = entry
    try:
        loop.call_soon_threadsafe(sink, stage, message)
    except RuntimeError:  # the loop is closed
        pass


def _route(run_uid: str) -> tuple[Send, bool] | None:
    """How this task's messages reach the driver, and whether they carry log records."""
    transport = _transport
    if transport is not None:
        return (lambda stage, message: transport(run_uid, stage, message)), _transport_records
    entry = _driver_sinks.get(run_uid)
    if entry is None:
        return None
    try:
        if asyncio.get_running_loop() is entry[0]:
            # Inline: the task blocks the loop that would deliver, and its result is handed over
            # before anything queued for that loop; the result says it all.
            return None
    except RuntimeError:
        pass
    return (lambda stage, message: deliver_live(run_uid, stage, message)), True


def _ensure_shipper() -> None:
    global _shipper_pid
    pid = os.getpid()
    if _shipper_pid == pid:
        return
    with _trackers_lock:
        if _shipper_pid == pid:
            return
        _trackers.clear()  # a forked child's copy of its parent's
        threading.Thread(target=_ship_loop, name="flowdapt-live-shipper", daemon=True).start()
        _shipper_pid = pid


def _ship_loop() -> None:
    ticks_per_ship = max(1, round(LIVE_INTERVAL / BEGAN_INTERVAL))
    tick = 0
    while True:
        time.sleep(BEGAN_INTERVAL)
        tick += 1
        every = tick % ticks_per_ship == 0
        with _trackers_lock:
            trackers = [t for t in _trackers if every or not t.announced]
        for tracker in trackers:
            try:
                tracker.ship()
            except Exception:  # noqa: BLE001 - a broken pipe or closed loop: the result still carries the rest
                pass
