"""Stage output capture: what stage code prints and logs, per task, where the task runs.

:func:`start_capture` begins capturing for one task (one stage call or one map chunk) in the
calling thread's context; until :meth:`Capture.finish`, that context's writes to ``sys.stdout``
and ``sys.stderr`` and its ``logging`` records at or above the run's level (``logs.level``) are
kept as records in the task's :class:`Capture`, not written to the process's streams. The
records travel back to the driver with the task's result (one list per task, never one message
per line), where the run's log sink stores them (:class:`RunLogRecord`); where there is a way to
the driver while the task runs (a Local worker process's pipe, or the driver's own process for
threads), what has piled up also leaves every ``LIVE_INTERVAL`` seconds, in batches
(:mod:`flowdapt.engine.live`).

How it stays cheap and per task:

* ``sys.stdout``/``sys.stderr`` are replaced once per process by a :class:`_Stream` that looks up
  the active capture in a :class:`~contextvars.ContextVar`; with none it writes to the stream it
  replaced. Two threads (thread mode, Dask workers) or two asyncio tasks (inline mode) each
  capture into their own task's records, and a write outside any stage goes where it always went.
* One handler on the root logger does the same for ``logging`` records (the original's
  ``flowdapt.lib.logger.get_logger`` loggers are ``logging`` loggers, so they land here too).
  The root logger's level is lowered to the capture level once; the handlers already on it get a
  filter that passes what the old levels passed, so the process's own log output does not change.
  Records still reach those handlers too (a test's ``caplog``, the server's terminal).
* A record is a tuple ``(time, level, stream, logger, item, message)``; a line is one record
  (partial writes are joined until the newline), so lines of concurrent workers never mix.
* The records of one task are bounded (``logs.max_bytes_per_run``): past it the oldest are
  dropped and a marker record says how many, so a stage printing a gigabyte holds at most the
  bound in the worker. A line longer than ``MAX_LINE_CHARS`` is cut.

Not captured: output written to the file descriptors directly (C extensions, subprocesses) and
output of threads the stage starts itself (they do not inherit the context), which go to the
worker's own streams as before.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

STDOUT = "stdout"
STDERR = "stderr"
LOG = "log"
#: Records Flowdapt adds itself (drop markers).
SYSTEM = "flowdapt"
STREAMS = (STDOUT, STDERR, LOG, SYSTEM)

#: The level a print to stdout (stderr) is stored with, for level filters.
STDOUT_LEVEL = logging.INFO
STDERR_LEVEL = logging.WARNING

#: Bytes a record is counted as beyond its message and logger name (for the size bounds).
RECORD_OVERHEAD = 64
#: A longer line is cut to this many characters (with a note of how much was cut).
MAX_LINE_CHARS = 64 * 1024

LEVEL_NAMES = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


def level_number(value: str | int) -> int:
    """``"info"``, ``"WARNING"``, ``20`` -> the logging level number; ValueError for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().upper()
    if text.isdigit():
        return int(text)
    if text == "WARN":
        text = "WARNING"
    number = logging.getLevelName(text)
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {value!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return number


def level_name(level: int) -> str:
    return LEVEL_NAMES.get(level) or logging.getLevelName(level)


@dataclass(frozen=True, slots=True)
class CaptureOptions:
    """What a run captures (from the ``logs`` settings); travels to workers in the run context."""

    level: int = logging.INFO
    max_bytes: int = 10 * 1024 * 1024
    max_line: int = MAX_LINE_CHARS


def clean_text(text: str) -> str:
    """Text that encodes as UTF-8: lone surrogates (undecodable bytes) become U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:  # undecodable bytes carried as surrogate escapes: one U+FFFD each
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@dataclass(slots=True)
class RunLogRecord:
    """One stored line of a run's log."""

    seq: int  # increasing per run; 0 is the marker of records dropped by the run's bound
    time: float  # seconds since the epoch (UTC)
    stage: str | None
    item: int | None  # the map item index, when the line came from one
    stream: str  # stdout, stderr, log or flowdapt
    level: int
    logger: str  # the logger's name for log records, "" for prints
    message: str

    @property
    def size(self) -> int:
        return len(self.message) + len(self.logger) + RECORD_OVERHEAD

    def to_json(self) -> dict[str, Any]:
        """The API's shape: naive UTC ISO time, level by name."""
        return {
            "seq": self.seq,
            "time": datetime.fromtimestamp(self.time, UTC).replace(tzinfo=None).isoformat(),
            "stage": self.stage,
            "item": self.item,
            "stream": self.stream,
            "level": level_name(self.level),
            "logger": self.logger,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunLogRecord:
        stamp = datetime.fromisoformat(data["time"])
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return cls(
            int(data["seq"]),
            stamp.timestamp(),
            data.get("stage"),
            data.get("item"),
            data.get("stream", STDOUT),
            level_number(data.get("level", "INFO")),
            data.get("logger", ""),
            data.get("message", ""),
        )


def format_record(record: RunLogRecord, *, with_time: bool = False) -> str:
    """``stage[item] message`` (stderr and log records with their level and logger)."""
    where = record.stage or "-"
    if record.item is not None:
        where = f"{where}[{record.item}]"
    text = record.message
    if record.stream == LOG:
        text = f"{level_name(record.level)} {record.logger}: {text}" if record.logger else f"{level_name(record.level)} {text}"
    elif record.stream == STDERR:
        text = f"(stderr) {text}"
    elif record.stream == SYSTEM:
        text = f"[flowdapt] {text}"
    if with_time:
        stamp = datetime.fromtimestamp(record.time, UTC).strftime("%H:%M:%S.%f")[:-3]
        return f"{stamp} {where} | {text}"
    return f"{where} | {text}"


# -- the worker side -------------------------------------------------------------------------

_active: ContextVar[Capture | None] = ContextVar("flowdapt_log_capture", default=None)
#: The records' clock (seconds since the epoch), looked up once per line as a module global.
_wall_clock = time.time
_STREAM_NAMES = (STDOUT, STDERR)
_STREAM_LEVELS = (STDOUT_LEVEL, STDERR_LEVEL)


class Capture:
    """The records of one task; see the module docstring."""

    __slots__ = (
        "level", "max_bytes", "max_line", "records", "size", "dropped", "dropped_bytes", "item", "_partial",
        "_pending", "shipped",
    )

    def __init__(self, options: CaptureOptions):
        self.level = options.level
        self.max_bytes = options.max_bytes
        self.max_line = options.max_line
        self.records: deque[tuple] = deque()
        self.size = 0
        self.dropped = 0
        self.dropped_bytes = 0
        #: The map item being run (index in the whole list), None for a plain call.
        self.item: int | None = None
        #: Per stream: the parts of the line not ended yet, and their length.
        self._partial: tuple[list[str], list[str]] = ([], [])
        self._pending = [0, 0]
        #: Bytes of records taken while the task runs (:meth:`take`, by engine.live's shipping
        #: thread only, under its tracker's lock).
        self.shipped = 0

    def add(self, level: int, stream: str, logger: str, message: str, when: float | None = None) -> None:
        # Once per captured line: attributes are read once, the clock is a module global.
        length = len(message)
        if length > self.max_line:
            cut = length - self.max_line
            message = f"{message[: self.max_line]} [... {cut} more characters cut]"
            length = len(message)
        self.records.append((when or _wall_clock(), level, stream, logger, self.item, message))
        size = self.size + length + len(logger) + RECORD_OVERHEAD
        self.size = size
        if size - self.shipped > self.max_bytes:
            self._trim()

    def _trim(self) -> None:
        records = self.records
        while self.size - self.shipped > self.max_bytes and records:
            try:
                old = records.popleft()
            except IndexError:  # shipped meanwhile
                return
            size = len(old[5]) + len(old[3]) + RECORD_OVERHEAD
            self.size -= size
            self.dropped += 1
            self.dropped_bytes += size

    def write(self, index: int, text: str) -> None:
        """A write to stdout (0) or stderr (1): complete lines become records."""
        parts = self._partial[index]
        if text == "\n":  # print()'s own end (_Stream.write has the same fast path)
            if parts:
                line = parts[0] if len(parts) == 1 else "".join(parts)
                parts.clear()
                self._pending[index] = 0
            else:
                line = ""
            self.add(_STREAM_LEVELS[index], _STREAM_NAMES[index], "", line)
            return
        if "\n" not in text:
            parts.append(text)
            pending = self._pending[index] + len(text)
            self._pending[index] = pending
            if pending > self.max_line:
                line = "".join(parts)
                parts.clear()
                self._pending[index] = 0
                self.add(_STREAM_LEVELS[index], _STREAM_NAMES[index], "", line)
            return
        if parts:
            parts.append(text)
            text = "".join(parts)
            parts.clear()
            self._pending[index] = 0
        if len(text) > 2 * self.max_bytes:
            # Only the end can be kept: count the rest as dropped without splitting it.
            cut = text.rfind("\n", 0, len(text) - self.max_bytes) + 1
            self.dropped += text.count("\n", 0, cut)
            self.dropped_bytes += cut
            text = text[cut:]
        lines = text.split("\n")
        rest = lines.pop()
        if rest:
            parts.append(rest)
            self._pending[index] = len(rest)
        level, stream, now = _STREAM_LEVELS[index], _STREAM_NAMES[index], _wall_clock()
        for line in lines:
            self.add(level, stream, "", line, now)

    def take(self) -> list[tuple] | None:
        """The records so far, taken out (engine.live ships them while the task runs), at most
        the bound in all: past it the task keeps only its newest records, sent with its result,
        so a stage printing a gigabyte sends at most twice the bound, not the gigabyte."""
        records = self.records
        budget = self.max_bytes - self.shipped
        if not records or budget <= 0:
            return None
        batch = []
        while records:
            try:
                record = records.popleft()
            except IndexError:
                break
            size = len(record[5]) + len(record[3]) + RECORD_OVERHEAD
            if size > budget:
                records.appendleft(record)
                break
            batch.append(record)
            budget -= size
        self.shipped = self.max_bytes - budget
        return batch or None

    def finish(self) -> list[tuple]:
        """The task's records (a marker first when some were dropped); partial lines included."""
        for index in (0, 1):
            parts = self._partial[index]
            if parts:
                rest = "".join(parts)
                parts.clear()
                self._pending[index] = 0
                self.add(_STREAM_LEVELS[index], _STREAM_NAMES[index], "", rest)
        records = list(self.records)
        if self.dropped:
            first = records[0][0] if records else time.time()
            records.insert(
                0,
                (
                    first,
                    logging.WARNING,
                    SYSTEM,
                    "",
                    None,
                    f"{self.dropped} earlier log line(s) of this task ({self.dropped_bytes} bytes) were dropped: "
                    f"over logs.max_bytes_per_run ({self.max_bytes} bytes)",
                ),
            )
        self.records = deque()
        return records


class _Stream:
    """Stands in for ``sys.stdout``/``sys.stderr``: the active capture's, else the replaced stream's."""

    def __init__(self, index: int, target: Any):
        self._index = index
        self._target = target

    def write(self, text: str) -> int:
        capture = _active.get()
        if capture is None:
            return self._target.write(text)
        if text.__class__ is not str and not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        # print("item", x) is four writes: "item", " ", "x", "\n". Their common cases are done
        # here, one call less each, with Capture.write's exact outcome: a piece without a newline
        # joins the line being built while that stays within max_line (Capture.write ends the
        # line past it), and print()'s "\n" makes the line a record.
        index = self._index
        if text == "\n":
            parts = capture._partial[index]
            if parts:
                line = parts[0] if len(parts) == 1 else "".join(parts)
                parts.clear()
                capture._pending[index] = 0
            else:
                line = ""
            capture.add(_STREAM_LEVELS[index], _STREAM_NAMES[index], "", line)
            return 1
        if "\n" not in text:
            pending = capture._pending
            size = pending[index] + len(text)
            if size <= capture.max_line:
                capture._partial[index].append(text)
                pending[index] = size
                return len(text)
        capture.write(index, text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _active.get() is None:
            flush = getattr(self._target, "flush", None)
            if flush is not None:
                flush()

    @property
    def buffer(self) -> _BinaryStream:
        return _BinaryStream(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class _BinaryStream:
    """``sys.stdout.buffer`` while capturing: bytes are stored decoded, undecodable ones replaced."""

    def __init__(self, text: _Stream):
        self._text = text

    def write(self, data) -> int:
        capture = _active.get()
        if capture is None:
            return self._text._target.buffer.write(data)
        capture.write(self._text._index, bytes(data).decode("utf-8", "replace"))
        return len(data)

    def flush(self) -> None:
        if _active.get() is None:
            self._text._target.buffer.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._text._target.buffer, name)


class _Handler(logging.Handler):
    """On the root logger: records of a capturing context go to its capture."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        #: Records outside a capture at or above this level go to logging.lastResort when the
        #: root logger had no other handler (as they would have without this one).
        self.outside_level = logging.WARNING

    def handle(self, record: logging.LogRecord) -> bool:  # no handler lock: captures are per context
        capture = _active.get()
        if capture is None:
            if record.levelno >= self.outside_level and logging.lastResort is not None:
                root = logging.getLogger()
                if all(h is self for h in root.handlers):
                    logging.lastResort.handle(record)
            return False
        levelno = record.levelno
        if levelno < capture.level:
            return False
        msg = record.msg
        if msg.__class__ is str and not record.args:
            message = msg  # what getMessage() returns, without the call
        else:
            try:
                message = record.getMessage()
            except Exception as exc:  # noqa: BLE001 - a bad format string must not fail the stage
                message = f"{record.msg!r} (could not format with {record.args!r}: {exc})"
        if record.exc_info:
            message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}".rstrip("\n")
        capture.add(levelno, LOG, record.name, message, record.created)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() does the work
        self.handle(record)


class _AsBefore(logging.Filter):
    """On a root handler that was there before the root level was lowered for captures: only
    records the old levels would have passed (the old root level, or a logger's own level)."""

    def __init__(self, root_level: int) -> None:
        super().__init__()
        self.root_level = root_level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.root_level:
            return True
        logger = logging.Logger.manager.loggerDict.get(record.name)
        root = logging.getLogger()
        while isinstance(logger, logging.Logger) and logger is not root:
            if logger.level:
                return record.levelno >= logger.level
            logger = logger.parent
        return False


_install_lock = threading.Lock()
_streams: list[_Stream | None] = [None, None]
_handler: _Handler | None = None
_logging_level: int | None = None


def _install_streams() -> None:
    with _install_lock:
        for index, name in enumerate(("stdout", "stderr")):
            current = getattr(sys, name)
            if current is not _streams[index]:
                if isinstance(current, _Stream):  # another installation's (a reloaded module)
                    current = current._target
                _streams[index] = _Stream(index, current)
                setattr(sys, name, _streams[index])


def _install_logging(level: int) -> None:
    global _handler, _logging_level
    with _install_lock:
        root = logging.getLogger()
        if _handler is None or _handler not in root.handlers:
            _handler = _Handler()
            root.addHandler(_handler)
        if _logging_level is not None and _handler in root.handlers and root.level <= level:
            return
        old = root.level if root.level != logging.NOTSET else 0
        if old > level:
            # The handlers already there get what they got before: a filter lets a record below
            # the old root level through only when its logger's own level would have.
            for handler in root.handlers:
                if handler is _handler:
                    continue
                kept = [f for f in handler.filters if isinstance(f, _AsBefore)]
                if kept:
                    kept[0].root_level = old
                else:
                    handler.addFilter(_AsBefore(old))
            _handler.outside_level = old
            root.setLevel(level)
        _logging_level = level if _logging_level is None else min(level, _logging_level)


def start_capture(options: CaptureOptions) -> tuple[Capture, Any]:
    """Capture this context's output from now on; returns the capture and a token for
    :func:`stop_capture`. (:mod:`flowdapt.engine.live` sends its records while the task runs,
    where there is a way to the driver; elsewhere they come with the result.)"""
    if not isinstance(sys.stdout, _Stream) or sys.stdout is not _streams[0] or sys.stderr is not _streams[1]:
        _install_streams()
    root = logging.root
    if _logging_level is None or root.level > options.level or _handler not in root.handlers:
        _install_logging(options.level)
    capture = Capture(options)
    return capture, _active.set(capture)


def stop_capture(capture: Capture, token: Any) -> list[tuple]:
    """Stop capturing in this context; returns the task's records."""
    _active.reset(token)
    return capture.finish()


# -- the driver side ---------------------------------------------------------------------------


def from_wire(stage: str, records: list[tuple], first_seq: int = 1) -> list[RunLogRecord]:
    """Worker record tuples as :class:`RunLogRecord` objects numbered from ``first_seq``,
    their text made storable (undecodable characters replaced)."""
    # Once per record on the driver (the server's per-line path): names bound locally, and
    # clean_text's ASCII case (nearly every line) without its call.
    record, clean = RunLogRecord, clean_text
    return [
        record(seq, when, stage, item, stream, level, logger, message if message.isascii() else clean(message))
        for seq, (when, level, stream, logger, item, message) in enumerate(records, first_seq)
    ]


def echo_sink(stream: Any = None, *, with_time: bool = False):
    """A run log sink that writes each record as a ``stage[item] | message`` line to ``stream``
    (default: ``sys.stderr`` at the time of the write), as ``flowdapt exec`` and the Python API do."""

    def sink(stage: str, records: list[tuple]) -> None:
        out = stream if stream is not None else sys.stderr
        out.write("".join(format_record(r, with_time=with_time) + "\n" for r in from_wire(stage, records)))
        flush = getattr(out, "flush", None)
        if flush is not None:
            flush()

    return sink
