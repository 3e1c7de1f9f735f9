"""Built-in in-memory event bus (``event_bus.url: memory://``): one process, no broker.

Every subscription has its own queue and delivery task, so a slow handler delays only itself and
events reach each subscription in publish order. Groups and work queues split items among the
members in this process. Nothing leaves the process and nothing survives a restart: to share events
between several servers, install a broker plugin that implements the same hook.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from flowdapt.events.bus import EventBus, Handler, Subscription, call_handler
from flowdapt.events.envelope import Event
from flowdapt.hookspecs import hookimpl


class MemoryEventBusOptions(BaseModel):
    """The in-memory bus takes no options."""

    model_config = ConfigDict(extra="forbid")


class _MemorySubscription(Subscription):
    def __init__(self, bus: MemoryEventBus, handler: Handler, channels: frozenset[str] | None, group: str | None):
        self.bus = bus
        self.handler = handler
        self.channels = channels
        self.group = group
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._deliver(), name="memory-bus-subscription")

    def matches(self, channel: str) -> bool:
        return self.channels is None or channel in self.channels

    async def _deliver(self) -> None:
        queue, handler = self.queue, self.handler
        while True:
            event = await queue.get()
            await call_handler(handler, event, self.bus.observer)

    async def close(self) -> None:
        self.bus._remove(self)
        if not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass


class _QueueConsumer(Subscription):
    def __init__(self, bus: MemoryEventBus, queue: asyncio.Queue[Event], handler: Handler):
        self.bus = bus
        self.task = asyncio.get_running_loop().create_task(self._consume(queue, handler), name="memory-bus-consumer")

    async def _consume(self, queue: asyncio.Queue[Event], handler: Handler) -> None:
        while True:
            item = await queue.get()
            await call_handler(handler, item, self.bus.observer)

    async def close(self) -> None:
        self.bus._consumers.discard(self)
        if not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass


class MemoryEventBus(EventBus):
    name = "memory"
    #: Capabilities the event-bus conformance suite asks about: another bus object (another server)
    #: shares nothing with this one, and what a closed member had taken is gone with it.
    shared = False
    redelivers = False

    def __init__(self) -> None:
        super().__init__()
        self._subscriptions: list[_MemorySubscription] = []
        self._groups: dict[str, list[_MemorySubscription]] = {}
        self._round_robin: dict[str, itertools.count] = {}
        self._queues: dict[str, asyncio.Queue[Event]] = {}
        self._consumers: set[_QueueConsumer] = set()
        self.published = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for sub in list(self._subscriptions) + [s for members in self._groups.values() for s in members]:
            await sub.close()
        for consumer in list(self._consumers):
            await consumer.close()
        for task in list(self._background):
            task.cancel()

    def publish_nowait(self, event: Event) -> None:
        self.published += 1
        self.observe_published(event)
        channel = event.channel
        for sub in self._subscriptions:
            if sub.matches(channel):
                sub.queue.put_nowait(event)
        for group, members in self._groups.items():
            matching = [m for m in members if m.matches(channel)]
            if matching:
                turn = next(self._round_robin[group])
                matching[turn % len(matching)].queue.put_nowait(event)

    async def publish(self, event: Event) -> None:
        self.publish_nowait(event)

    async def subscribe(
        self, handler: Handler, *, channels: Iterable[str] | None = None, group: str | None = None
    ) -> Subscription:
        sub = _MemorySubscription(self, handler, frozenset(channels) if channels is not None else None, group)
        if group is None:
            self._subscriptions.append(sub)
        else:
            self._groups.setdefault(group, []).append(sub)
            self._round_robin.setdefault(group, itertools.count())
        return sub

    def _remove(self, sub: _MemorySubscription) -> None:
        if sub.group is None:
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)
        else:
            members = self._groups.get(sub.group, [])
            if sub in members:
                members.remove(sub)
            if not members:
                self._groups.pop(sub.group, None)

    def _queue(self, name: str) -> asyncio.Queue[Event]:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = asyncio.Queue()
        return queue

    async def enqueue(self, queue: str, item: Event) -> None:
        self._queue(queue).put_nowait(item)

    async def consume(self, queue: str, handler: Handler) -> Subscription:
        consumer = _QueueConsumer(self, self._queue(queue), handler)
        self._consumers.add(consumer)
        return consumer


@hookimpl
def flowdapt_register_event_buses(register):
    register("memory", lambda options, settings=None: MemoryEventBus(), MemoryEventBusOptions)
