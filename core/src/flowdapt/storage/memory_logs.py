"""Run logs in memory: the memory store's, and the server's when its store keeps none.

Same semantics as the contract's run-log section (:class:`flowdapt.storage.DocumentStore`):
records in ``seq`` order, bounded per run with a seq-0 marker of what was dropped. Thread-safe.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from flowdapt.engine.logs import SYSTEM, RunLogRecord, clean_text

#: A trim drops records down to this share of the bound, so a log at its bound is not trimmed on
#: every append.
LOW_WATER = 0.9


def marker_message(dropped: int, dropped_bytes: int, max_bytes: int | None) -> str:
    bound = f" ({max_bytes} bytes)" if max_bytes else ""
    return (
        f"{dropped} earlier log record(s) ({dropped_bytes} bytes) of this run were dropped: "
        f"a run's log is bounded by logs.max_bytes_per_run{bound}"
    )


def low_water(max_bytes: int) -> int:
    return int(max_bytes * LOW_WATER)


@dataclass
class _Log:
    records: deque[RunLogRecord] = field(default_factory=deque)
    size: int = 0
    dropped: int = 0
    dropped_bytes: int = 0
    marker_time: float = 0.0
    max_bytes: int | None = None


def matches(
    record: RunLogRecord, stage: str | None, min_level: int | None, after_seq: int | None, since: float | None
) -> bool:
    """The contract's read filters (the seq-0 marker passes any stage filter)."""
    return (
        (stage is None or record.stage == stage or record.seq == 0)
        and (min_level is None or record.level >= min_level)
        and (after_seq is None or record.seq > after_seq)
        and (since is None or record.time >= since)
    )


class MemoryRunLogs:
    """Run logs by run uid; at most ``max_runs`` runs (the oldest forgotten first) when given."""

    def __init__(self, max_runs: int | None = None) -> None:
        self._lock = threading.Lock()
        self._logs: OrderedDict[str, _Log] = OrderedDict()
        self.max_runs = max_runs

    def append(
        self,
        run_uid: str,
        records: Sequence[RunLogRecord],
        max_bytes: int | None = None,
        dropped: tuple[int, int] = (0, 0),
    ) -> None:
        with self._lock:
            entry = self._logs.get(run_uid)
            if entry is None:
                entry = self._logs[run_uid] = _Log()
                while self.max_runs is not None and len(self._logs) > self.max_runs:
                    self._logs.popitem(last=False)
            for record in records:
                record = RunLogRecord(*_fields(record))  # a copy: callers keep theirs
                record.message = clean_text(record.message)
                entry.records.append(record)
                entry.size += record.size
            if dropped[0]:
                entry.dropped += dropped[0]
                entry.dropped_bytes += dropped[1]
                entry.max_bytes = max_bytes
                if records and not entry.marker_time:
                    entry.marker_time = records[0].time
            if max_bytes is not None and entry.size > max_bytes:
                self._trim(entry, max_bytes)

    @staticmethod
    def _trim(entry: _Log, max_bytes: int) -> int:
        target = low_water(max_bytes)
        dropped = 0
        while entry.size > target and entry.records:
            old = entry.records.popleft()
            entry.size -= old.size
            entry.dropped += 1
            entry.dropped_bytes += old.size
            entry.marker_time = old.time
            dropped += 1
        entry.max_bytes = max_bytes
        return dropped

    def trim(self, run_uid: str, max_bytes: int) -> int:
        with self._lock:
            entry = self._logs.get(run_uid)
            if entry is None or entry.size <= max_bytes:
                return 0
            return self._trim(entry, max_bytes)

    def read(
        self,
        run_uid: str,
        *,
        stage: str | None = None,
        min_level: int | None = None,
        after_seq: int | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[RunLogRecord]:
        with self._lock:
            entry = self._logs.get(run_uid)
            if entry is None:
                return []
            candidates = list(entry.records)
            if entry.dropped:
                marker = RunLogRecord(
                    0,
                    entry.marker_time,
                    None,
                    None,
                    SYSTEM,
                    logging.WARNING,
                    "",
                    marker_message(entry.dropped, entry.dropped_bytes, entry.max_bytes),
                )
                candidates.insert(0, marker)
        out = []
        for record in candidates:
            if matches(record, stage, min_level, after_seq, since):
                out.append(RunLogRecord(*_fields(record)))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def delete(self, run_uid: str) -> int:
        with self._lock:
            entry = self._logs.pop(run_uid, None)
        return 0 if entry is None else len(entry.records)

    def delete_many(self, run_uids: Sequence[str]) -> None:
        with self._lock:
            for uid in run_uids:
                self._logs.pop(uid, None)


def _fields(record: RunLogRecord) -> tuple:
    return (
        record.seq, record.time, record.stage, record.item, record.stream, record.level, record.logger, record.message
    )
