"""The NATS JetStream event bus (``event_bus.url: nats://host:4222``).

Subjects and streams, with ``P`` the ``prefix`` option (two clusters on one broker use two prefixes):

- every event is published to ``P.ev.<channel>`` with JetStream's acknowledged publish and the
  event's ``id`` as ``Nats-Msg-Id`` (a publish retried after a lost acknowledgement is stored once);
- **plain subscriptions** are core NATS subscriptions on those subjects: every server gets every
  event (fan-out), nothing is stored for them;
- **grouped subscriptions** read the stream ``P_events`` (subjects ``P.ev.>``, interest retention:
  a message is kept until every group has acknowledged it, bounded by ``max_age``/``max_msgs``/
  ``max_bytes``) through one durable pull consumer per group; the members of a group, in any
  process, pull from the same consumer, so each event goes to one member, and is acknowledged
  only after its handler returned: an event whose member died first is delivered again after
  ``ack_wait`` (at once when the member closed cleanly);
- **work queues** (``enqueue``/``consume``) are the stream ``P_queues`` (subjects ``P.q.>``,
  work-queue retention: an item is deleted when acknowledged) with one durable pull consumer per
  queue, acknowledged after the handler returned, redelivered when the consumer died.

Delivery to groups and queues is at least once: a handler may see an event twice after a crash or
a broker restart (events carry an ``id`` to deduplicate on). Plain subscriptions drop an ``id``
they have just seen (a publish retried across a reconnect reaches core subscribers twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import api

from flowdapt.errors import ConfigurationError
from flowdapt.events.bus import EventBus, Handler, Subscription, call_handler
from flowdapt.events.envelope import Event
from flowdapt_nats.options import (  # noqa: F401 - re-exported: they were defined here
    DEFAULT_URL,
    EventBusUnavailableError,
    NatsEventBusOptions,
    parse_servers,
    redact,
    token,
)

log = logging.getLogger(__name__)


#: NATS message header naming the bus object (the server) that published an event; the event itself
#: is unchanged. ``subscribe_remote`` skips a bus's own events with it.
ORIGIN_HEADER = "Flowdapt-Origin"

#: Errors after which an operation is worth retrying: the broker is (re)connecting or slow.
_TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    asyncio.TimeoutError,
)


# -- names -----------------------------------------------------------------------------------------

async def _cancel(task: asyncio.Task | None) -> None:
    """Cancel ``task`` and wait for it to end. Cancelling again until it does: Python 3.11's
    ``asyncio.wait_for`` (inside nats-py's fetch) can swallow a cancellation that meets a result."""
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)


# -- subscriptions -----------------------------------------------------------------------------------


class _FanoutSubscription(Subscription):
    """A core NATS subscription: every event on its channels, in publish order."""

    #: Event ids remembered per subscription to drop a publish retried across a reconnect.
    RECENT = 2048

    def __init__(self, bus: NatsEventBus, handler: Handler, channels: frozenset[str] | None, remote_only: bool = False):
        self.bus = bus
        self.handler = handler
        self.channels = channels
        self.remote_only = remote_only
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._sub = None

    async def start(self) -> None:
        # One channel: its own subject. Several: the wildcard and a filter here, so that one NATS
        # subscription (one delivery task) keeps the publish order across the channels.
        if self.channels is not None and len(self.channels) == 1:
            subject = self.bus.event_subject(next(iter(self.channels)))
        else:
            subject = f"{self.bus.prefix}.ev.>"
        self._sub = await self.bus.connection.subscribe(subject, cb=self._on_msg)

    async def _on_msg(self, msg) -> None:
        if self.remote_only and msg.headers and msg.headers.get(ORIGIN_HEADER) == self.bus.origin:
            return
        event = self.bus.decode(msg)
        if event is None or (self.channels is not None and event.channel not in self.channels):
            return
        key = str(event.id)
        if key in self._recent:
            return
        self._recent[key] = None
        if len(self._recent) > self.RECENT:
            self._recent.popitem(last=False)
        await call_handler(self.handler, event, self.bus.observer)

    async def close(self) -> None:
        self.bus._subs.discard(self)
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


