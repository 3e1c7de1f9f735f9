"""Stage functions for the core tests (importable by worker processes)."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from flowdapt.compute.resources.workflow.context import get_run_context

_events: dict[str, threading.Event] = {}


def numbers(n: int = 10) -> list[int]:
    return list(range(n))


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


def fail(*args):
    raise ValueError("boom")


def test_stage_error():
    raise Exception("test_stage_error: Failure")


def fail_on_three(x):
    if x == 3:
        raise RuntimeError(f"bad item {x}")
    return x


async def async_double(x):
    await asyncio.sleep(0)
    return x * 2


def sleepy(seconds: float = 5.0):
    time.sleep(seconds)
    return "slept"


def flaky(path: str):
    """Fails the first two times it is called for a path (a counter file), then succeeds."""
    count = int(open(path).read()) if os.path.exists(path) else 0
    with open(path, "w") as f:
        f.write(str(count + 1))
    if count < 2:
        raise ConnectionError(f"attempt {count + 1} failed")
    return count + 1


def context_fields():
    ctx = get_run_context()
    return {
        "input": ctx.input,
        "config": ctx.config,
        "namespace": ctx.namespace,
        "executor": ctx.executor,
        "workflow": ctx.definition.metadata.name,
        "run_name": ctx.run.name,
        "run_state": str(ctx.run.state),
    }


def context_in_map(x):
    return [x, get_run_context().config.get("factor")]


def pid_of(_x):
    time.sleep(0.01)
    return os.getpid()


def thread_ident():
    return threading.get_ident()


# -- a DAG that deadlocks under level barriers -------------------------------------------------
# `wait_for_b` (level 0) blocks until `b` (level 1, depends only on fast `a`) has run.


def a_fast():
    return "a"


def b_after_a(a):
    _events.setdefault("b", threading.Event()).set()
    return a + "b"


def wait_for_b():
    if not _events.setdefault("b", threading.Event()).wait(10):
        raise TimeoutError("b never ran while wait_for_b was running: stages waited for whole levels")
    return "w"


def join(x, y):
    return x + y


def die_once(path: str):
    """Kills its worker process the first time (a marker file remembers), then succeeds."""
    if not os.path.exists(path):
        open(path, "w").close()
        os._exit(17)
    return "survived"


def die_always():
    os._exit(17)


def slow_item(x, seconds: float = 0.1):
    time.sleep(seconds)
    return x
