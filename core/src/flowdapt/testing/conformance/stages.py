"""Stage functions of the executor conformance suite (``executors.py``) and of executor plugins'
own tests (``stage("s", "kill_worker_once")`` names them).

Part of the flowdapt distribution, so every worker that runs Flowdapt imports them (Local
processes, Dask and Ray workers). Stages that coordinate across processes use files.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from flowdapt.compute.resources.workflow.context import get_run_context

# -- plain values ----------------------------------------------------------------------------


def numbers(n: int = 10) -> list[int]:
    return list(range(n))


def as_tuple(n: int = 3) -> tuple[int, ...]:
    return tuple(range(n))


def as_dict() -> dict[str, int]:
    return {"a": 1}


def square(x):
    return x * x


def double(x):
    return x * 2


def add(a, b):
    return a + b


def add_offset(x, offset):
    return x + offset


def total(xs):
    return sum(xs)


def echo_kwargs(a, b=2):
    return {"a": a, "b": b}


def takes_everything(**kwargs):
    return dict(sorted(kwargs.items()))


def first_only(x):
    return x


def collect(*args):
    return list(args)


def no_params():
    return "ok"


def label(x):
    return f"item-{x}"


def describe(items, offset):
    return {"count": len(items), "offset": offset, "first": items[0] if items else None}


# -- failures ----------------------------------------------------------------------------------


def fail(*args):
    raise ValueError("boom")


def test_stage_error():
    raise Exception("test_stage_error: Failure")


def fail_on_three(x):
    if x == 3:
        raise RuntimeError(f"bad item {x}")
    return x


def fail_on_multiples_of_seven(x):
    if x and x % 7 == 0:
        raise ArithmeticError(f"{x} is a multiple of 7")
    return x


def flaky(path: str):
    """Fails the first two times it is called for a path (a counter file), then succeeds."""
    count = int(Path(path).read_text()) if os.path.exists(path) else 0
    Path(path).write_text(str(count + 1))
    if count < 2:
        raise ConnectionError(f"attempt {count + 1} failed")
    return count + 1


def flaky_item(x, *, path: str):
    """Item 2 fails on its first call (a counter file per item), then succeeds."""
    marker = Path(f"{path}-{x}")
    if x == 2 and not marker.exists():
        marker.write_text("1")
        raise ConnectionError(f"item {x} failed once")
    return x


def sleepy(seconds: float = 5.0):
    time.sleep(seconds)
    return "slept"


async def async_sleepy(seconds: float = 5.0):
    await asyncio.sleep(seconds)
    return "slept"


def busy(seconds: float = 5.0):
    """Pure Python work (interruptible between bytecodes, unlike a blocking C call)."""
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return n


# -- async ------------------------------------------------------------------------------------


async def async_double(x):
    await asyncio.sleep(0)
    return x * 2


async def async_numbers(n: int = 3):
    await asyncio.sleep(0.01)
    return list(range(n))


# -- run context and config ---------------------------------------------------------------------


def context_fields():
    ctx = get_run_context()
    return {
        "input": ctx.input,
        "config": ctx.config,
        "namespace": ctx.namespace,
        "executor": ctx.executor,
        "workflow": ctx.definition.metadata.name,
        "stages": [s.name for s in ctx.definition.spec.stages],
        "run_name": ctx.run.name,
        "run_uid": str(ctx.run.uid),
        "run_state": str(ctx.run.state),
    }


def context_in_map(x):
    ctx = get_run_context()
    return [x, ctx.config.get("factor"), ctx.namespace, ctx.input.get("tag")]


# -- object store ---------------------------------------------------------------------------------


def put_values(n: int = 5):
    from flowdapt.compute import object_store

    for i in range(n):
        object_store.put(f"value-{i}", {"i": i, "square": i * i})
    return n


def get_values(n):
    from flowdapt.compute import object_store

    return [object_store.get(f"value-{i}")["square"] for i in range(n)]


def train_model(i):
    """Fits a tiny least-squares model and puts it in the object store."""
    import numpy as np

    from flowdapt import object_store

    rng = np.random.default_rng(i)
    x = rng.random((200, 8))
    y = x @ np.arange(8) + i
    coef, *_ = np.linalg.lstsq(np.c_[x, np.ones(200)], y, rcond=None)
    object_store.put(f"model-{i}", coef)
    return i


def read_model(i):
    from flowdapt import object_store

    coef = object_store.get(f"model-{i}")
    return round(float(coef[-1]), 6)


# -- a DAG that deadlocks under level barriers ------------------------------------------------
# `wait_for_b` (level 0) waits until `b` (level 1, depends only on fast `a`) has run; files make it
# work across worker processes and machines sharing this file system.


def a_fast(signal_dir: str):
    return "a"


def b_after_a(a, signal_dir: str | None = None):
    ctx_dir = signal_dir or get_run_context().input["signal_dir"]
    Path(ctx_dir, "b-ran").write_text("1")
    return a + "b"


def wait_for_b(signal_dir: str):
    deadline = time.monotonic() + 20
    while not Path(signal_dir, "b-ran").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("b never ran while wait_for_b was running: stages waited for whole levels")
        time.sleep(0.01)
    return "w"


def join(x, y):
    return x + y


def pid_of(_x):
    time.sleep(0.01)
    return os.getpid()


def kill_worker_once(path: str):
    """Kills its own worker process the first time (a marker file), then succeeds."""
    marker = Path(path)
    if not marker.exists():
        marker.write_text("killed")
        os.kill(os.getpid(), 9)
    return "survived"


def kill_worker_always():
    os.kill(os.getpid(), 9)


def wait_then_mark(path: str, seconds: float = 30.0):
    """Runs until cancelled; leaves a file if it ever finishes."""
    time.sleep(seconds)
    Path(path).write_text("finished")
    return "finished"


def env_var(name: str):
    return os.environ.get(name)


def needs_resources(x=1):
    return x


# -- output (run logs) -------------------------------------------------------------------------


def prints_and_logs(n: int = 3) -> list[int]:
    """A line on stdout, on stderr, a ``logging`` record and a ``flowdapt.lib.logger`` one."""
    import logging
    import sys

    from flowdapt.lib.logger import get_logger

    print("printed", n)
    print("on stderr", file=sys.stderr)
    logging.getLogger("conformance.stages").info("logged %s", n)
    get_logger("conformance.structured").warning("Structured", n=n)
    return list(range(n))


def item_output(x):
    """One line from several writes, and a log record, per item."""
    import logging
    import sys

    for part in ("p", "q", "r", "s"):
        sys.stdout.write(f"{x}{part}")
    sys.stdout.write("\n")
    logging.getLogger("conformance.stages").warning("item %s", x)
    return x


def slow_item(x, seconds: float = 0.1):
    """A map item that takes a while (live progress cases)."""
    time.sleep(seconds)
    return x
