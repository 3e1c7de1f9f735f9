"""The trigger service with a manual clock: schedules, misfires, conditions, cache, loops, manual fires."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from flowdapt.builtin.triggers.service import LAST_RUN
from flowdapt.events import TRIGGER_FIRED, TRIGGER_RATE_LIMITED, WORKFLOW_FINISHED, Event, envelope
from flowdapt.resources.loader import parse_resource
from flowdapt.resources.run import RunState, WorkflowRun

from .harness import T0, Harness, naive, rule


@pytest.fixture
async def h(settings, plugins):
    async with Harness(settings, plugins) as harness:
        yield harness


async def test_schedule_fires_at_each_due_time_not_before(h):
    await h.add(rule("every5", "schedule", ["*/5 * * * *"]))
    await h.service.start()
    await h.settle()
    assert h.service.status("every5")["next_fire"] == "2030-01-01T00:05:00"
    await h.at(T0 + timedelta(minutes=4, seconds=59))
    assert h.requests == []
    await h.at(T0 + timedelta(minutes=5))
    await h.at(T0 + timedelta(minutes=7))
    await h.at(T0 + timedelta(minutes=10))
    assert h.dues() == ["2030-01-01T00:05:00", "2030-01-01T00:10:00"]
    assert [r.data["identifier"] for r in h.requests] == ["wf", "wf"]
    assert all(r.data["triggered_by"]["rule"] == "every5" for r in h.requests)
    status = h.service.status("every5")
    assert status["last_fire"] == "2030-01-01T00:10:00" and status["next_fire"] == "2030-01-01T00:15:00"
    stored = await h.store.get("trigger_rule", "every5")
    assert stored.metadata.annotations[LAST_RUN] == "2030-01-01T00:10:00"
    fired = [e for e in h.reports if e.type == TRIGGER_FIRED]
    assert [e.data["due"] for e in fired] == h.dues()


async def test_schedule_in_a_time_zone(h):
    await h.add(rule("berlin9", "schedule", "0 9 * * *", timezone="Europe/Berlin"))
    await h.service.start()
    await h.settle()
    assert h.service.status("berlin9")["next_fire"] == "2030-01-01T08:00:00"


@pytest.mark.parametrize(("misfire", "expected"), [("fire_once", ["2030-01-01T03:00:00"]), ("skip", [])])
async def test_misfire_after_downtime(h, misfire, expected):
    # Last fired at 00:05; the service comes back at 03:00:30 after missing 35 due times.
    await h.add(rule("every5", "schedule", ["*/5 * * * *"], misfire=misfire), last_run="2030-01-01T00:05:00")
    h.clock.set(T0 + timedelta(hours=3, seconds=30))
    await h.service.start()
    await h.settle()
    assert h.dues() == expected
    assert h.service.status("every5")["next_fire"] == "2030-01-01T03:05:00"
    await h.at(T0 + timedelta(hours=3, minutes=5))
    assert h.dues() == expected + ["2030-01-01T03:05:00"]


async def test_a_new_rule_does_not_fire_for_times_before_it_existed(h):
    await h.add(rule("hourly", "schedule", ["0 * * * *"]), created_at=T0 + timedelta(minutes=30))
    h.clock.set(T0 + timedelta(minutes=31))
    await h.service.start()
    await h.settle()
    assert h.requests == []
    assert h.service.status("hourly")["next_fire"] == "2030-01-01T01:00:00"


async def test_condition_fires_on_matching_events_without_database_queries(h, monkeypatch):
    monkeypatch.setattr("flowdapt.builtin.triggers.service.PERSIST_DELAY", 0.05)
    await h.add(
        rule(
            "on_train",
            "condition",
            {
                "and": [
                    {"eq": [{"var": "type"}, WORKFLOW_FINISHED]},
                    {"eq": [{"var": "data.workflow"}, "train"]},
                    {"gt": [{"var": "data.result.accuracy"}, 0.8]},
                ]
            },
            {"target": "run_workflow", "parameters": {"workflow": "deploy", "input": {"model": {"var": "data.result"}}}},
        )
    )
    await h.service.start()
    await h.settle()
    calls = []
    for method in ("get", "list"):
        original = getattr(h.store, method)

        async def counted(*args, _original=original, _name=method, **kwargs):
            calls.append(_name)
            return await _original(*args, **kwargs)

        monkeypatch.setattr(h.store, method, counted)
    for workflow, accuracy in [("train", 0.9), ("train", 0.5), ("other", 0.99)] * 30:
        run = WorkflowRun(workflow=workflow, state=RunState.finished, result={"accuracy": accuracy})
        await h.bus.publish(envelope.workflow_finished(run))
    await h.settle()
    assert calls == []
    assert len(h.requests) == 30
    assert h.requests[0].data["identifier"] == "deploy"
    assert h.requests[0].data["payload"] == {"model": {"accuracy": 0.9}}
    assert h.requests[0].headers["trigger_chain"] == ["on_train"]
    await asyncio.sleep(0.3)  # the last fire is written to the database off the event path
    stored = await h.store.get("trigger_rule", "on_train")
    assert stored.metadata.annotations[LAST_RUN] == "2030-01-01T00:00:00"


async def test_rule_cache_follows_resource_events(h):
    await h.service.start()
    cond = {"eq": [{"var": "data.x"}, 1]}
    created = await h.add(rule("late", "condition", cond))
    await h.bus.publish(Event(channel="c", source="s", data={"x": 1}))
    await h.settle()
    assert len(h.requests) == 1
    # updated: now matches x == 2
    created.spec.rule = {"eq": [{"var": "data.x"}, 2]}
    created.metadata.updated_at = naive(T0 + timedelta(seconds=1))
    updated = await h.store.update(created)
    await h.bus.publish(envelope.resource_applied(updated, created=False))
    await h.bus.publish(Event(channel="c", source="s", data={"x": 1}))
    await h.bus.publish(Event(channel="c", source="s", data={"x": 2}))
    await h.settle()
    assert len(h.requests) == 2
    deleted = await h.store.delete("trigger_rule", "late")
    await h.bus.publish(envelope.resource_deleted(deleted))
    await h.bus.publish(Event(channel="c", source="s", data={"x": 2}))
    await h.settle()
    assert len(h.requests) == 2
    assert h.service.status("late") is None


async def test_a_rule_that_triggers_itself_is_rate_limited_and_reported(h, settings):
    # Fires on its own trigger_fired events: a loop. Loop protection allows loop_max_fires per window.
    await h.add(
        rule(
            "echo",
            "condition",
            {"or": [{"eq": [{"var": "type"}, "kick"]}, {"eq": [{"var": "type"}, TRIGGER_FIRED]}]},
            {"target": "print_event", "parameters": {}},
        )
    )
    await h.service.start()
    await h.bus.publish(Event(channel="c", source="s", type="kick"))
    for _ in range(50):
        await h.settle()
    limit = settings.triggers.loop_max_fires
    fired = [e for e in h.reports if e.type == TRIGGER_FIRED]
    limited = [e for e in h.reports if e.type == TRIGGER_RATE_LIMITED]
    assert len(fired) == 1 + limit
    assert len(limited) == 1 and limited[0].data["rule"] == "echo"
    status = h.service.status("echo")
    assert status["rate_limited"] and "triggers itself" in status["last_error"]
    # A fresh event from outside the loop still fires; after the window the loop may run again.
    await h.bus.publish(Event(channel="c", source="s", type="kick"))
    await h.settle()
    assert len([e for e in h.reports if e.type == TRIGGER_FIRED]) == 2 + limit
    h.clock.advance(settings.triggers.loop_window + 1)
    await h.bus.publish(Event(channel="c", source="s", type="kick"))
    for _ in range(50):
        await h.settle()
    assert len([e for e in h.reports if e.type == TRIGGER_FIRED]) > 2 + limit


async def test_manual_fire_and_dry_run(h):
    await h.add(rule("cond", "condition", {"eq": [{"var": "data.workflow"}, "train"]},
                     {"target": "run_workflow", "parameters": {"workflow": "wf", "input": {"w": {"var": "data.workflow"}}}}))
    await h.add(rule("sched", "schedule", ["0 0 1 1 *"]))
    await h.service.start()
    answer = await h.service.fire("cond", event={"type": "x", "data": {"workflow": "nope"}}, dry_run=True)
    assert answer["matched"] is False and answer["fired"] is False
    answer = await h.service.fire("cond", event={"type": "x", "data": {"workflow": "train"}})
    assert answer["matched"] is True and answer["fired"] is True
    answer = await h.service.fire("sched")
    assert answer["fired"] is True and answer["result"]["workflow"] == "wf"
    await h.settle()
    assert [r.data["payload"] for r in h.requests] == [{"w": "train"}, {}]
    # a manual fire does not move the schedule's bookkeeping
    assert h.service.status("sched")["last_fire"] is None


async def test_a_stored_rule_that_no_longer_compiles_is_reported_not_fired(h):
    doc = rule("old", "condition", {"eq": [1, 1]}, {"target": "run_workflow", "parameters": {"workflow": "wf"}})
    resource = parse_resource(doc)
    resource.spec.action.target = "some.module.function"  # written before the allowlist
    await h.store.create(resource)
    await h.service.start()
    await h.bus.publish(Event(channel="c", source="s"))
    await h.settle()
    assert h.requests == []
    status = h.service.status("old")
    assert status["active"] is False and "unknown action 'some.module.function'" in status["error"]


async def test_the_originals_schedule_files_fire_unchanged(h):
    from pathlib import Path

    import yaml

    for name in ("retrain", "feature_update"):
        await h.add(yaml.safe_load((Path(__file__).parent / "originals" / f"{name}.yaml").read_text()))
    await h.service.start()
    await h.settle()
    for minute in range(1, 16):
        await h.at(T0 + timedelta(minutes=minute))
    fired = sorted((r.data["identifier"], r.data["triggered_by"]["due"][11:16]) for r in h.requests)
    assert fired == [("create_features", "00:01"), ("train", "00:05"), ("train", "00:10"), ("train", "00:15")]


async def test_a_paused_service_leaves_due_times_and_events_alone(settings, plugins):
    draining = False
    async with Harness(settings, plugins) as h:
        h.service.paused = lambda: draining
        await h.add(rule("every5", "schedule", ["*/5 * * * *"]))
        await h.add(rule("cond", "condition", {"eq": [{"var": "type"}, "x"]}))
        await h.service.start()
        draining = True
        await h.at(T0 + timedelta(minutes=5))
        await h.bus.publish(Event(channel="c", source="s", type="x"))
        await h.settle()
        assert h.requests == []
        stored = await h.store.get("trigger_rule", "every5")
        assert LAST_RUN not in stored.metadata.annotations  # left for another server to claim
