"""The server's side of run logs: collect what a run's stages print and log, store it, read it.

A :class:`RunLogWriter` per active run receives the records the workers shipped with each task
(the run's log sink, called in the event loop), numbers them and stores them in batches: every
``FLUSH_SECONDS`` while the run is active and once when it ends, before the run's final state is
written, so a client that sees the run ended can read its whole log. What waits to be stored is
bounded by ``logs.max_bytes_per_run`` too (oldest dropped, with a marker), so a stage printing a
gigabyte never holds more than the bound in the server; the store keeps each run's log within
the bound (:class:`flowdapt.storage.DocumentStore`, run-log section).

A store without the ``run_logs`` capability gets :class:`MemoryLogStore`: the logs of the last
``MEMORY_RUNS`` runs in this process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from flowdapt.engine.logs import RunLogRecord, from_wire
from flowdapt.errors import StorageFullError, StorageUnavailableError
from flowdapt.storage.memory_logs import MemoryRunLogs

if TYPE_CHECKING:
    from flowdapt.server.runs import RunService

log = logging.getLogger("flowdapt.server.run_logs")

FLUSH_SECONDS = 0.25
MEMORY_RUNS = 1000
#: Seconds a follower waits for new records before looking again (a run on another server).
FOLLOW_POLL_SECONDS = 1.0
#: Records one follow read takes at a time.
FOLLOW_BATCH = 1000


class MemoryLogStore:
    """The run-log methods of a document store, in memory (for stores without ``run_logs``)."""

    run_logs = True

    def __init__(self, max_runs: int = MEMORY_RUNS) -> None:
        self._logs = MemoryRunLogs(max_runs)

    async def append_run_logs(
        self,
        run_uid: str,
        records: Sequence[RunLogRecord],
        *,
        max_bytes: int | None = None,
        dropped: tuple[int, int] = (0, 0),
    ) -> None:
        self._logs.append(run_uid, records, max_bytes, dropped)

    async def read_run_logs(self, run_uid: str, **filters: Any) -> list[RunLogRecord]:
        return self._logs.read(run_uid, **filters)

    async def trim_run_logs(self, run_uid: str, max_bytes: int) -> int:
        return self._logs.trim(run_uid, max_bytes)

    async def delete_run_logs(self, run_uid: str) -> int:
        return self._logs.delete(run_uid)


class RunLogWriter:
    """Numbers, bounds and stores one run's records; see the module docstring."""

    def __init__(self, logs, run_uid: str, max_bytes: int) -> None:
        self.logs = logs
        self.run_uid = run_uid
        self.max_bytes = max_bytes
        self.seq = 0
        self.pending: list[RunLogRecord] = []
        self.pending_bytes = 0
        self.dropped = 0
        self.dropped_bytes = 0
        self._lock = asyncio.Lock()
        #: Set (and replaced) after each store write; followers wait on it.
        self.stored = asyncio.Event()
        self.closed = False
        self.store_failed = False

    def add(self, stage: str, records: list[tuple]) -> None:
        batch = from_wire(stage, records, self.seq + 1)
        self.seq += len(batch)
        self.pending.extend(batch)
        self.pending_bytes += sum(r.size for r in batch)
        if self.pending_bytes > self.max_bytes:
            self._trim_pending()

    def _trim_pending(self) -> None:
        keep = self.pending
        i = 0
        while self.pending_bytes > self.max_bytes and i < len(keep):
            size = keep[i].size
            self.pending_bytes -= size
            self.dropped += 1
            self.dropped_bytes += size
            i += 1
        del keep[:i]

    async def flush(self) -> None:
        async with self._lock:
            if not self.pending and not self.dropped:
                return
            batch, self.pending, self.pending_bytes = self.pending, [], 0
            # What was cut here counts in the store's marker of the run's dropped records.
            dropped, self.dropped, self.dropped_bytes = (self.dropped, self.dropped_bytes), 0, 0
            try:
                await self.logs.append_run_logs(self.run_uid, batch, max_bytes=self.max_bytes, dropped=dropped)
            except (StorageFullError, StorageUnavailableError) as exc:  # the run goes on; say it once
                if not self.store_failed:
                    log.warning("log records of run %s are being dropped: %s", self.run_uid, exc)
                self.store_failed = True
            except Exception:
                log.exception("could not store %d log record(s) of run %s", len(batch), self.run_uid)
            else:
                self.store_failed = False
            event, self.stored = self.stored, asyncio.Event()
            event.set()

    async def run(self) -> None:
        """Flush every ``FLUSH_SECONDS`` until cancelled."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def close(self) -> None:
        await self.flush()
        self.closed = True
        event, self.stored = self.stored, asyncio.Event()
        event.set()


def sse_record(record: RunLogRecord) -> bytes:
    return b"id: %d\nevent: log\ndata: %s\n\n" % (record.seq, orjson.dumps(record.to_json()))


async def follow(
    service: RunService,
    run_uid: str,
    *,
    stage: str | None,
    min_level: int | None,
    after_seq: int | None,
    since: float | None,
) -> AsyncIterator[bytes]:
    """Server-sent events: the run's records so far, then new ones as they are stored, then an
    ``end`` event when the run has ended (and its log is stored)."""
    logs = service.logs
    after = after_seq
    sent_marker = False
    while True:
        active = service.find_active(run_uid)
        writer = active.log_writer if active is not None else None
        waiter = writer.stored if writer is not None else None
        if active is None:  # ended here, or running on another server that shares the database
            ended = (await service.get(run_uid)).state.is_final
        else:
            ended = active.done and (writer is None or writer.closed)
        while True:
            records = await logs.read_run_logs(
                run_uid, stage=stage, min_level=min_level, after_seq=after, since=since, limit=FOLLOW_BATCH
            )
            for record in records:
                if record.seq == 0:
                    if sent_marker:
                        continue
                    sent_marker = True
                yield sse_record(record)
                after = max(after or 0, record.seq)
            if len(records) < FOLLOW_BATCH:
                break
        if ended:
            yield b"event: end\ndata: {}\n\n"
            return
        if waiter is None:
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
        else:
            try:
                await asyncio.wait_for(waiter.wait(), FOLLOW_POLL_SECONDS)
            except TimeoutError:
                yield b": keep-alive\n\n"
