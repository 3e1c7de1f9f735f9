"""Trigger fire history on PostgreSQL: two trigger services (two stores, as two servers would
have) on one schema fire the same rule at the same time; every fire lands in the one history."""

from __future__ import annotations

import asyncio

import pytest

from flowdapt.builtin.triggers.history import stored
from flowdapt.builtin.triggers.service import TriggerService
from flowdapt.events import create_event_bus
from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.resources.loader import parse_resource
from flowdapt.settings import load_settings

pytestmark = pytest.mark.timeout(120)

PLUGINS = [*BUILTIN_PLUGINS, ("postgres", "flowdapt_postgres.plugin")]
RULE = {
    "kind": "trigger_rule",
    "metadata": {"name": "shared"},
    "spec": {"type": "condition", "rule": {"eq": [{"var": "type"}, "never.sent"]}, "action": {"target": "print_event", "parameters": {}}},
}


async def test_two_services_merge_their_fires_into_one_history(postgres_dsn, schema, tmp_path):
    settings = load_settings(tmp_path / "app", overrides={"triggers.history_size": 100, "triggers.resync_interval": 0})
    plugins = create_plugin_system(load_entry_points=False, plugins=PLUGINS)
    stores = [plugins.create("document_stores", "postgres", {"dsn": postgres_dsn, "schema": schema}, settings) for _ in range(2)]
    buses = [create_event_bus(settings, plugins) for _ in range(2)]
    for store, bus in zip(stores, buses, strict=True):
        await store.open()
        await bus.start()
    await stores[0].create(parse_resource(RULE))
    services = [TriggerService(s, b, plugins, settings, identity=f"server-{i}") for i, (s, b) in enumerate(zip(stores, buses, strict=True))]
    try:
        for service in services:
            await service.start()
        answers = await asyncio.gather(*(services[i % 2].fire("shared") for i in range(30)))
        assert all(a["fired"] for a in answers)
        records = stored(await stores[0].get("trigger_rule", "shared"))
        assert len(records) == 30 and len({r["id"] for r in records}) == 30
        assert {r["server"] for r in records} == {"server-0", "server-1"}
        assert all(r["outcome"] == "fired" and r["manual"] for r in records)
        seen = await services[1].history("shared")
        assert [r["id"] for r in seen["items"]] == [r["id"] for r in records]
    finally:
        for service in services:
            await service.stop()
        for store, bus in zip(stores, buses, strict=True):
            await bus.stop()
            await store.close()
