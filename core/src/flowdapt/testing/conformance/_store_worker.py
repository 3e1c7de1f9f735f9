"""A separate OS process racing others on one store (started by the document-store suite).

``python -m flowdapt.testing.conformance._store_worker SPEC SYNC_DIR INDEX ACTION ARG...``: builds
the store from SPEC (``backends.Backend.spec``: name, options, plugins, through the registry), touches ``started-INDEX``, waits for ``go-open``, opens the store,
touches ``ready-INDEX``, waits for ``go``, does ACTION and prints one JSON line with the outcome.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path


def wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.0005)


async def main(spec: dict, sync: Path, index: str, action: str, args: list[str]) -> dict:
    from flowdapt.errors import ConflictError
    from flowdapt.resources.loader import parse_resource
    from flowdapt.testing.conformance.backends import from_spec

    store = from_spec(spec)
    (sync / f"started-{index}").touch()
    wait_for(sync / "go-open")
    await store.open()
    try:
        (sync / f"ready-{index}").touch()
        wait_for(sync / "go")
        if action == "create":
            kind, name = args
            doc = {
                "kind": kind,
                "metadata": {"name": name, "annotations": {"writer": index}},
                "spec": json.loads(args_spec(kind)),
            }
            try:
                created = await store.create(parse_resource(doc))
            except ConflictError as exc:
                return {"outcome": "conflict", "error": str(exc)}
            return {"outcome": "won", "uid": str(created.uid)}
        if action == "cas":
            kind, uid, key = args
            won = await store.compare_and_set_annotation(kind, uid, key, None, f"writer-{index}")
            return {"outcome": "won" if won else "lost"}
        if action == "create_many":
            kind, prefix, count = args
            for i in range(int(count)):
                doc = {"kind": kind, "metadata": {"name": f"{prefix}-{index}-{i}"}, "spec": json.loads(args_spec(kind))}
                await store.create(parse_resource(doc))
            return {"outcome": "done"}
        if action in ("claim", "claim_expired"):
            # Take runs one call at a time until none is left; report every uid this process got.
            lease_seconds, batch = float(args[0]), int(args[1])
            take = store.claim_runs if action == "claim" else store.claim_expired
            got: list[str] = []
            while True:
                runs = await take(f"worker-{index}", lease_seconds, batch)
                if not runs:
                    return {"outcome": "done", "uids": got}
                got += [str(run.uid) for run in runs]
        raise ValueError(f"unknown action {action!r}")
    finally:
        await store.close()


def args_spec(kind: str) -> str:
    if kind == "workflow":
        return json.dumps({"stages": [{"name": "only", "target": "json.dumps"}]})
    if kind == "config":
        return json.dumps({"selector": {"type": "name", "value": "x"}, "data": {"a": 1}})
    return json.dumps({"type": "condition", "rule": {"eq": [1, 1]}, "action": {"target": "run_workflow", "parameters": {}}})


if __name__ == "__main__":
    spec_text, sync_dir, index, action, *rest = sys.argv[1:]
    try:
        result = asyncio.run(main(json.loads(spec_text), Path(sync_dir), index, action, rest))
    except Exception as exc:  # reported to the test, which fails with it
        result = {"outcome": "error", "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
