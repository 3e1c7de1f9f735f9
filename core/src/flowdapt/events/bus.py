"""The event bus contract: events fan out to every subscriber, work items go to one consumer.

Implementations register through ``flowdapt_register_event_buses``; the scheme of
``event_bus.url`` picks one (``memory://`` is built in). The contract is written for several
servers sharing one broker:

- :meth:`EventBus.publish` delivers an event to every subscription whose channels match. Subscriptions
  that share a ``group`` name act as one subscriber: each event goes to exactly one member of the
  group (a broker maps this to a shared queue / consumer group). The trigger service subscribes with
  ``group="triggers"`` so a condition rule fires once per event however many servers run.
- :meth:`EventBus.enqueue` puts a work item on a named queue; :meth:`EventBus.consume` takes items
  from it, each item to exactly one consumer (run requests from ``run_workflow`` actions).

Handlers are ``async def handler(event)`` (or plain functions). A handler's exception is logged and
does not stop delivery to the others. Delivery to one subscription is in publish order.

A bus reports what it does to its ``observer`` (the server's metrics, ``events_published``,
``events_received``, ``event_callback_latency``): call :meth:`EventBus.observe_published` for each
event published and deliver through :func:`call_handler` with the bus's observer.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol

from flowdapt.events.envelope import Event

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None] | None]


class EventObserver(Protocol):
    def event_published(self, event_type: str, channel: str, source: str) -> None: ...

    def event_handled(self, event_type: str, channel: str, source: str, callback: str, seconds: float) -> None: ...


class Subscription(abc.ABC):
    """A registered handler; :meth:`close` stops delivery to it."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class EventBus(abc.ABC):
    """Publish/subscribe for events plus a work queue. See the module docstring for the contract."""

    #: Scheme this bus serves (``memory``, ``amqp``...), for status pages and errors.
    name: str = "abstract"

    def __init__(self) -> None:
        self._background: set[asyncio.Task] = set()
        #: Set by the server: told of every event published and every handler call.
        self.observer: EventObserver | None = None

    def observe_published(self, event: Event) -> None:
        if self.observer is not None:
            self.observer.event_published(event.type, event.channel, event.source)

    async def __aenter__(self) -> EventBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect. Called once, in the event loop that will use the bus."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop delivery, close subscriptions and connections. Undelivered in-memory items are lost."""

    @abc.abstractmethod
    async def publish(self, event: Event) -> None:
        """Deliver ``event`` to every matching subscription (one member per group)."""

    def publish_nowait(self, event: Event) -> None:
        """Publish from synchronous code running in the bus's event loop (run listeners).

        The default schedules :meth:`publish` as a task; a bus that can enqueue synchronously
        overrides it."""
        task = asyncio.get_running_loop().create_task(self.publish(event))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @abc.abstractmethod
    async def subscribe(
        self, handler: Handler, *, channels: Iterable[str] | None = None, group: str | None = None
    ) -> Subscription:
        """Call ``handler`` for each event on ``channels`` (None: every channel).

        With a ``group``, the subscriptions sharing that name (on any server) split the events:
        each event reaches one of them."""

    @abc.abstractmethod
    async def enqueue(self, queue: str, item: Event) -> None:
        """Put a work item on ``queue``; one consumer will take it."""

    @abc.abstractmethod
    async def consume(self, queue: str, handler: Handler) -> Subscription:
        """Take items from ``queue`` one at a time and call ``handler`` with each."""

    @contextlib.asynccontextmanager
    async def stream(
        self, *, channels: Iterable[str] | None = None, maxsize: int = 1000
    ) -> AsyncIterator[AsyncIterator[Event]]:
        """Events as an async iterator, for live clients (server-sent events).

        A slow reader never holds up the bus: when ``maxsize`` events are waiting, the oldest is
        dropped and the next event it reads carries ``headers["dropped"]`` with how many were lost.
        """
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        dropped = 0

        def push(event: Event) -> None:
            nonlocal dropped
            if queue.full():
                queue.get_nowait()
                dropped += 1
            queue.put_nowait(event)

        subscription = await self.subscribe(push, channels=channels)

        async def iterate() -> AsyncIterator[Event]:
            nonlocal dropped
            while True:
                event = await queue.get()
                if dropped:
                    event = event.model_copy(update={"headers": {**event.headers, "dropped": dropped}})
                    dropped = 0
                yield event

        try:
            yield iterate()
        finally:
            await subscription.close()


async def call_handler(handler: Handler, event: Event, observer: EventObserver | None = None) -> None:
    """Run one handler; its failure is logged, never raised into the bus."""
    started = time.perf_counter()
    try:
        result = handler(event)
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            await result
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("event handler %r failed on %s", getattr(handler, "__qualname__", handler), event.type)
    finally:
        if observer is not None:
            name = getattr(handler, "__qualname__", None) or type(handler).__name__
            observer.event_handled(event.type, event.channel, event.source, name, time.perf_counter() - started)
