"""In-memory metrics for ``GET /metrics``, in the original's point shapes.

Counters and histograms are updated in place (cheap enough for the per-request path); a sampler
appends one point per metric every ``interval`` seconds into bounded ring buffers, and a read
adds the current value as the newest point. System gauges come from psutil, read off the loop.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil

DEFAULT_BOUNDS = (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)
#: Six hours of points at the default five-second interval, as the original kept.
MAX_POINTS = 4320

#: flowctl's short names, for our client and docs.
ALIASES = {
    "cpu": "process.runtime.cpython.cpu_time",
    "memory": "process.runtime.cpython.memory",
    "api_latency": "api_request_latency",
}


@dataclass
class Histogram:
    bounds: tuple[float, ...] = DEFAULT_BOUNDS
    count: int = 0
    total: float = 0.0
    min: float = 0.0
    max: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DEFAULT_BOUNDS) + 1))

    def record(self, value: float) -> None:
        if self.count == 0:
            self.min = self.max = value
        else:
            self.min = min(self.min, value)
            self.max = max(self.max, value)
        self.count += 1
        self.total += value
        self.buckets[bisect.bisect_left(self.bounds, value)] += 1

    def point(self, start_ns: int, now_ns: int) -> dict[str, Any]:
        return {
            "attributes": {},
            "start_time_unix_nano": start_ns,
            "time_unix_nano": now_ns,
            "count": self.count,
            "bucket_counts": list(self.buckets),
            "explicit_bounds": list(self.bounds),
            "sum": self.total,
            "min": self.min,
            "max": self.max,
        }


class Metrics:
    def __init__(self, interval: float = 5.0, max_points: int = MAX_POINTS):
        self.interval = interval
        self.start_ns = time.time_ns()
        self.counters: dict[str, float] = {
            "api_request_count": 0,
            "api_error_count": 0,
            "workflows_executed": 0,
            "workflows_failed": 0,
        }
        self.histograms: dict[str, Histogram] = {
            "api_request_latency": Histogram(),
            "workflow_execution_time": Histogram(),
        }
        self.gauges: dict[str, float] = {}
        self.points: dict[str, deque] = {}
        self.max_points = max_points
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)
        psutil.cpu_percent(None)

    # -- recording (called on the loop; must stay cheap) ---------------------------------

    def request_done(self, seconds: float, error: bool) -> None:
        self.counters["api_request_count"] += 1
        if error:
            self.counters["api_error_count"] += 1
        self.histograms["api_request_latency"].record(seconds * 1000.0)

    def run_done(self, failed: bool, seconds: float | None) -> None:
        self.counters["workflows_executed"] += 1
        if failed:
            self.counters["workflows_failed"] += 1
        if seconds is not None:
            self.histograms["workflow_execution_time"].record(seconds * 1000.0)

    # -- sampling ------------------------------------------------------------------------

    def read_system(self) -> dict[str, float]:
        """System gauges; blocking syscalls, so callers run it in a thread."""
        gauges = {
            "system.cpu.utilization": psutil.cpu_percent(None) / 100.0,
            "system.memory.utilization": psutil.virtual_memory().percent / 100.0,
            "process.runtime.cpython.memory": float(self._process.memory_info().rss),
        }
        times = self._process.cpu_times()
        gauges["process.runtime.cpython.cpu_time"] = times.user + times.system
        try:
            disk = psutil.disk_io_counters()
            if disk is not None:
                gauges["system.disk.operations"] = float(disk.read_count + disk.write_count)
        except Exception:  # no disks visible (some containers)
            pass
        return gauges

    def _current_points(self, now_ns: int) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, value in {**self.counters, **self.gauges}.items():
            out[name] = {"attributes": {}, "start_time_unix_nano": self.start_ns, "time_unix_nano": now_ns, "value": value}
        for name, hist in self.histograms.items():
            out[name] = hist.point(self.start_ns, now_ns)
        return out

    def sample(self, gauges: dict[str, float] | None = None) -> None:
        if gauges:
            self.gauges.update(gauges)
        now_ns = time.time_ns()
        for name, point in self._current_points(now_ns).items():
            ring = self.points.get(name)
            if ring is None:
                ring = self.points[name] = deque(maxlen=self.max_points)
            ring.append(point)

    async def run_sampler(self) -> None:
        while True:
            try:
                gauges = await asyncio.to_thread(self.read_system)
            except Exception:
                gauges = None
            self.sample(gauges)
            await asyncio.sleep(self.interval)

    # -- reading -------------------------------------------------------------------------

    def query(
        self,
        name: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        max_length: int | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        now_ns = time.time_ns()
        current = self._current_points(now_ns)
        names = sorted(set(self.points) | set(current))
        if name:
            wanted = ALIASES.get(name, name)
            names = [n for n in names if n == wanted]
        start_ns = _to_ns(start_time) if start_time else None
        end_ns = _to_ns(end_time) if end_time else None
        out: dict[str, list[dict[str, Any]]] = {}
        for metric in names:
            series = list(self.points.get(metric, ()))
            if metric in current:
                series.append(current[metric])
            series.reverse()  # newest first
            if start_ns is not None:
                series = [p for p in series if p["time_unix_nano"] >= start_ns]
            if end_ns is not None:
                series = [p for p in series if p["time_unix_nano"] <= end_ns]
            if max_length is not None and max_length >= 0:
                series = series[:max_length]
            out[metric] = series
        return out


def _to_ns(value: datetime) -> int:
    if value.tzinfo is None:  # naive means UTC, as in the original
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000_000)
