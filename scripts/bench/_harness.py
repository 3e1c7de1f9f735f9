"""Shared benchmark helpers: repeat a measurement, report medians and ratios in a table."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(__file__).resolve().parent
SIDE_VENVS = ROOT / ".bench"


def measure(fn: Callable[[], object], repeat: int) -> float:
    """Median wall-clock seconds of ``repeat`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def measure_async(fn: Callable[[], Awaitable[object]], repeat: int) -> float:
    await fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.0f} us"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))


def original_venv(extra: list[str] | None = None) -> Path | None:
    """A side venv with the original Flowdapt 0.1.52, created on first use; None if it cannot be."""
    venv = SIDE_VENVS / "original"
    python = venv / "bin" / "python"
    if python.exists():
        return python
    SIDE_VENVS.mkdir(exist_ok=True)
    print("installing the original flowdapt==0.1.52 into .bench/original (one time) ...", file=sys.stderr)
    packages = ["flowdapt==0.1.52", "fastapi==0.119.0", "cloudpickle==3.1.1", *(extra or [])]
    try:
        subprocess.run(["uv", "venv", "-q", "-p", sys.executable, str(venv)], check=True, timeout=120)
        subprocess.run(
            ["uv", "pip", "install", "-q", *packages],
            check=True,
            timeout=600,
            env={**os.environ, "VIRTUAL_ENV": str(venv)},
        )
    except (subprocess.SubprocessError, FileNotFoundError) as exc:
        print(f"could not install the original Flowdapt ({exc}); its column stays empty", file=sys.stderr)
        return None
    return python
