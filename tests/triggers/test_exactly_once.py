"""Two trigger services sharing one SQLite database fire each due time exactly once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import timedelta

from flowdapt.builtin.triggers.clock import ManualClock
from flowdapt.builtin.triggers.service import LAST_RUN
from flowdapt.resources.loader import parse_resource

from .harness import T0, Harness, naive, rule


async def test_two_services_one_sqlite_file_fire_once_per_due_time(settings, plugins, tmp_path):
    db = str(tmp_path / "shared.db")
    clock = ManualClock(T0)
    store_a = plugins.create("document_stores", "sqlite", {"path": db}, settings)
    store_b = plugins.create("document_stores", "sqlite", {"path": db}, settings)
    async with Harness(settings, plugins, store=store_a, clock=clock) as a, Harness(settings, plugins, store=store_b, clock=clock) as b:
        for name, cron in [("every_second", ["* * * * * *"]), ("every_3s", ["*/3 * * * * *"]), ("two_lists", ["*/2 * * * * *", "*/5 * * * * *"])]:
            await a.add(rule(name, "schedule", cron, {"target": "run_workflow", "parameters": {"workflow": name}}))
        await a.service.start()
        await b.service.start()
        for second in range(1, 31):
            clock.set(T0 + timedelta(seconds=second))
            await asyncio.gather(a.settle(), b.settle())
        fired = Counter((r.data["identifier"], r.data["triggered_by"]["due"]) for r in a.requests + b.requests)
        assert max(fired.values()) == 1, [k for k, n in fired.items() if n > 1]
        expected = {
            "every_second": list(range(1, 31)),
            "every_3s": [s for s in range(1, 31) if s % 3 == 0],
            "two_lists": [s for s in range(1, 31) if s % 2 == 0 or s % 5 == 0],
        }
        for name, seconds in expected.items():
            dues = sorted(due for wf, due in fired if wf == name)
            assert dues == [naive(T0 + timedelta(seconds=s)).isoformat() for s in seconds], name
        # Both servers did some of the work, and both know the last fire.
        assert a.requests and b.requests
        stored = await store_a.get("trigger_rule", "every_second")
        assert stored.metadata.annotations[LAST_RUN] == "2030-01-01T00:00:30"
        assert a.service.status("every_second")["last_fire"] == b.service.status("every_second")["last_fire"] == "2030-01-01T00:00:30"


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from flowdapt.events import RUN_QUEUE, create_event_bus
    from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
    from flowdapt.settings import load_settings
    from flowdapt.builtin.triggers.service import TriggerService

    async def main(app_dir, db, seconds):
        settings = load_settings(app_dir=app_dir, overrides={"triggers.resync_interval": 0})
        plugins = create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))
        store = plugins.create("document_stores", "sqlite", {"path": db}, settings)
        bus = create_event_bus(settings, plugins)
        await store.open(); await bus.start()
        dues = []
        await bus.consume(RUN_QUEUE, lambda e: dues.append(e.data["triggered_by"]["due"]))
        service = TriggerService(store, bus, plugins, settings)
        await service.start()
        await asyncio.sleep(seconds)
        await service.stop(); await bus.stop(); await store.close()
        print(json.dumps(dues))

    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
    """
)


async def test_two_processes_real_clock_fire_once_per_second(settings, plugins, tmp_path):
    db = str(tmp_path / "shared.db")
    store = plugins.create("document_stores", "sqlite", {"path": db}, settings)
    await store.open()
    await store.create(parse_resource(rule("tick", "schedule", ["* * * * * *"])))
    await store.create(parse_resource({"kind": "workflow", "metadata": {"name": "wf"}, "spec": {"stages": [{"name": "a", "target": "builtins.print"}]}}))
    await store.close()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, str(tmp_path / f"app{i}"), db, "4",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    outputs = [await p.communicate() for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
    per_process = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    everything = per_process[0] + per_process[1]
    assert len(everything) == len(set(everything)), per_process  # no due time fired twice
    assert len(everything) >= 2  # both processes ran ~4 s of a 1-second schedule
    # Both processes wrote their fires into the one history (compare-and-set merges, none lost).
    from flowdapt.builtin.triggers.history import stored

    await store.open()
    records = stored(await store.get("trigger_rule", "tick"))
    await store.close()
    assert sorted(r["due"] for r in records) == sorted(everything)[-20:]
    assert len({r["id"] for r in records}) == len(records) and all(r["outcome"] == "fired" for r in records)