class _PullSubscription(Subscription):
    """A member of a durable pull consumer (a group or a work queue): one item at a time, acked
    after the handler returned, given back (nak) when closed before that."""

    def __init__(
        self,
        bus: NatsEventBus,
        handler: Handler,
        *,
        stream: str,
        consumer: str,
        filter_subject: str,
        channels: frozenset[str] | None,
        deliver_policy: api.DeliverPolicy,
    ):
        self.bus = bus
        self.handler = handler
        self.stream = stream
        self.consumer = consumer
        self.filter_subject = filter_subject
        self.channels = channels
        self.deliver_policy = deliver_policy
        self._psub = None
        self._task: asyncio.Task | None = None
        self._inflight = None
        self._closed = False

    def consumer_config(self) -> api.ConsumerConfig:
        options = self.bus.options
        return api.ConsumerConfig(
            durable_name=self.consumer,
            deliver_policy=self.deliver_policy,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=options.ack_wait,
            max_deliver=options.max_deliver,
            filter_subject=self.filter_subject,
            inactive_threshold=options.consumer_inactive_threshold,
            max_ack_pending=10_000,
        )

    async def start(self) -> None:
        await self.bind()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"nats-bus-{self.consumer}")

    async def bind(self) -> None:
        await self.bus.ensure_consumer(self.stream, self.consumer_config())
        old, self._psub = self._psub, await self.bus.js.pull_subscribe_bind(durable=self.consumer, stream=self.stream)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()

    async def _loop(self) -> None:
        bus = self.bus
        failures = 0
        while not self._closed:
            try:
                msgs = await self._psub.fetch(1, timeout=bus.options.fetch_timeout)
            except nats.errors.TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # consumer or stream lost (broker restarted without its store)
                failures += 1
                (log.warning if failures == 1 else log.debug)(
                    "event bus: pulling %s/%s from NATS at %s failed (%s: %s); retrying",
                    self.stream, self.consumer, bus.display_url, type(exc).__name__, exc,
                )
                await asyncio.sleep(min(bus.options.reconnect_wait * failures, 5.0))
                with contextlib.suppress(Exception):
                    await bus.ensure_streams()
                    await self.bind()
                continue
            if failures:
                log.info("event bus: pulling %s/%s again", self.stream, self.consumer)
                failures = 0
            for msg in msgs:
                if self._closed:  # a cancellation lost in fetch: give the message back
                    with contextlib.suppress(Exception):
                        await msg.nak()
                    continue
                await self._handle(msg)

    async def _handle(self, msg) -> None:
        self._inflight = msg
        event = self.bus.decode(msg)
        if event is None:
            with contextlib.suppress(Exception):
                await msg.term()
            self._inflight = None
            return
        if self.channels is None or event.channel in self.channels:
            beat = asyncio.get_running_loop().create_task(self._keep_alive(msg))
            try:
                await call_handler(self.handler, event, self.bus.observer)
            finally:
                beat.cancel()
        self._inflight = None
        with contextlib.suppress(Exception):
            await msg.ack()

    async def _keep_alive(self, msg) -> None:
        """Tell the broker the handler still works on ``msg`` so ack_wait does not run out."""
        period = max(self.bus.options.ack_wait / 3, 0.05)
        while True:
            await asyncio.sleep(period)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def close(self) -> None:
        self.bus._subs.discard(self)
        self._closed = True
        task, self._task = self._task, None
        await _cancel(task)
        msg, self._inflight = self._inflight, None
        if msg is not None:  # taken but not handled to the end: to another member now
            with contextlib.suppress(Exception):
                await msg.nak()
        psub, self._psub = self._psub, None
        if psub is not None:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()


# -- the bus ---------------------------------------------------------------------------------------------


