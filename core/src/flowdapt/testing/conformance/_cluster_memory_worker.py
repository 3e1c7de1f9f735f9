"""A separate OS process racing others on one cluster memory (started by the cluster-memory suite
and the LMDB plugin's tests).

``python -m flowdapt.testing.conformance._cluster_memory_worker SPEC SYNC_DIR INDEX ROUNDS SHARED``:
builds the backend from SPEC (``backends.Backend.spec``: name, options, plugins, through the registry), touches ``ready-INDEX``, waits
for ``go``, then for each round: puts its own key ``w{INDEX}-{round}``, overwrites every shared key
``shared-{j}`` (j < SHARED) and reads them all back, checking that each value is whole (its
checksum matches). Prints one JSON line: ``{"torn": [...], "errors": [...], "reads": n}``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path


def wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.001)


def make_value(writer: int, round_: int, size: int = 2048) -> dict:
    import numpy as np

    rng = np.random.default_rng(writer * 100_003 + round_)
    payload = rng.integers(0, 255, size=size, dtype=np.uint8)
    return {
        "writer": writer,
        "round": round_,
        "payload": payload,
        "digest": hashlib.sha256(payload.tobytes()).hexdigest(),
    }


def is_whole(value) -> bool:
    return (
        isinstance(value, dict) and hashlib.sha256(value["payload"].tobytes()).hexdigest() == value["digest"]
    )


def main(spec: dict, sync: Path, index: int, rounds: int, shared: int) -> dict:
    from flowdapt.testing.conformance.backends import from_spec

    memory = from_spec(spec)
    (sync / f"ready-{index}").touch()
    wait_for(sync / "go")
    torn: list[str] = []
    errors: list[str] = []
    reads = 0
    for round_ in range(rounds):
        try:
            memory.put(f"w{index}-{round_}", make_value(index, round_), namespace="race")
            for j in range(shared):
                memory.put(f"shared-{j}", make_value(index, round_), namespace="race")
            for j in range(shared):
                value = memory.get(f"shared-{j}", namespace="race")
                reads += 1
                if not is_whole(value):
                    torn.append(f"shared-{j}")
            mine = memory.get(f"w{index}-{round_}", namespace="race")
            reads += 1
            if not is_whole(mine) or mine["writer"] != index or mine["round"] != round_:
                torn.append(f"w{index}-{round_}")
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on any
            errors.append(f"{type(exc).__name__}: {exc}")
    memory.close()
    return {"torn": torn, "errors": errors, "reads": reads}


if __name__ == "__main__":
    spec_arg, sync_arg, index_arg, rounds_arg, shared_arg = sys.argv[1:6]
    result = main(json.loads(spec_arg), Path(sync_arg), int(index_arg), int(rounds_arg), int(shared_arg))
    print(json.dumps(result))
