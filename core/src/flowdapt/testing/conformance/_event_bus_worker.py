"""A separate OS process with its own event bus, as another server would have (started by the
event-bus suite's cross-process case).

``python -m flowdapt.testing.conformance._event_bus_worker SPEC SYNC_DIR INDEX``: builds the bus from
SPEC (``backends.Backend.spec``, through the registry), subscribes without a group to ``workflows``,
with the group ``xproc`` and as a consumer of the queue ``xproc``, touches ``ready-INDEX``, and
appends one JSON line per delivery to ``got-INDEX.jsonl`` (``{"how": "fanout"|"group"|"queue",
"id": ..., "data": ...}``) until ``stop`` appears.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path


async def main(spec: dict, sync: Path, index: int) -> None:
    from flowdapt.testing.conformance.backends import from_spec

    bus = from_spec(spec)
    await bus.start()
    out = (sync / f"got-{index}.jsonl").open("a", buffering=1)

    def recorder(how: str):
        def record(event) -> None:
            out.write(json.dumps({"how": how, "id": str(event.id), "data": event.data}) + "\n")

        return record

    await bus.subscribe(recorder("fanout"), channels=["workflows"])
    await bus.subscribe(recorder("group"), channels=["workflows"], group="xproc")
    await bus.consume("xproc", recorder("queue"))
    (sync / f"ready-{index}").touch()
    while not (sync / "stop").exists():
        await asyncio.sleep(0.02)
    await bus.stop()
    out.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
