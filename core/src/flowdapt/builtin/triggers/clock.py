"""Clocks for the trigger service: the system clock, and a manual one tests move by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

#: The system clock never sleeps longer than this in one go, so a wall-clock step (NTP) is noticed.
MAX_SLEEP_SECONDS = 30.0


class Clock:
    """``now()`` in aware UTC, and a sleep until a wall-clock time that an event can cut short."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, deadline: datetime | None, wake: asyncio.Event) -> None:
        """Return at ``deadline`` (None: never) or as soon as ``wake`` is set."""
        if deadline is None:
            await wake.wait()
            return
        delay = (deadline - self.now()).total_seconds()
        if delay <= 0:
            return
        try:
            await asyncio.wait_for(wake.wait(), min(delay, MAX_SLEEP_SECONDS))
        except TimeoutError:
            pass


SystemClock = Clock


class ManualClock(Clock):
    """Time stands still until :meth:`advance` or :meth:`set` moves it (tests)."""

    def __init__(self, start: datetime | None = None):
        start = start or datetime(2030, 1, 1, tzinfo=UTC)
        self._now = start if start.tzinfo else start.replace(tzinfo=UTC)
        self._tick = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when if when.tzinfo else when.replace(tzinfo=UTC)
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        self.set(self._now + timedelta(seconds=seconds, **delta))
        return self._now

    async def sleep_until(self, deadline: datetime | None, wake: asyncio.Event) -> None:
        while not wake.is_set() and (deadline is None or self._now < deadline):
            tick = self._tick
            waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(tick.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
