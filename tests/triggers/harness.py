"""A store, a bus, a manual clock and a trigger service wired together, for the trigger tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from flowdapt.builtin.triggers.clock import ManualClock
from flowdapt.builtin.triggers.service import LAST_RUN, TriggerService
from flowdapt.events import CHANNEL_TRIGGERS, RUN_QUEUE, Event, create_event_bus, envelope
from flowdapt.resources.loader import parse_resource

T0 = datetime(2030, 1, 1, 0, 0, tzinfo=UTC)


def rule(name: str, type_: str, rule_, action=None, **spec) -> dict:
    return {
        "kind": "trigger_rule",
        "metadata": {"name": name, **spec.pop("metadata", {})},
        "spec": {"type": type_, "rule": rule_, "action": action or {"target": "run_workflow", "parameters": {"workflow": "wf"}}, **spec},
    }


def naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


class Harness:
    """A store, a bus, a clock and a trigger service, plus a consumer that records run requests."""

    def __init__(self, settings, plugins, store=None, bus=None, clock=None):
        self.settings, self.plugins = settings, plugins
        self.store = store or plugins.create("document_stores", "memory", {}, settings)
        self.bus = bus or create_event_bus(settings, plugins)
        self.clock = clock or ManualClock(T0)
        self.requests: list[Event] = []
        self.reports: list[Event] = []
        self.service = TriggerService(self.store, self.bus, plugins, settings, clock=self.clock)

    async def __aenter__(self):
        await self.store.open()
        await self.workflow("wf")
        await self.bus.start()
        await self.bus.consume(RUN_QUEUE, self.requests.append)
        await self.bus.subscribe(self.reports.append, channels=[CHANNEL_TRIGGERS])
        return self

    async def __aexit__(self, *exc):
        await self.service.stop()
        await self.bus.stop()
        await self.store.close()

    async def add(self, doc: dict, created_at: datetime = T0, last_run: str | None = None):
        """Store a rule (and the workflow its run_workflow action names, which must exist)."""
        action = doc["spec"].get("action") or {}
        if action.get("target") == "run_workflow":
            await self.workflow(action.get("parameters", {}).get("workflow", "wf"))
        resource = parse_resource(doc)
        resource.metadata.created_at = resource.metadata.updated_at = naive(created_at)
        if last_run:
            resource.metadata.annotations[LAST_RUN] = last_run
        created = await self.store.create(resource)
        if self.service.running:
            await self.bus.publish(envelope.resource_applied(created, created=True))
            await self.settle()
        return created

    async def workflow(self, name: str) -> None:
        """A workflow for run_workflow actions to name (they check that it exists); the requests
        go to ``self.requests``, so it never runs."""
        if isinstance(name, str) and await self.store.get("workflow", name) is None:  # harnesses may share a store
            await self.store.create(
                parse_resource({"kind": "workflow", "metadata": {"name": name}, "spec": {"stages": [{"name": "a", "target": "builtins.print"}]}})
            )

    async def settle(self):
        for _ in range(5):
            await asyncio.sleep(0)
        await self.service.wait_idle()
        for _ in range(5):
            await asyncio.sleep(0)

    async def at(self, when: datetime):
        self.clock.set(when)
        await self.settle()

    def dues(self) -> list[str]:
        return [r.data["triggered_by"]["due"] for r in self.requests]
