"""The event bus contract (``flowdapt.events.EventBus``): every bus passes it.

Fan-out to every subscriber and channel filters, a group's events to exactly one member, a work
queue's items to exactly one consumer, publish order per subscription, a failing or slow handler
that holds up nobody else, closed subscriptions that get nothing more, ``stream()`` dropping the
oldest events for a slow reader and counting them, ``publish_nowait``, the observer, and (for a
bus that several servers share) two bus objects and two OS processes on the same events, and a
group event or work item taken by a member that went away delivered to another member.

Run it against any registered bus, by name or by its ``event_bus.url``::

    pytest --pyargs flowdapt.testing.conformance --flowdapt-event-bus memory
    pytest --pyargs flowdapt.testing.conformance --flowdapt-event-bus 'nats://127.0.0.1:4222:prefix=t_{unique}'

or subclass :class:`EventBusConformance` as ``Test...`` in a module that overrides the
``flowdapt_event_bus_backend`` fixture (docs/plugins.md). Each test builds its buses through the
plugin registry for a fresh app dir; the options must give an *isolated* bus per test (on a
shared broker, a ``{unique}`` prefix), and two buses built from the same options must share events
when the bus says it is ``shared``.

What a bus lacks makes the suite skip, never weaken, a test: the bus object's ``shared`` (two bus
objects, as two servers have, share events) and ``redelivers`` (a group event or work item that a
member took and did not finish goes to another member) attributes, both True unless the bus says
otherwise (the in-process ``memory`` bus says False to both). Delivery may be asynchronous: the
cases wait (up to ``TIMEOUT`` seconds) for what must arrive, and ``QUIET`` seconds to see that
nothing more does. The tests are coroutines: the suite needs pytest-asyncio (strict or auto mode).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter

import pytest

from flowdapt.events.bus import EventBus
from flowdapt.events.envelope import Event

try:  # the cases are coroutines; without pytest-asyncio they skip (the module still imports)
    from pytest_asyncio import fixture as async_fixture

    HAVE_PYTEST_ASYNCIO = True
except ImportError:  # pragma: no cover - pytest-asyncio is in every Flowdapt test environment
    async_fixture = pytest.fixture
    HAVE_PYTEST_ASYNCIO = False

__all__ = ["QUIET", "TIMEOUT", "EventBusConformance", "ev", "wait_until"]

#: Seconds a case waits for deliveries that must happen.
TIMEOUT = 15.0
#: Seconds a case waits to see that no further delivery happens.
QUIET = 0.5


def ev(data, channel: str = "workflows", **extra) -> Event:
    return Event(channel=channel, source="conformance", type="conformance.test", data=data, **extra)


async def wait_until(condition, timeout: float = TIMEOUT, what: str = "the deliveries") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.01)


class _Recorder:
    """An observer that keeps what the bus reported."""

    def __init__(self):
        self.published: list[tuple[str, str, str]] = []
        self.handled: list[tuple[str, str, str, str, float]] = []

    def event_published(self, event_type, channel, source):
        self.published.append((event_type, channel, source))

    def event_handled(self, event_type, channel, source, callback, seconds):
        self.handled.append((event_type, channel, source, callback, seconds))


class EventBusConformance:
    """The event-bus conformance cases; subclass it as ``Test...`` to collect them."""

    @pytest.fixture
    def backend(self, flowdapt_event_bus_backend):
        if not HAVE_PYTEST_ASYNCIO:
            pytest.skip("the event-bus conformance suite needs pytest-asyncio")
        return flowdapt_event_bus_backend

    @pytest.fixture
    def app_dir(self, tmp_path, monkeypatch):
        import os

        for key in list(os.environ):
            if key.startswith("FLOWDAPT__"):
                monkeypatch.delenv(key)
        path = tmp_path / "app"
        path.mkdir()
        return path

    @async_fixture
    async def make_bus(self, backend, app_dir):
        """``await make_bus()``: another started bus on this test's events; all stop at teardown."""
        made: list[EventBus] = []

        async def make() -> EventBus:
            bus = backend.make(app_dir)
            assert isinstance(bus, EventBus)
            await bus.start()
            made.append(bus)
            return bus

        yield make
        for bus in made:
            await bus.stop()

    @async_fixture
    async def bus(self, make_bus):
        return await make_bus()

    @pytest.fixture
    def require(self, backend):
        def check(bus: EventBus, capability: str) -> None:
            if not backend.capability(bus, capability):
                pytest.skip(f"{backend.test_id} bus is not {capability}")

        return check

    # -- fan-out ---------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_fan_out_reaches_every_subscriber_on_its_channels(self, bus):
        every, workflows, both, resources = [], [], [], []
        await bus.subscribe(lambda e: every.append(e.data))
        await bus.subscribe(lambda e: workflows.append(e.data), channels=["workflows"])
        await bus.subscribe(lambda e: both.append(e.data), channels=["workflows", "resources"])
        await bus.subscribe(lambda e: resources.append(e.data), channels=["resources"])
        for i in range(30):
            await bus.publish(ev(i))
        for i in range(10):
            await bus.publish(ev(f"r{i}", channel="resources"))
        await bus.publish(ev("t", channel="triggers"))
        await wait_until(lambda: len(every) == 41 and len(workflows) == 30 and len(both) == 40 and len(resources) == 10)
        await asyncio.sleep(QUIET)
        assert every == [*range(30), *(f"r{i}" for i in range(10)), "t"]
        assert workflows == list(range(30))
        assert both == [*range(30), *(f"r{i}" for i in range(10))]
        assert resources == [f"r{i}" for i in range(10)]

    @pytest.mark.asyncio
    async def test_events_arrive_whole(self, bus):
        got: list[Event] = []
        await bus.subscribe(got.append)
        sent = ev(
            {"nested": {"a": [1, 2.5, None, "x"]}, "text": "héllo"},
            headers={"trigger_chain": ["a", "b"]},
            correlation_id="c-1",
            reply_channel="replies",
            trace_parent="00-abc-def-01",
        )
        await bus.publish(sent)
        await wait_until(lambda: got)
        event = got[0]
        assert event.id == sent.id and event.time == sent.time
        assert event.model_dump(mode="json") == sent.model_dump(mode="json")

    @pytest.mark.asyncio
    async def test_order_per_subscription(self, bus):
        single, multi, grouped, queued = [], [], [], []
        await bus.subscribe(lambda e: single.append(e.data), channels=["workflows"])
        await bus.subscribe(lambda e: multi.append(e.data), channels=["workflows", "resources"])
        await bus.subscribe(lambda e: grouped.append(e.data), group="ordered")
        await bus.consume("ordered", lambda e: queued.append(e.data))
        for i in range(200):
            await bus.publish(ev(i, channel="workflows" if i % 3 else "resources"))
            await bus.enqueue("ordered", ev(i))
        await wait_until(lambda: len(multi) == 200 and len(grouped) == 200 and len(queued) == 200)
        assert single == [i for i in range(200) if i % 3]
        assert multi == list(range(200))
        assert grouped == list(range(200))
        assert queued == list(range(200))

    @pytest.mark.asyncio
    async def test_a_subscription_gets_only_events_published_after_it(self, bus):
        await bus.publish(ev("before"))
        got = []
        await bus.subscribe(lambda e: got.append(e.data))
        await bus.publish(ev("after"))
        await wait_until(lambda: got)
        await asyncio.sleep(QUIET)
        assert got == ["after"]

    @pytest.mark.asyncio
    async def test_publish_nowait_from_synchronous_code(self, bus):
        got = []
        await bus.subscribe(lambda e: got.append(e.data))
        for i in range(50):
            bus.publish_nowait(ev(i))
        await wait_until(lambda: len(got) == 50)
        assert got == list(range(50))

    # -- groups and work queues ---------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_group_gives_each_event_to_one_member(self, bus):
        members: list[list] = [[], [], []]
        for box in members:
            await bus.subscribe(lambda e, box=box: box.append(e.data), group="triggers")
        other_group, plain = [], []
        await bus.subscribe(lambda e: other_group.append(e.data), group="audit")
        await bus.subscribe(lambda e: plain.append(e.data))
        for i in range(90):
            await bus.publish(ev(i))
        await wait_until(lambda: sum(map(len, members)) >= 90 and len(other_group) == 90 and len(plain) == 90)
        await asyncio.sleep(QUIET)
        delivered = [x for box in members for x in box]
        assert sorted(delivered) == list(range(90)), Counter(delivered).most_common(3)
        assert sorted(other_group) == list(range(90)) and plain == list(range(90))

    @pytest.mark.asyncio
    async def test_group_with_channels_gets_only_those(self, bus):
        a, b = [], []
        await bus.subscribe(lambda e: a.append(e.data), channels=["triggers"], group="g")
        await bus.subscribe(lambda e: b.append(e.data), channels=["triggers"], group="g")
        for i in range(20):
            await bus.publish(ev(i, channel="triggers" if i % 2 else "workflows"))
        await wait_until(lambda: len(a) + len(b) >= 10)
        await asyncio.sleep(QUIET)
        assert sorted(a + b) == [i for i in range(20) if i % 2]

    @pytest.mark.asyncio
    async def test_work_queue_gives_each_item_to_one_consumer(self, bus):
        consumers: list[list] = [[], [], []]

        async def slow(box, e):
            box.append(e.data)
            await asyncio.sleep(0.002)

        for box in consumers:
            await bus.consume("work", lambda e, box=box: slow(box, e))
        other = []
        await bus.consume("other", lambda e: other.append(e.data))
        for i in range(60):
            await bus.enqueue("work", ev(i))
        await bus.enqueue("other", ev("x"))
        await wait_until(lambda: sum(map(len, consumers)) >= 60 and other)
        await asyncio.sleep(QUIET)
        taken = [x for box in consumers for x in box]
        assert sorted(taken) == list(range(60)), Counter(taken).most_common(3)
        assert other == ["x"]
        for box in consumers:
            assert box == sorted(box)  # each consumer takes items in queue order

    @pytest.mark.asyncio
    async def test_items_enqueued_before_a_consumer_wait_for_it(self, bus):
        for i in range(5):
            await bus.enqueue("later", ev(i))
        got = []
        await bus.consume("later", lambda e: got.append(e.data))
        await wait_until(lambda: len(got) == 5)
        assert got == list(range(5))

    @pytest.mark.asyncio
    async def test_queue_names_with_dots_and_odd_characters_stay_apart(self, bus):
        got: dict[str, list] = {}
        names = ["workflows.run", "workflows_run", "workflows-run", "a*b>c", "ünï"]
        for name in names:
            await bus.consume(name, lambda e, name=name: got.setdefault(name, []).append(e.data))
        for name in names:
            await bus.enqueue(name, ev(name))
        await wait_until(lambda: len(got) == len(names))
        await asyncio.sleep(QUIET)
        assert got == {name: [name] for name in names}

    # -- failures and closing -------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_a_failing_handler_does_not_stop_delivery(self, bus):
        seen, grouped, queued, healthy = [], [], [], []

        def failing(box):
            def handler(e):
                box.append(e.data)
                if e.data % 2:
                    raise RuntimeError(f"handler failed on {e.data}")

            return handler

        async def failing_async(e):
            queued.append(e.data)
            raise ValueError("async handler failed")

        await bus.subscribe(failing(seen))
        await bus.subscribe(failing(grouped), group="failing")
        await bus.consume("failing", failing_async)
        await bus.subscribe(lambda e: healthy.append(e.data))
        for i in range(20):
            await bus.publish(ev(i))
            await bus.enqueue("failing", ev(i))
        await wait_until(lambda: len(seen) == 20 and len(grouped) >= 20 and len(queued) >= 20 and len(healthy) == 20)
        await asyncio.sleep(QUIET)
        # A handler's failure is its own: it is not retried, and nobody else notices.
        assert seen == list(range(20)) and grouped == list(range(20)) and queued == list(range(20))
        assert healthy == list(range(20))

    @pytest.mark.asyncio
    async def test_a_slow_handler_delays_only_itself(self, bus):
        release = asyncio.Event()
        slow, fast = [], []

        async def stuck(e):
            slow.append(e.data)
            await release.wait()

        await bus.subscribe(stuck)
        await bus.subscribe(lambda e: fast.append(e.data))
        for i in range(20):
            await bus.publish(ev(i))
        await wait_until(lambda: len(fast) == 20, what="the fast subscriber's events while another handler hangs")
        assert slow == [0]
        release.set()
        await wait_until(lambda: len(slow) == 20)
        assert slow == list(range(20))

    @pytest.mark.asyncio
    async def test_close_stops_delivery(self, bus):
        closed, kept, g_closed, g_kept, q_closed, q_kept = [], [], [], [], [], []
        plain = await bus.subscribe(lambda e: closed.append(e.data))
        await bus.subscribe(lambda e: kept.append(e.data))
        member = await bus.subscribe(lambda e: g_closed.append(e.data), group="closing")
        await bus.subscribe(lambda e: g_kept.append(e.data), group="closing")
        consumer = await bus.consume("closing", lambda e: q_closed.append(e.data))
        await bus.consume("closing", lambda e: q_kept.append(e.data))
        await bus.publish(ev("first"))
        await wait_until(lambda: closed and kept)
        for sub in (plain, member, consumer):
            await sub.close()
        await asyncio.sleep(QUIET)
        before = (list(closed), list(g_closed), list(q_closed))
        for i in range(20):
            await bus.publish(ev(i))
            await bus.enqueue("closing", ev(i))
        await wait_until(lambda: len(kept) == 21 and len(g_kept) >= 20 and len(q_kept) == 20)
        await asyncio.sleep(QUIET)
        assert (closed, g_closed, q_closed) == before
        assert [x for x in g_kept if x != "first"] == list(range(20)) and q_kept == list(range(20))
        await plain.close()  # closing twice is harmless

    @pytest.mark.asyncio
    async def test_stop_ends_every_subscription(self, backend, app_dir):
        bus = backend.make(app_dir)
        await bus.start()
        got = []
        await bus.subscribe(lambda e: got.append(e.data))
        await bus.subscribe(lambda e: got.append(e.data), group="stopping")
        await bus.consume("stopping", lambda e: got.append(e.data))
        await bus.stop()
        if not backend.capability(bus, "shared"):
            return
        other = backend.make(app_dir)
        await other.start()
        try:
            await other.publish(ev("after stop"))
            await asyncio.sleep(QUIET)
            assert got == []
        finally:
            await other.stop()

    # -- stream() --------------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_stream_drops_the_oldest_for_a_slow_reader_and_counts(self, bus):
        counter = []
        await bus.subscribe(lambda e: counter.append(e.data))
        async with bus.stream(channels=["workflows"], maxsize=5) as events:
            for i in range(30):
                await bus.publish(ev(i))
            await bus.publish(ev("other channel", channel="resources"))
            await wait_until(lambda: len(counter) == 31)
            await asyncio.sleep(QUIET)  # the stream's own subscription has them too by now
            read, dropped = [], 0
            while len(read) + dropped < 30:
                event = await asyncio.wait_for(events.__anext__(), TIMEOUT)
                dropped += event.headers.get("dropped", 0)
                read.append(event.data)
        assert dropped >= 1 and len(read) + dropped == 30
        assert read == sorted(read) and read[-1] == 29 and len(read) <= 6

    @pytest.mark.asyncio
    async def test_stream_closes_its_subscription(self, bus):
        async with bus.stream() as events:
            await bus.publish(ev("one"))
            first = await asyncio.wait_for(events.__anext__(), TIMEOUT)
            assert first.data == "one" and "dropped" not in first.headers
        await bus.publish(ev("after"))  # nobody reads; must not fail or pile up anywhere

    # -- metrics ---------------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_the_observer_hears_publishes_and_handler_calls(self, bus):
        recorder = _Recorder()
        bus.observer = recorder
        got = []

        def named_handler(e):
            got.append(e)

        await bus.subscribe(named_handler)
        await bus.publish(ev(1))
        bus.publish_nowait(ev(2, channel="resources"))
        await wait_until(lambda: len(got) == 2)
        await wait_until(lambda: len(recorder.handled) == 2)
        assert recorder.published == [("conformance.test", "workflows", "conformance"), ("conformance.test", "resources", "conformance")]
        assert {h[3] for h in recorder.handled} == {named_handler.__qualname__}
        assert all(h[4] >= 0 for h in recorder.handled)

    # -- several servers -------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_two_buses_share_events(self, bus, make_bus, require):
        require(bus, "shared")
        other = await make_bus()
        here, there, group_here, group_there, queue_here, queue_there = [], [], [], [], [], []
        await bus.subscribe(lambda e: here.append(e.data))
        await other.subscribe(lambda e: there.append(e.data))
        await bus.subscribe(lambda e: group_here.append(e.data), group="shared")
        await other.subscribe(lambda e: group_there.append(e.data), group="shared")
        await bus.consume("shared", lambda e: queue_here.append(e.data))
        await other.consume("shared", lambda e: queue_there.append(e.data))
        for i in range(40):
            await (bus if i % 2 else other).publish(ev(i))
            await (other if i % 2 else bus).enqueue("shared", ev(i))
        await wait_until(
            lambda: len(here) == 40 and len(there) == 40
            and len(group_here) + len(group_there) >= 40 and len(queue_here) + len(queue_there) >= 40
        )
        await asyncio.sleep(QUIET)
        assert sorted(here) == sorted(there) == list(range(40))
        assert sorted(group_here + group_there) == list(range(40))
        assert sorted(queue_here + queue_there) == list(range(40))

    @pytest.mark.asyncio
    async def test_two_processes_share_events(self, backend, app_dir, bus, tmp_path, require):
        """Two OS processes, each with its own bus (two servers): fan-out reaches both, a group
        event and a work item reach one of them."""
        require(bus, "shared")
        sync = tmp_path / "sync"
        sync.mkdir()
        spec = backend.spec(app_dir)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "flowdapt.testing.conformance._event_bus_worker", spec, str(sync), str(i)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for i in range(2)
        ]
        try:
            deadline = time.monotonic() + 60
            while not all((sync / f"ready-{i}").exists() for i in range(2)):
                for p in procs:
                    if p.poll() is not None:
                        raise AssertionError(f"worker exited early ({p.returncode}): {p.communicate()[1][-2000:]}")
                assert time.monotonic() < deadline, "workers did not start"
                await asyncio.sleep(0.02)
            n = 30
            for i in range(n):
                await bus.publish(ev(i))
                await bus.enqueue("xproc", ev(f"q{i}"))

            def lines(i: int) -> list[dict]:
                path = sync / f"got-{i}.jsonl"
                text = path.read_text() if path.exists() else ""
                return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

            def done() -> bool:
                got = [lines(0), lines(1)]
                fanout = [sum(r["how"] == "fanout" for r in g) for g in got]
                group = sum(r["how"] == "group" for g in got for r in g)
                queue = sum(r["how"] == "queue" for g in got for r in g)
                return fanout == [n, n] and group >= n and queue >= n

            await wait_until(done, what="deliveries in both worker processes")
            await asyncio.sleep(QUIET)
        finally:
            (sync / "stop").touch()
            for p in procs:
                try:
                    p.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.communicate()
        got = [lines(0), lines(1)]
        for g in got:
            assert [r["data"] for r in g if r["how"] == "fanout"] == list(range(n))
        assert sorted(r["data"] for g in got for r in g if r["how"] == "group") == list(range(n))
        assert sorted(int(r["data"][1:]) for g in got for r in g if r["how"] == "queue") == list(range(n))

    @pytest.mark.asyncio
    async def test_a_group_event_taken_by_a_member_that_goes_away_reaches_another(self, bus, make_bus, require):
        require(bus, "shared")
        require(bus, "redelivers")
        other = await make_bus()
        started = asyncio.Event()
        first: list[str] = []
        second: list[Event] = []

        async def dies_while_handling(e):
            first.append(str(e.id))
            started.set()
            await asyncio.Event().wait()  # never finishes: the member goes away mid-handler

        dying = await bus.subscribe(dies_while_handling, group="redeliver")
        sent = ev("lost?")
        await other.publish(sent)
        await asyncio.wait_for(started.wait(), TIMEOUT)
        await other.subscribe(second.append, group="redeliver")
        await dying.close()
        await wait_until(lambda: second, what="the event handed to another member")
        assert first == [str(sent.id)] and second[0].id == sent.id

    @pytest.mark.asyncio
    async def test_a_work_item_taken_by_a_consumer_that_goes_away_reaches_another(self, bus, make_bus, require):
        require(bus, "shared")
        require(bus, "redelivers")
        other = await make_bus()
        started = asyncio.Event()
        second: list[Event] = []

        async def dies_while_handling(e):
            started.set()
            await asyncio.Event().wait()

        await bus.consume("redeliver", dies_while_handling)
        item = ev("run me")
        await other.enqueue("redeliver", item)
        await asyncio.wait_for(started.wait(), TIMEOUT)
        await other.consume("redeliver", second.append)
        await bus.stop()  # the whole server goes away
        await wait_until(lambda: second, what="the work item handed to another consumer")
        assert second[0].id == item.id and second[0].data == "run me"
