"""The in-memory event bus: fan-out, groups, work queues, isolation of failing handlers, streams."""

from __future__ import annotations

import asyncio

import pytest

from flowdapt.errors import ConfigurationError, PluginNotFoundError
from flowdapt.events import (
    CHANNEL_RESOURCES,
    CHANNEL_WORKFLOWS,
    WORKFLOW_FINISHED,
    Event,
    create_event_bus,
    envelope,
)
from flowdapt.resources.run import RunState, WorkflowRun


async def settle(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def make(channel: str = CHANNEL_WORKFLOWS, **data) -> Event:
    return Event(channel=channel, source="test", type="test.event", data=data)


@pytest.fixture
async def bus(settings, plugins):
    bus = create_event_bus(settings, plugins)
    await bus.start()
    yield bus
    await bus.stop()


async def test_publish_fans_out_to_every_subscriber_in_order(bus):
    seen_a, seen_b = [], []
    await bus.subscribe(lambda e: seen_a.append(e.data["i"]))

    async def handler(e):
        seen_b.append(e.data["i"])

    await bus.subscribe(handler)
    for i in range(50):
        await bus.publish(make(i=i))
    await settle()
    assert seen_a == list(range(50))
    assert seen_b == list(range(50))


async def test_channels_filter(bus):
    seen = []
    await bus.subscribe(lambda e: seen.append(e.channel), channels=[CHANNEL_RESOURCES])
    await bus.publish(make(CHANNEL_WORKFLOWS))
    await bus.publish(make(CHANNEL_RESOURCES))
    await settle()
    assert seen == [CHANNEL_RESOURCES]


async def test_a_group_gets_each_event_once(bus):
    a, b, everyone = [], [], []
    await bus.subscribe(lambda e: a.append(e.data["i"]), group="triggers")
    await bus.subscribe(lambda e: b.append(e.data["i"]), group="triggers")
    await bus.subscribe(lambda e: everyone.append(e.data["i"]))
    for i in range(10):
        await bus.publish(make(i=i))
    await settle()
    assert sorted(a + b) == list(range(10))
    assert a and b  # spread over the members
    assert everyone == list(range(10))


async def test_work_queue_gives_each_item_to_one_consumer(bus):
    taken: list[tuple[str, int]] = []

    def worker(who):
        async def handle(e):
            taken.append((who, e.data["i"]))
            await asyncio.sleep(0.001)  # a consumer busy with an item leaves the next to the other

        return handle

    await bus.consume("jobs", worker("x"))
    await bus.consume("jobs", worker("y"))
    for i in range(20):
        await bus.enqueue("jobs", make(i=i))
    for _ in range(100):
        if len(taken) == 20:
            break
        await asyncio.sleep(0.002)
    assert sorted(i for _, i in taken) == list(range(20))
    assert {who for who, _ in taken} == {"x", "y"}


async def test_items_wait_for_a_consumer(bus):
    await bus.enqueue("later", make(i=1))
    got = []
    await bus.consume("later", lambda e: got.append(e.data["i"]))
    await settle()
    assert got == [1]


async def test_a_failing_handler_does_not_stop_delivery(bus, caplog):
    seen = []

    def broken(e):
        raise RuntimeError("boom")

    await bus.subscribe(broken)
    await bus.subscribe(lambda e: seen.append(e.data["i"]))
    await bus.publish(make(i=1))
    await bus.publish(make(i=2))
    await settle()
    assert seen == [1, 2]
    assert "boom" in caplog.text


async def test_closed_subscription_gets_nothing(bus):
    seen = []
    sub = await bus.subscribe(lambda e: seen.append(1))
    await sub.close()
    await bus.publish(make())
    await settle()
    assert seen == []


async def test_stream_drops_oldest_for_a_slow_reader(bus):
    async with bus.stream(maxsize=3) as events:
        for i in range(5):
            bus.publish_nowait(make(i=i))
        first = await asyncio.wait_for(anext(events), 1)
        assert first.data["i"] == 2 and first.headers["dropped"] == 2
        assert (await anext(events)).data["i"] == 3


async def test_publish_nowait_from_sync_code(bus):
    got = asyncio.get_running_loop().create_future()
    await bus.subscribe(lambda e: got.set_result(e.type))
    bus.publish_nowait(make())
    assert await asyncio.wait_for(got, 1) == "test.event"


def test_unknown_scheme_names_the_plugin_problem(settings, plugins):
    settings.event_bus.url = "amqp://localhost"
    with pytest.raises(PluginNotFoundError, match="no event bus named 'amqp'"):
        create_event_bus(settings, plugins)
    settings.event_bus.url = "nonsense"
    with pytest.raises(ConfigurationError, match="scheme://"):
        create_event_bus(settings, plugins)


def test_memory_bus_refuses_options(settings, plugins):
    settings.event_bus.options = {"host": "x"}
    with pytest.raises(ConfigurationError, match="event bus 'memory'.*host"):
        create_event_bus(settings, plugins)


def test_finished_event_keeps_the_original_shape_and_caps_the_result():
    run = WorkflowRun(workflow="train", state=RunState.finished, result={"accuracy": 0.9})
    event = envelope.workflow_finished(run)
    doc = event.as_dict()
    assert set(doc) >= {"id", "time", "headers", "correlation_id", "reply_channel", "trace_parent", "channel", "source", "type", "data"}
    assert doc["type"] == WORKFLOW_FINISHED == "com.event.workflow.workflow_finished"
    assert (doc["channel"], doc["source"]) == ("workflows", "compute")
    assert doc["data"]["result"] == {"accuracy": 0.9}
    assert doc["data"]["state"] == "finished" and doc["data"]["workflow"] == "train"
    assert isinstance(doc["id"], str) and "+" not in doc["time"]  # naive UTC string
    big = WorkflowRun(workflow="w", state=RunState.finished, result="x" * 100_000)
    data = envelope.workflow_finished(big, max_result_bytes=1000).data
    assert data["result"] is None and data["result_truncated"] is True and data["result_bytes"] > 1000
    assert Event.from_json(event.to_json()).model_dump() == event.model_dump()