class NatsEventBus(EventBus):
    """Events and work queues on NATS JetStream; see the module docstring."""

    name = "nats"
    #: Capabilities the event-bus conformance suite asks about: two bus objects on the same broker
    #: and prefix share events, and a group event taken by a member that goes away is redelivered.
    shared = True
    redelivers = True

    def __init__(self, servers: list[str], options: NatsEventBusOptions, connection_name: str = "flowdapt"):
        super().__init__()
        self.servers = servers
        self.options = options
        self.prefix = options.prefix
        self.connection_name = options.connection_name or connection_name
        #: Names this bus object in the messages it publishes (see ``subscribe_remote``).
        self.origin = uuid.uuid4().hex
        self.events_stream = f"{self.prefix}_events"
        self.queues_stream = f"{self.prefix}_queues"
        self._nc: NATS | None = None
        self._js = None
        self._subs: set[_FanoutSubscription | _PullSubscription] = set()
        self._outbox: asyncio.Queue[Event] | None = None
        self._pump: asyncio.Task | None = None
        self._last_error: str | None = None
        self._disconnected = False
        self._stopping = False
        #: publish_nowait() events dropped because the outbox was full (broker away too long).
        self.dropped = 0

    # -- names ---------------------------------------------------------------------------------------

    @property
    def display_url(self) -> str:
        return ",".join(redact(s) for s in self.servers)

    def event_subject(self, channel: str) -> str:
        return f"{self.prefix}.ev.{token(channel)}"

    def queue_subject(self, queue: str) -> str:
        return f"{self.prefix}.q.{token(queue)}"

    @property
    def connection(self) -> NATS:
        if self._nc is None or self._nc.is_closed:
            raise EventBusUnavailableError(f"event bus on NATS at {self.display_url} is not started")
        return self._nc

    @property
    def js(self):
        self.connection  # noqa: B018 - raises when not started
        return self._js

    def decode(self, msg) -> Event | None:
        try:
            return Event.from_json(msg.data)
        except Exception as exc:  # noqa: BLE001 - another program's message on our subjects
            log.warning("event bus: dropped a message on %s that is not a Flowdapt event: %s", msg.subject, exc)
            return None

    # -- connection ----------------------------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if self._stopping:
            return
        (log.debug if self._disconnected or self._nc is None or not self._nc.is_connected else log.warning)(
            "event bus: NATS at %s: %s", self.display_url, self._last_error
        )

    async def _on_disconnected(self) -> None:
        if self._nc is None:  # the first connect is still being tried: start() reports it
            return
        if not self._stopping and not self._disconnected:
            self._disconnected = True
            log.warning("event bus: lost the connection to NATS at %s; reconnecting", self.display_url)

    async def _on_reconnected(self) -> None:
        self._disconnected = False
        log.info("event bus: reconnected to NATS at %s", self._nc.connected_url.netloc if self._nc else "?")
        task = asyncio.get_running_loop().create_task(self._after_reconnect())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _after_reconnect(self) -> None:
        """A broker restarted without its store has lost streams and consumers: make them again."""
        try:
            await self.ensure_streams()
            for sub in list(self._subs):
                if isinstance(sub, _PullSubscription):
                    await self.ensure_consumer(sub.stream, sub.consumer_config())
        except Exception as exc:  # noqa: BLE001 - the pull loops retry on their own
            log.warning("event bus: re-creating streams after a reconnect failed: %s", exc)

    async def start(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            return
        self._stopping = False
        options = self.options
        nc = NATS()
        kwargs: dict[str, Any] = {}
        if options.user is not None:
            kwargs["user"] = options.user
        if options.password is not None:
            kwargs["password"] = options.password.get_secret_value()
        if options.token is not None:
            kwargs["token"] = options.token.get_secret_value()
        try:
            await asyncio.wait_for(
                nc.connect(
                    servers=self.servers,
                    name=self.connection_name,
                    connect_timeout=options.connect_timeout,
                    reconnect_time_wait=options.reconnect_wait,
                    max_reconnect_attempts=options.max_reconnect_attempts,
                    allow_reconnect=True,
                    pending_size=options.reconnect_buffer_bytes,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    **kwargs,
                ),
                timeout=options.connect_timeout,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            why = self._last_error or f"{type(exc).__name__}: {exc}".rstrip(": ")
            raise ConfigurationError(
                f"event bus: cannot connect to NATS at {self.display_url} within {options.connect_timeout:g} s "
                f"({why}). Is nats-server running there with JetStream (nats-server -js)? "
                "Check event_bus.url and event_bus.options."
            ) from None
        self._nc = nc
        self._js = nc.jetstream(timeout=min(options.publish_timeout, 5.0))
        try:
            try:
                await self._js.account_info()
            except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError, nats.errors.TimeoutError):
                raise ConfigurationError(
                    f"event bus: NATS at {self.display_url} answers but JetStream is not enabled "
                    "(start nats-server with -js, or add `jetstream {}` to its config)"
                ) from None
            await self.ensure_streams()
        except BaseException:
            self._stopping = True
            with contextlib.suppress(Exception):
                await nc.close()
            self._nc = None
            raise
        self._outbox = asyncio.Queue(options.outbox_size)
        self._pump = asyncio.get_running_loop().create_task(self._pump_outbox(), name="nats-bus-outbox")
        log.info("event bus: NATS at %s (prefix %r, JetStream)", self.display_url, self.prefix)

    def _stream_configs(self) -> list[api.StreamConfig]:
        o = self.options
        storage = api.StorageType.FILE if o.storage == "file" else api.StorageType.MEMORY
        common = dict(
            max_age=o.max_age,
            max_msgs=o.max_msgs,
            max_bytes=o.max_bytes,
            storage=storage,
            num_replicas=o.replicas,
            duplicate_window=min(o.duplicate_window, o.max_age),
        )
        return [
            api.StreamConfig(
                name=self.events_stream,
                description="Flowdapt events for grouped subscriptions (one durable consumer per group)",
                subjects=[f"{self.prefix}.ev.>"],
                retention=api.RetentionPolicy.INTEREST,
                discard=api.DiscardPolicy.OLD,
                **common,
            ),
            api.StreamConfig(
                name=self.queues_stream,
                description="Flowdapt work queues (one durable consumer per queue)",
                subjects=[f"{self.prefix}.q.>"],
                retention=api.RetentionPolicy.WORK_QUEUE,
                discard=api.DiscardPolicy.NEW,
                **common,
            ),
        ]

    async def ensure_streams(self) -> None:
        """Create the streams, or bring their limits to the options; safe from any number of servers."""
        js = self.js
        for config in self._stream_configs():
            try:
                info = await js.stream_info(config.name)
            except nats.js.errors.NotFoundError:
                try:
                    await js.add_stream(config)
                    continue
                except nats.js.errors.BadRequestError:  # another server created it just now
                    info = await js.stream_info(config.name)
                except nats.js.errors.APIError as exc:
                    raise ConfigurationError(
                        f"event bus: NATS at {self.display_url} cannot create stream {config.name!r} "
                        f"({exc.description or exc}); with 'insufficient storage', lower "
                        "event_bus.options.max_bytes (reserved per stream) or give JetStream more storage"
                    ) from None
            current = info.config
            if current.retention != config.retention:
                raise ConfigurationError(
                    f"event bus: NATS stream {config.name!r} at {self.display_url} exists with retention "
                    f"{current.retention} instead of {config.retention}; it was made by something else: "
                    "delete it or choose another event_bus.options.prefix"
                )
            wanted = ("subjects", "max_age", "max_msgs", "max_bytes", "duplicate_window", "discard")
            if any(getattr(current, k) != getattr(config, k) for k in wanted):
                log.info("event bus: updating the limits of NATS stream %s", config.name)
                await js.update_stream(config)

    async def ensure_consumer(self, stream: str, config: api.ConsumerConfig) -> None:
        js = self.js
        try:
            info = await js.consumer_info(stream, config.durable_name)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_consumer(stream, config)
                return
            except nats.js.errors.BadRequestError:  # created by another member just now
                info = await js.consumer_info(stream, config.durable_name)
        if info.config.filter_subject != config.filter_subject:
            raise ConfigurationError(
                f"event bus: NATS consumer {stream}/{config.durable_name} exists with filter "
                f"{info.config.filter_subject!r}, expected {config.filter_subject!r}"
            )

    async def stop(self) -> None:
        if self._nc is None:
            return
        self._stopping = True
        for sub in list(self._subs):
            await sub.close()
        if self._outbox is not None and self._pump is not None and not self._pump.done():
            # What publish_nowait() queued goes out first, if the broker takes it soon.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._outbox.join(), timeout=min(self.options.publish_timeout, 5.0))
        for task in [self._pump, *self._background]:
            await _cancel(task)
        self._pump = None
        self._outbox = None
        nc, self._nc = self._nc, None
        with contextlib.suppress(Exception):
            await nc.flush(timeout=1)
        with contextlib.suppress(Exception):
            await nc.close()

    # -- publishing ---------------------------------------------------------------------------------

    async def _publish(self, subject: str, event: Event, what: str) -> None:
        """JetStream publish with retries until ``publish_timeout``; the event id dedupes retries."""
        js = self.js
        payload = event.to_json()
        headers = {"Nats-Msg-Id": str(event.id), ORIGIN_HEADER: self.origin}
        timeout = self.options.publish_timeout
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            try:
                try:
                    await js.publish(subject, payload, timeout=max(0.05, min(remaining, 2.0)), headers=headers)
                    return
                except nats.js.errors.APIError as exc:
                    if exc.err_code:  # a JetStream verdict (a full stream, a wrong subject): final
                        raise EventBusUnavailableError(
                            f"event bus: NATS at {self.display_url} refused {what} {event.type} ({event.id}): "
                            f"{exc.description or exc}"
                        ) from None
                    raise
            except _TRANSIENT as exc:
                last = f"{type(exc).__name__}: {exc}".rstrip(": ") or type(exc).__name__
                if isinstance(exc, nats.errors.NoRespondersError | nats.js.errors.NoStreamResponseError):
                    with contextlib.suppress(Exception):  # the stream is gone: make it again
                        if self._nc is not None and self._nc.is_connected:
                            await self.ensure_streams()
            except nats.errors.ConnectionClosedError:
                raise EventBusUnavailableError(f"event bus on NATS at {self.display_url} is stopped") from None
            except nats.js.errors.APIError as exc:
                raise EventBusUnavailableError(
                    f"event bus: NATS at {self.display_url} refused {what} {event.type} ({event.id}): {exc}"
                ) from None
            if time.monotonic() >= deadline:
                raise EventBusUnavailableError(
                    f"event bus: NATS at {self.display_url} did not take {what} {event.type} ({event.id}) "
                    f"within {timeout:g} s ({last}); the broker is down or unreachable"
                )
            attempt += 1
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0, max(deadline - time.monotonic(), 0)))

    async def publish(self, event: Event) -> None:
        self.js  # noqa: B018 - raises when not started
        self.observe_published(event)
        await self._publish(self.event_subject(event.channel), event, "event")

    def publish_nowait(self, event: Event) -> None:
        if self._outbox is None or self._pump is None:  # not started, or stopped: never raise into a run
            self.dropped += 1
            log.warning("event bus on NATS at %s is not running; event %s dropped", self.display_url, event.type)
            return
        self.observe_published(event)
        try:
            self._outbox.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "event bus: NATS at %s is not taking events; %d dropped so far (outbox_size %d full)",
                    self.display_url, self.dropped, self.options.outbox_size,
                )

    async def _pump_outbox(self) -> None:
        """Publish what publish_nowait() queued, in order; an outage holds the queue, not the caller.

        What is waiting goes out pipelined (up to ``PIPELINE`` publishes before their acknowledgements);
        an event the broker did not acknowledge is published again on its own (the id dedupes it)."""
        outbox = self._outbox
        assert outbox is not None
        while True:
            batch = [await outbox.get()]
            while not outbox.empty() and len(batch) < self.PIPELINE:
                batch.append(outbox.get_nowait())
            try:
                failed = batch if len(batch) == 1 else await self._publish_pipelined(batch)
                for event in failed:
                    await self._publish_until_taken(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - never let the pump die
                log.warning("event bus: %d event(s) not published: %s", len(batch), exc)
            finally:
                for _ in batch:
                    outbox.task_done()

    #: Events the outbox pump sends before it waits for their acknowledgements.
    PIPELINE = 256

    async def _publish_pipelined(self, batch: list[Event]) -> list[Event]:
        """Publish ``batch`` without waiting between events; the events not acknowledged."""
        js = self.js
        futures: list[asyncio.Future] = []
        try:
            for event in batch:
                futures.append(
                    await js.publish_async(
                        self.event_subject(event.channel),
                        event.to_json(),
                        headers={"Nats-Msg-Id": str(event.id), ORIGIN_HEADER: self.origin},
                    )
                )
        except Exception:  # noqa: BLE001 - reconnecting, buffer full: the rest go one by one
            pass
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), timeout=min(self.options.publish_timeout, 5.0)
            )
        except TimeoutError:
            return batch
        return [e for e, r in zip(batch, results, strict=False) if isinstance(r, BaseException)] + batch[len(futures) :]

    async def _publish_until_taken(self, event: Event) -> None:
        while True:
            try:
                await self._publish(self.event_subject(event.channel), event, "event")
                return
            except EventBusUnavailableError as exc:
                if self._stopping or self._nc is None or self._nc.is_closed:
                    raise
                if "refused" in str(exc):
                    log.warning("%s; dropped", exc)
                    return
                log.warning("%s; still trying", exc)

    # -- subscribing ----------------------------------------------------------------------------------

    async def subscribe(
        self, handler: Handler, *, channels: Iterable[str] | None = None, group: str | None = None
    ) -> Subscription:
        chans = frozenset(channels) if channels is not None else None
        if group is None:
            sub: _FanoutSubscription | _PullSubscription = _FanoutSubscription(self, handler, chans)
        else:
            consumer = f"g_{token(group)}"
            if chans is not None:
                # Members of a group subscribe to the same channels; another channel set is another
                # consumer (members with different channels would otherwise take each other's events).
                consumer += "_" + hashlib.sha1(",".join(sorted(chans)).encode()).hexdigest()[:10]
            if chans is not None and len(chans) == 1:
                subject = self.event_subject(next(iter(chans)))
            else:
                subject = f"{self.prefix}.ev.>"
            sub = _PullSubscription(
                self, handler, stream=self.events_stream, consumer=consumer, filter_subject=subject,
                channels=chans, deliver_policy=api.DeliverPolicy.NEW,
            )
        self.connection  # noqa: B018 - raises when not started
        await sub.start()
        self._subs.add(sub)
        return sub

    async def subscribe_remote(self, handler: Handler, *, channels: Iterable[str] | None = None) -> Subscription:
        """Like a plain :meth:`subscribe`, without the events this bus object published itself (a
        server forwarding other servers' run events to its own live stream)."""
        sub = _FanoutSubscription(self, handler, frozenset(channels) if channels is not None else None, remote_only=True)
        self.connection  # noqa: B018 - raises when not started
        await sub.start()
        self._subs.add(sub)
        return sub

    async def enqueue(self, queue: str, item: Event) -> None:
        await self._publish(self.queue_subject(queue), item, f"work item for queue {queue!r}")

    async def consume(self, queue: str, handler: Handler) -> Subscription:
        sub = _PullSubscription(
            self, handler, stream=self.queues_stream, consumer=f"q_{token(queue)}",
            filter_subject=self.queue_subject(queue), channels=None, deliver_policy=api.DeliverPolicy.ALL,
        )
        self.connection  # noqa: B018
        await sub.start()
        self._subs.add(sub)
        return sub


async def delete_streams(servers: list[str] | str, prefix: str, *, connect_timeout: float = 5.0) -> list[str]:
    """Delete the streams (and so the consumers) of ``prefix``: ``P_events`` and ``P_queues``, or every
    stream whose name starts with ``P`` when ``prefix`` ends with ``*`` (a test run's prefix)."""
    if isinstance(servers, str):
        servers = parse_servers(servers)
    nc = await nats.connect(servers=servers, connect_timeout=connect_timeout, allow_reconnect=False)
    try:
        js = nc.jetstream()
        if prefix.endswith("*"):
            start = prefix[:-1]
            names = [s.config.name for s in await js.streams_info() if s.config.name.startswith(start)]
        else:
            names = [f"{prefix}_events", f"{prefix}_queues"]
        deleted = []
        for name in names:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
                deleted.append(name)
        return deleted
    finally:
        await nc.close()
