"""Live events for clients: run, stage and resource changes, fanned out to SSE subscribers.

Publishing is synchronous and costs nothing when nobody listens. Each subscriber has a bounded
queue; a subscriber too slow to keep up loses its oldest events and is told so (``dropped``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from flowdapt.resources.base import utcnow
from flowdapt.server.http import dumps

QUEUE_SIZE = 1000
HEARTBEAT_SECONDS = 15.0

#: Event types, for the docs and the ``types`` filter.
RUN_EVENTS = ("run_created", "run_started", "stage_started", "stage_progress", "stage_finished", "run_finished")
RESOURCE_EVENTS = ("resource_created", "resource_updated", "resource_deleted")


@dataclass
class Event:
    id: int
    type: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (self.id, self.type.encode(), dumps(self.data))


@dataclass(eq=False)
class Subscriber:
    types: frozenset[str] | None = None
    run: str | None = None
    workflow: str | None = None
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: int = 0

    def wants(self, event_type: str, data: dict[str, Any]) -> bool:
        if self.types is not None and event_type not in self.types:
            return False
        if self.run is not None and self.run not in (data.get("uid"), data.get("name")):
            return False
        if self.workflow is not None and data.get("workflow") != self.workflow:
            return False
        return True


_CLOSE = object()


class EventHub:
    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self._ids = itertools.count(1)
        self.closed = False

    @property
    def listening(self) -> bool:
        return bool(self._subscribers)

    def publish(self, event_type: str, data: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        data.setdefault("time", utcnow().isoformat())
        event = Event(next(self._ids), event_type, data)
        for sub in self._subscribers:
            if not sub.wants(event_type, data):
                continue
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
            sub.queue.put_nowait(event)

    async def stream(self, subscriber: Subscriber, heartbeat: float = HEARTBEAT_SECONDS) -> AsyncIterator[bytes]:
        """SSE frames for one subscriber until the hub closes (server stop) or the client leaves."""
        self._subscribers.add(subscriber)
        try:
            yield b": connected\nretry: 2000\n\n"
            while not self.closed:
                try:
                    item = await asyncio.wait_for(subscriber.queue.get(), heartbeat)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                if item is _CLOSE:
                    break
                if subscriber.dropped:
                    lost, subscriber.dropped = subscriber.dropped, 0
                    yield b"event: dropped\ndata: %s\n\n" % dumps({"dropped": lost})
                yield item.encode()
        finally:
            self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every stream, so a stopping server is not held open by SSE clients."""
        self.closed = True
        for sub in list(self._subscribers):
            while sub.queue.full():
                sub.queue.get_nowait()
            sub.queue.put_nowait(_CLOSE)
