"""What only a broker bus has: start-up errors, a broker restarted under load, a member killed with
SIGKILL mid-handler, prefixes that keep clusters apart, limits, and the measured latency."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flowdapt.errors import ConfigurationError
from flowdapt.plugins import create_plugin_system
from flowdapt.settings import load_settings
from flowdapt.testing.conformance.event_buses import ev, wait_until
from flowdapt_nats.bus import (
    EventBusUnavailableError,
    NatsEventBus,
    NatsEventBusOptions,
    delete_streams,
    token,
)

from .conftest import PLUGINS, NatsServer, free_port


def make(url: str, **options) -> NatsEventBus:
    options.setdefault("reconnect_wait", 0.2)
    options.setdefault("max_bytes", 8 * 1024 * 1024)
    return NatsEventBus([url], NatsEventBusOptions(**options))


@pytest.fixture
def prefix(nats_url, nats_prefix, request):
    name = f"{nats_prefix}_{token(request.node.name)[:40]}"
    yield name
    asyncio.run(delete_streams(nats_url, name))


# -- start-up -----------------------------------------------------------------------------------------


async def test_an_unreachable_broker_is_a_clear_error_within_seconds(tmp_path):
    url = f"nats://alice:s3cret@127.0.0.1:{free_port()}"
    settings = load_settings(app_dir=tmp_path, config_file="-", overrides={"event_bus.url": url}, create=False)
    from flowdapt.events import create_event_bus

    bus = create_event_bus(settings, create_plugin_system(load_entry_points=False, plugins=list(PLUGINS)))
    bus.options = bus.options.model_copy(update={"connect_timeout": 2.0})
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        await bus.start()
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert elapsed < 4, elapsed
    assert f"nats://***@127.0.0.1:{url.rsplit(':', 1)[1]}" in message and "within 2 s" in message
    assert "s3cret" not in message and "alice" not in message
    assert "nats-server" in message and "event_bus.url" in message


async def test_a_broker_without_jetstream_is_refused_clearly(tmp_path):
    server = NatsServer(tmp_path / "store", jetstream=False).start()
    try:
        with pytest.raises(ConfigurationError, match="JetStream is not enabled"):
            await make(server.url, connect_timeout=3).start()
    finally:
        server.stop()


def test_bad_options_are_configuration_errors(tmp_path):
    system = create_plugin_system(load_entry_points=False, plugins=list(PLUGINS))
    settings = load_settings(app_dir=tmp_path, config_file="-", overrides={"event_bus.url": "nats://h:1"}, create=False)
    with pytest.raises(ConfigurationError, match="prefix"):
        system.create("event_buses", "nats", {"prefix": "a.b"}, settings)
    with pytest.raises(ConfigurationError, match="nonsense"):
        system.create("event_buses", "nats", {"nonsense": 1}, settings)
    with pytest.raises(ConfigurationError, match="not a nats"):
        system.create("event_buses", "nats", {"servers": ["http://h:1"]}, settings)
    bus = system.create("event_buses", "nats", {"servers": ["nats://b:2"], "password": "pw"}, settings)
    assert bus.servers == ["nats://h:1", "nats://b:2"] and "pw" not in repr(bus.options)


async def test_streams_have_the_limits_of_the_options(nats_url, prefix):
    bus = make(nats_url, prefix=prefix, max_age=60, max_msgs=1000)
    await bus.start()
    try:
        events = await bus.js.stream_info(f"{prefix}_events")
        queues = await bus.js.stream_info(f"{prefix}_queues")
        assert events.config.max_age == 60 and events.config.max_msgs == 1000
        assert events.config.retention == "interest" and queues.config.retention == "workqueue"
        # A second server with other limits brings them to its own, idempotently.
        again = make(nats_url, prefix=prefix, max_age=120, max_msgs=1000)
        await again.start()
        await again.stop()
        assert (await bus.js.stream_info(f"{prefix}_events")).config.max_age == 120
    finally:
        await bus.stop()


async def test_a_full_work_queue_refuses_clearly(nats_url, prefix):
    bus = make(nats_url, prefix=prefix, max_msgs=3, publish_timeout=2)
    await bus.start()
    try:
        for i in range(3):
            await bus.enqueue("full", ev(i))
        with pytest.raises(EventBusUnavailableError, match="refused work item"):
            await bus.enqueue("full", ev(3))
    finally:
        await bus.stop()


async def test_two_prefixes_on_one_broker_do_not_mix(nats_url, prefix):
    a, b = make(nats_url, prefix=prefix + "a"), make(nats_url, prefix=prefix + "b")
    await a.start()
    await b.start()
    try:
        got_a, got_b, q_b = [], [], []
        await a.subscribe(lambda e: got_a.append(e.data))
        await b.subscribe(lambda e: got_b.append(e.data), group="g")
        await b.consume("q", lambda e: q_b.append(e.data))
        await a.publish(ev("for a"))
        await a.enqueue("q", ev("for a's queue"))
        await b.publish(ev("for b"))
        await wait_until(lambda: got_a and got_b)
        await asyncio.sleep(0.5)
        assert got_a == ["for a"] and got_b == ["for b"] and q_b == []
    finally:
        await a.stop()
        await b.stop()
        for p in (prefix + "a", prefix + "b"):
            await delete_streams(nats_url, p)


# -- faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("keep_store", [True, False], ids=["same-store", "store-lost"])
async def test_the_broker_restarted_mid_load(tmp_path, keep_store, caplog):
    """Stop the broker under load and start it again on the same port: the buses reconnect on
    their own, a publish during the outage waits for it (or fails clearly), delivery resumes."""
    caplog.set_level(logging.INFO, "flowdapt_nats")
    server = NatsServer(tmp_path / "store").start()
    publisher = make(server.url, prefix="restart", password="hunter2", publish_timeout=15)
    publisher.options = publisher.options.model_copy(update={"password": None})
    worker = make(server.url, prefix="restart")
    await publisher.start()
    await worker.start()
    fanout, group, queue = [], [], []
    try:
        await worker.subscribe(lambda e: fanout.append(e.data))
        await worker.subscribe(lambda e: group.append(e.data), group="triggers")
        await worker.consume("runs", lambda e: queue.append(e.data))
        for i in range(20):
            await publisher.publish(ev(i))
            await publisher.enqueue("runs", ev(i))
        await wait_until(lambda: len(fanout) == 20 and len(group) == 20 and len(queue) == 20)

        server.stop()
        # While it is down: a publish with a short timeout fails clearly instead of hanging...
        short = publisher.options.model_copy(update={"publish_timeout": 1.0})
        publisher.options, long_options = short, publisher.options
        started = time.monotonic()
        with pytest.raises(EventBusUnavailableError, match="did not take event"):
            await publisher.publish(ev("lost"))
        assert time.monotonic() - started < 3
        publisher.options = long_options
        # ...and one with a longer timeout goes out once the broker is back.
        pending = asyncio.ensure_future(publisher.publish(ev("during outage")))
        publisher.publish_nowait(ev("nowait during outage"))
        await asyncio.sleep(1.0)
        if not keep_store:
            server.store_dir = tmp_path / "fresh-store"
        server.start()
        await asyncio.wait_for(pending, 20)
        # Both buses are back (fan-out reaches a subscriber once its connection is), and the
        # worker's consumers exist again (made anew when the broker lost its store; until then a
        # group misses what is published, as nothing holds it).
        await wait_until(lambda: worker._nc.is_connected and publisher._nc.is_connected, what="the reconnects")
        deadline = time.monotonic() + 15
        while True:
            try:
                for sub in list(worker._subs):
                    if hasattr(sub, "consumer"):
                        await worker.js.consumer_info(sub.stream, sub.consumer)
                break
            except Exception:
                assert time.monotonic() < deadline, "the worker's consumers did not come back"
                await asyncio.sleep(0.1)
        for i in range(20, 40):
            await publisher.publish(ev(i))
            await publisher.enqueue("runs", ev(i))
        await wait_until(lambda: {*range(20, 40)} <= set(fanout) and {*range(20, 40)} <= set(group)
                         and {*range(20, 40)} <= set(queue), timeout=30,
                         what=f"delivery after the restart (fan-out {fanout[-5:]}, group {group[-5:]}, queue {queue[-5:]})")
        # The events published while the broker was away went out once it was back. Fan-out is at
        # most once (a subscriber whose connection is not back yet misses them), a retried publish
        # reaches it once at most; the group's durable consumer has them when the broker kept its store.
        assert fanout.count("during outage") <= 1 and fanout.count("nowait during outage") <= 1
        if keep_store:
            await wait_until(lambda: "during outage" in group and "nowait during outage" in group)
            await asyncio.sleep(0.5)
            assert group.count("during outage") == 1 and group.count("nowait during outage") == 1
        assert "lost" not in fanout and "lost" not in group
        assert "reconnected to NATS" in caplog.text and "hunter2" not in caplog.text
    finally:
        await publisher.stop()
        await worker.stop()
        server.stop()


KILLED_MEMBER = textwrap.dedent(
    """
    import asyncio, sys
    from flowdapt_nats.bus import NatsEventBus, NatsEventBusOptions

    async def main():
        bus = NatsEventBus([sys.argv[1]], NatsEventBusOptions(prefix=sys.argv[2], ack_wait=1.0, max_bytes=8388608))
        await bus.start()

        async def handler(event):
            print("took", event.data, flush=True)
            await asyncio.Event().wait()  # killed before it finishes

        await bus.subscribe(handler, group="triggers")
        await bus.consume("runs", handler)
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_a_member_killed_mid_handler_loses_nothing(nats_url, prefix):
    """SIGKILL a process that took a group event and a work item: after ack_wait both reach
    another member, once."""
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_MEMBER, nats_url, prefix], stdout=subprocess.PIPE, text=True
    )
    bus = make(nats_url, prefix=prefix, ack_wait=1.0)
    await bus.start()
    try:
        assert proc.stdout.readline().strip() == "ready"
        sent, item = ev("event"), ev("run")
        await bus.publish(sent)
        await bus.enqueue("runs", item)
        took = {proc.stdout.readline().strip(), proc.stdout.readline().strip()}
        assert took == {"took event", "took run"}
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        group, queue = [], []
        await bus.subscribe(lambda e: group.append(e), group="triggers")
        await bus.consume("runs", lambda e: queue.append(e))
        started = time.monotonic()
        await wait_until(lambda: group and queue, timeout=10, what="redelivery after ack_wait")
        assert time.monotonic() - started < 5
        await asyncio.sleep(1.5)
        assert [e.id for e in group] == [sent.id] and [e.id for e in queue] == [item.id]
    finally:
        if proc.poll() is None:
            proc.kill()
        await bus.stop()


