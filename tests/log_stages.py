"""Stages that print and log, for the run-log tests (tests/test_run_logs.py, tests/server/test_run_logs.py
and the Ray and Dask plugins' tests)."""

import logging
import sys
import threading
import time

from flowdapt.lib.logger import get_logger

log = logging.getLogger("log_stages")
structured = get_logger("log_stages.structured")


def start(n: int = 4):
    print("starting", n)
    log.info("info from start")
    log.debug("debug from start")  # below the default level: not captured
    print("to stderr", file=sys.stderr)
    structured.info("Structured", n=n)
    return list(range(n))


def each(x):
    print(f"item {x} ", end="")
    print("done")
    log.warning("warn %s", x)
    return x * 2


def noop(x):
    return x


def one_line(x):
    print("line", x)
    return x


def log_line(x):
    log.info("line %s", x)
    return x


def binary(n: int = 1):
    sys.stdout.buffer.write(b"raw \xff\xfe bytes\n")
    print("lone \udcff surrogate")
    sys.stdout.write("no newline at the end")
    return n


def flood(lines: int = 20_000, width: int = 100):
    row = "y" * width
    for i in range(lines):
        print(i, row)
    return lines


def huge_line(chars: int = 1_000_000):
    sys.stdout.write("z" * chars + "\n")
    return chars


def many_writes(x):
    # One line from many small writes; another worker's lines must not break into it.
    for part in ("a", "b", "c", "d", "e", "f", "g", "h"):
        sys.stdout.write(f"{x}{part}")
        time.sleep(0.0005)
    sys.stdout.write("\n")
    return x


def slow_prints(n: int = 5, delay: float = 0.2):
    for i in range(n):
        print("tick", i)
        time.sleep(delay)
    return n


def fails(x):
    print("before failing", x)
    raise ValueError("boom")


async def async_prints(n: int = 1):
    print("from a coroutine", n)
    log.info("logged from a coroutine")
    return n


def thread_name():
    return threading.current_thread().name