async def test_a_long_handler_is_not_delivered_twice(nats_url, prefix):
    """A handler running past ack_wait keeps its event (the bus tells the broker it is in progress)."""
    a, b = make(nats_url, prefix=prefix, ack_wait=0.5), make(nats_url, prefix=prefix, ack_wait=0.5)
    await a.start()
    await b.start()
    try:
        calls = []

        async def slow(e):
            calls.append(e.data)
            await asyncio.sleep(2.0)

        await a.subscribe(slow, group="g")
        await b.subscribe(slow, group="g")
        await a.publish(ev("long"))
        await asyncio.sleep(3.0)
        assert calls == ["long"]
    finally:
        await a.stop()
        await b.stop()


# -- figures ------------------------------------------------------------------------------------------


async def test_publish_to_handler_latency(nats_url, prefix, capsys):
    """Publish -> handler on the local broker, fan-out (core subscription) and group (pull consumer)."""
    a, b = make(nats_url, prefix=prefix), make(nats_url, prefix=prefix)
    await a.start()
    await b.start()
    try:
        fan, grp = {}, {}
        await b.subscribe(lambda e: fan.setdefault(e.data, time.perf_counter()))
        await b.subscribe(lambda e: grp.setdefault(e.data, time.perf_counter()), group="g")
        sent = {}
        n = 300
        for i in range(n):
            sent[i] = time.perf_counter()
            await a.publish(ev(i))
            await asyncio.sleep(0.002)
        await wait_until(lambda: len(fan) == n and len(grp) == n)

        def ms(got):
            lat = sorted((got[i] - sent[i]) * 1000 for i in range(n))
            return statistics.median(lat), lat[int(n * 0.99) - 1]

        (f50, f99), (g50, g99) = ms(fan), ms(grp)
        started = time.perf_counter()
        for i in range(n):
            await a.publish(ev(f"t{i}"))
        rate = n / (time.perf_counter() - started)
        fan.clear()
        started = time.perf_counter()
        for i in range(3000):
            a.publish_nowait(ev(i))
        await wait_until(lambda: len(fan) == 3000, timeout=60)
        nowait_rate = 3000 / (time.perf_counter() - started)
        assert list(fan) == list(range(3000))  # pipelined, still in order
        with capsys.disabled():
            print(
                f"\n[nats latency] fan-out p50 {f50:.2f} ms p99 {f99:.2f} ms; group p50 {g50:.2f} ms "
                f"p99 {g99:.2f} ms; acknowledged publish {rate:.0f}/s; publish_nowait to a handler {nowait_rate:.0f}/s"
            )
        assert f50 < 50 and g50 < 50
    finally:
        await a.stop()
        await b.stop()


async def test_a_stopped_bus_refuses_publish_and_drops_publish_nowait(nats_url, prefix):
    bus = make(nats_url, prefix=prefix)
    await bus.start()
    await bus.stop()
    with pytest.raises(EventBusUnavailableError, match="not started"):
        await bus.publish(ev("after stop"))
    bus.publish_nowait(ev("after stop"))  # from a run listener during shutdown: never raises
    assert bus.dropped == 1
    await bus.stop()  # stopping twice is harmless


def test_flowdapt_run_with_an_unreachable_broker_says_so_and_exits(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDAPT__")}
    port = free_port()
    env.update({
        "FLOWDAPT__APP_DIR": str(tmp_path / "app"),
        "FLOWDAPT__EVENT_BUS__URL": f"nats://127.0.0.1:{port}",
        "FLOWDAPT__EVENT_BUS__OPTIONS": '{"connect_timeout": 2}',
        "FLOWDAPT__API__PORT": str(free_port()),
    })
    started = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("flowdapt")), "run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0 and time.monotonic() - started < 30
    out = proc.stdout + proc.stderr
    assert f"cannot connect to NATS at nats://127.0.0.1:{port} within 2 s" in out
    assert "Traceback" not in out
