"""In-memory metrics for ``GET /metrics``: the original's metric names, point shapes and attributes.

The original kept OpenTelemetry's in-memory export: the system-metrics instrumentor's series
(``system.cpu.utilization`` per ``cpu`` and ``state``, ``system.disk.operations`` per ``device``
and ``direction``, ...), the ASGI instrumentation's ``http.server.*`` and its own app metrics.
Its dashboard charts three of them by ``attributes.state`` and ``attributes.direction``, so we
report the same names with the same attributes, without OpenTelemetry:

- counters and histograms are updated in place on the loop (a dict lookup and a few adds);
- a sampler reads psutil every ``interval`` seconds in a thread (under a millisecond; the
  system-wide connection count, which walks every process's sockets, only every
  ``CONNECTIONS_EVERY`` samples) and appends one compact sample per metric;
- a sample is a timestamp plus an ``array('d')`` of values, one per attribute set; a metric keeps
  at most ``max_samples`` samples (six hours) and ``max_points`` values (a metric with many
  series keeps a shorter window); point dicts are built only when ``/metrics`` is read.

Attributes whose values are unbounded in the original (run uids, event ids, trace ids, the
client's ``Host`` header) are left out, so no metric grows with traffic.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import math
import os
import platform
import socket
import threading
import time
from array import array
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import psutil

#: OpenTelemetry's default histogram bounds (what the original's points carried).
DEFAULT_BOUNDS = (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)
#: Samples kept per metric: six hours at the default 5 s interval, as the original kept.
MAX_SAMPLES = 4320
#: Values kept per metric, over all its series: six hours of a metric with four series; one with
#: more (per-CPU utilization on a large machine) keeps a shorter window. The original kept six
#: hours of everything, whatever it cost.
MAX_POINTS = 17280
#: Bounds (seconds) of the stage-duration histograms of the Prometheus exposition.
STAGE_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Stage-duration series kept (workflow x stage x state; bounded by the definitions in practice).
MAX_STAGE_SERIES = 10_000
#: The connection count walks every socket of every process: sample it every 30 s, not every 5 s.
CONNECTIONS_EVERY = 6

#: flowctl's short names (``flowctl metrics cpu``), for our client and docs.
ALIASES = {
    "cpu": "process.runtime.cpython.cpu_time",
    "memory": "process.runtime.cpython.memory",
    "api_latency": "api_request_latency",
}

_IMPL = platform.python_implementation().lower()
Attributes = dict[str, Any]


def _key(attributes: Attributes) -> tuple:
    return tuple(sorted(attributes.items()))


class Histogram:
    __slots__ = ("_snapshot", "bounds", "buckets", "count", "max", "min", "total")

    def __init__(self, bounds: tuple[float, ...] = DEFAULT_BOUNDS):
        self.bounds = bounds
        self.count = 0
        self.total = 0.0
        self.min = 0.0
        self.max = 0.0
        self.buckets = [0] * (len(bounds) + 1)
        self._snapshot: tuple | None = None

    def record(self, value: float) -> None:
        self._snapshot = None
        if self.count == 0:
            self.min = self.max = value
        elif value < self.min:
            self.min = value
        elif value > self.max:
            self.max = value
        self.count += 1
        self.total += value
        self.buckets[bisect.bisect_left(self.bounds, value)] += 1

    def snapshot(self) -> tuple:
        # Shared by every sample until the next record: an idle histogram costs a reference per sample.
        if self._snapshot is None:
            self._snapshot = (self.count, self.total, self.min, self.max, tuple(self.buckets))
        return self._snapshot


class Series:
    """One metric: its attribute sets and the samples taken of them.

    Values of counters and gauges are stored in columns (sample times, where each sample's values
    start, the values), so a sample costs 16 bytes plus 8 per value; histogram samples are tuples
    shared while the histogram does not change. Appends run on the event loop; reads may run in a
    thread, so both take a short lock (reads copy the columns and work on the copy)."""

    __slots__ = (
        "_data", "_first", "_lock", "_offsets", "_samples", "_times",
        "budget", "histogram", "index", "keys", "max_samples", "started",
    )

    def __init__(
        self,
        *,
        cumulative: bool,
        histogram: bool = False,
        budget: int = MAX_POINTS,
        started: int | None = None,
        max_samples: int = MAX_SAMPLES,
    ):
        #: Sums report when counting started (``start_time_unix_nano``). Gauges have no start in
        #: OpenTelemetry (the original sent null), but flowdapt-sdk's schema requires an int: a
        #: gauge point starts when it was measured.
        self.started: int | None = (started or time.time_ns()) if cumulative else None
        self.histogram = histogram
        self.keys: list[Attributes] = []
        self.index: dict[tuple, int] = {}
        self.budget = budget
        self.max_samples = max_samples
        self._lock = threading.Lock()
        self._samples: deque[tuple[int, Any]] = deque()  # histograms
        self._times = array("q")
        self._offsets = array("q")
        self._data = array("d")
        self._first = 0  # samples before it are dropped; the columns are compacted now and then

    def slot(self, attributes: Attributes) -> int:
        key = _key(attributes)
        at = self.index.get(key)
        if at is None:
            at = self.index[key] = len(self.keys)
            self.keys.append(dict(attributes))
        return at

    def __len__(self) -> int:
        return len(self._samples) if self.histogram else len(self._times) - self._first

    def _keep(self) -> int:
        return max(2, min(self.max_samples, self.budget // max(1, len(self.keys))))

    def append(self, now_ns: int, values: Any) -> None:
        keep = self._keep()
        with self._lock:
            if self.histogram:
                self._samples.append((now_ns, values))
                while len(self._samples) > keep:
                    self._samples.popleft()
                return
            self._times.append(now_ns)
            self._offsets.append(len(self._data))
            self._data.extend(values)
            live = len(self._times) - self._first
            if live > keep:
                self._first += live - keep
            if self._first >= max(64, keep // 4):  # drop the dead head: amortized, not per sample
                first, cut = self._first, self._offsets[self._first]
                self._times = self._times[first:]
                self._offsets = array("q", (o - cut for o in self._offsets[first:]))
                self._data = self._data[cut:]
                self._first = 0

    def newest_first(self) -> list[tuple[int, Any]]:
        """(time, values) of every kept sample, newest first, from a copy of the columns."""
        with self._lock:
            if self.histogram:
                return list(reversed(self._samples))
            first = self._first
            times = self._times[first:]
            base = self._offsets[first] if len(self._offsets) > first else 0
            offsets = self._offsets[first:]
            data = self._data[base:]
        ends = [*(o - base for o in offsets[1:]), len(data)]
        return [(times[i], data[offsets[i] - base : ends[i]]) for i in range(len(times) - 1, -1, -1)]

    def points(self, time_ns: int, values: Any) -> Iterable[dict[str, Any]]:
        if self.histogram:
            for at, snap in enumerate(values):
                if snap is None:
                    continue
                count, total, low, high, buckets = snap
                yield {
                    "attributes": self.keys[at],
                    "start_time_unix_nano": self.started or time_ns,
                    "time_unix_nano": time_ns,
                    "count": count,
                    "bucket_counts": list(buckets),
                    "explicit_bounds": list(DEFAULT_BOUNDS),
                    "sum": total,
                    "min": low,
                    "max": high,
                }
            return
        for at, value in enumerate(values):
            if at >= len(self.keys) or math.isnan(value):
                continue
            yield {
                "attributes": self.keys[at],
                "start_time_unix_nano": self.started or time_ns,
                "time_unix_nano": time_ns,
                "value": int(value) if value.is_integer() and abs(value) < 2**53 else value,
            }


class _Instrument:
    """A counter or histogram per attribute set, updated in place on the event loop."""

    __slots__ = ("changed", "series", "values")

    def __init__(self, series: Series):
        self.series = series
        self.values: dict[int, Any] = {}
        #: Recorded since the last sample: an idle instrument adds no sample (its values are
        #: cumulative, so nothing is lost; a read always adds the current value).
        self.changed = False

    def snapshot(self) -> Any:
        items = list(self.values.items())  # one C-level copy: safe against the loop adding slots
        if self.series.histogram:
            out: list[Any] = [None] * len(self.series.keys)
            for at, hist in items:
                out[at] = hist.snapshot()
            return out
        out_values = array("d", [math.nan]) * len(self.series.keys)
        for at, value in items:
            out_values[at] = value
        return out_values


# Which metrics are cumulative sums (a start time) and which are gauges, as OpenTelemetry has them.
_SYSTEM_SUMS = {
    "system.cpu.time", "system.disk.io", "system.disk.operations", "system.disk.time",
    "system.network.dropped_packets", "system.network.packets", "system.network.errors",
    "system.network.io", "system.network.connections",
    f"process.runtime.{_IMPL}.memory", f"process.runtime.{_IMPL}.cpu_time", f"process.runtime.{_IMPL}.gc_count",
    f"process.runtime.{_IMPL}.thread_count", f"process.runtime.{_IMPL}.context_switches",
    "process.open_file_descriptor.count", "process.context_switches", "process.cpu.time",
    "process.memory.usage", "process.memory.virtual", "process.thread.count", "process.disk.io",
    "cpython.gc.collections", "cpython.gc.collected_objects", "cpython.gc.uncollectable_objects",
}
_SYSTEM_GAUGES = {
    "system.cpu.utilization", "system.memory.usage", "system.memory.utilization", "system.swap.usage",
    "system.swap.utilization", "system.thread_count", f"process.runtime.{_IMPL}.cpu.utilization",
    "process.cpu.utilization",
}
SYSTEM_METRICS = tuple(sorted(_SYSTEM_SUMS | _SYSTEM_GAUGES))


class SystemReader:
    """psutil readings as ``{metric: [(attributes, value), ...]}``. Blocking: call it in a thread."""

    def __init__(self) -> None:
        self.process = psutil.Process(os.getpid())
        self.cpus = psutil.cpu_count() or 1
        self.samples = 0
        self._connections: list[tuple[Attributes, float]] = []
        # Percentages are measured between calls: prime them so the first sample is meaningful.
        psutil.cpu_times_percent(percpu=True)
        self.process.cpu_percent(None)
        self._last_proc_cpu = (time.monotonic(), self.process.cpu_times())

    def read(self) -> dict[str, list[tuple[Attributes, float]]]:
        out: dict[str, list[tuple[Attributes, float]]] = {}

        def put(name: str, attributes: Attributes, value: float) -> None:
            out.setdefault(name, []).append((attributes, float(value)))

        states = ("idle", "user", "system", "irq")
        for cpu, times in enumerate(psutil.cpu_times(percpu=True), start=1):
            for state in states:
                put("system.cpu.time", {"state": state, "cpu": cpu}, getattr(times, state, 0.0))
        for cpu, pct in enumerate(psutil.cpu_times_percent(percpu=True), start=1):
            for state in states:
                put("system.cpu.utilization", {"state": state, "cpu": cpu}, getattr(pct, state, 0.0) / 100.0)

        memory = psutil.virtual_memory()
        for state in ("used", "free", "cached"):
            if hasattr(memory, state):
                put("system.memory.usage", {"state": state}, getattr(memory, state))
                put("system.memory.utilization", {"state": state}, getattr(memory, state) / (memory.total or 1))
        swap = psutil.swap_memory()
        for state in ("used", "free"):
            put("system.swap.usage", {"state": state}, getattr(swap, state))
            put("system.swap.utilization", {"state": state}, getattr(swap, state) / (swap.total or 1) if swap.total else 0.0)

        try:
            disks = psutil.disk_io_counters(perdisk=True) or {}
        except Exception:  # no disks visible (some containers)
            disks = {}
        for device, c in disks.items():
            for direction in ("read", "write"):
                attributes = {"device": device, "direction": direction}
                put("system.disk.io", attributes, getattr(c, f"{direction}_bytes"))
                put("system.disk.operations", attributes, getattr(c, f"{direction}_count"))
                put("system.disk.time", attributes, getattr(c, f"{direction}_time") / 1000.0)

        try:
            nics = psutil.net_io_counters(pernic=True) or {}
        except Exception:
            nics = {}
        for device, c in nics.items():
            for direction, recv in (("receive", True), ("transmit", False)):
                attributes = {"device": device, "direction": direction}
                put("system.network.dropped_packets", attributes, c.dropin if recv else c.dropout)
                put("system.network.packets", attributes, c.packets_recv if recv else c.packets_sent)
                put("system.network.errors", attributes, c.errin if recv else c.errout)
                put("system.network.io", attributes, c.bytes_recv if recv else c.bytes_sent)

        if self.samples % CONNECTIONS_EVERY == 0:
            self._connections = self._read_connections()
        for attributes, value in self._connections:
            put("system.network.connections", attributes, value)
        self.samples += 1

        put("system.thread_count", {}, threading.active_count())
        self._read_process(put)
        self._read_gc(put)
        return out

    @staticmethod
    def _read_connections() -> list[tuple[Attributes, float]]:
        counts: dict[tuple, int] = {}
        try:
            connections = psutil.net_connections()
        except Exception:  # not permitted on some systems
            return []
        for conn in connections:
            protocol = "tcp" if conn.type == socket.SOCK_STREAM else "udp"
            key = (int(conn.family), int(conn.type), conn.status or "NONE", protocol)
            counts[key] = counts.get(key, 0) + 1
        return [
            ({"family": family, "type": kind, "state": state, "protocol": protocol}, float(n))
            for (family, kind, state, protocol), n in sorted(counts.items())
        ]

    def _read_process(self, put) -> None:
        proc = self.process
        runtime = f"process.runtime.{_IMPL}"
        with proc.oneshot():
            mem = proc.memory_info()
            cpu = proc.cpu_times()
            threads = proc.num_threads()
            try:
                switches = proc.num_ctx_switches()
            except Exception:
                switches = None
            try:
                fds = proc.num_fds()
            except Exception:
                fds = None
            try:
                io = proc.io_counters()
            except Exception:  # not readable in some sandboxes
                io = None
            pct = proc.cpu_percent(None)
        now = time.monotonic()
        then, before = self._last_proc_cpu
        self._last_proc_cpu = (now, cpu)
        elapsed = max(now - then, 1e-9) * self.cpus

        put(f"{runtime}.memory", {"type": "rss"}, mem.rss)
        put(f"{runtime}.memory", {"type": "vms"}, mem.vms)
        put(f"{runtime}.cpu_time", {"type": "user"}, cpu.user)
        put(f"{runtime}.cpu_time", {"type": "system"}, cpu.system)
        put(f"{runtime}.thread_count", {}, threads)
        put(f"{runtime}.cpu.utilization", {}, pct / 100.0 / self.cpus)
        put("process.memory.usage", {}, mem.rss)
        put("process.memory.virtual", {}, mem.vms)
        put("process.cpu.time", {"cpu.mode": "user"}, cpu.user)
        put("process.cpu.time", {"cpu.mode": "system"}, cpu.system)
        put("process.cpu.utilization", {"cpu.mode": "user"}, max(0.0, cpu.user - before.user) / elapsed)
        put("process.cpu.utilization", {"cpu.mode": "system"}, max(0.0, cpu.system - before.system) / elapsed)
        put("process.thread.count", {}, threads)
        if switches is not None:
            for kind in ("involuntary", "voluntary"):
                put(f"{runtime}.context_switches", {"type": kind}, getattr(switches, kind))
                put("process.context_switches", {"process.context_switch_type": kind}, getattr(switches, kind))
        if fds is not None:
            put("process.open_file_descriptor.count", {}, fds)
        if io is not None:
            put("process.disk.io", {"disk.io.direction": "read"}, io.read_bytes)
            put("process.disk.io", {"disk.io.direction": "write"}, io.write_bytes)

    @staticmethod
    def _read_gc(put) -> None:
        for generation, count in enumerate(gc.get_count()):
            put(f"process.runtime.{_IMPL}.gc_count", {"count": str(generation)}, count)
        for generation, stats in enumerate(gc.get_stats()):
            attributes = {"cpython.gc.generation": generation}
            put("cpython.gc.collections", attributes, stats.get("collections", 0))
            put("cpython.gc.collected_objects", attributes, stats.get("collected", 0))
            put("cpython.gc.uncollectable_objects", attributes, stats.get("uncollectable", 0))


_COUNTERS = ("api_request_count", "api_error_count", "workflows_executed", "workflows_failed", "events_published", "events_received")
_UPDOWN = ("http.server.active_requests",)
_HISTOGRAMS = (
    "api_request_latency", "api_request_size", "http.server.duration", "http.server.response.size",
    "http.server.request.size", "workflow_execution_time", "event_callback_latency",
)
APP_METRICS = _COUNTERS + _UPDOWN + _HISTOGRAMS


class Metrics:
    def __init__(
        self, interval: float = 5.0, max_points: int = MAX_POINTS, read_system: bool = True, max_samples: int = MAX_SAMPLES
    ):
        self.interval = interval
        self.max_points = max_points
        self.max_samples = max_samples
        self.start_ns = time.time_ns()
        self.series: dict[str, Series] = {}
        self.instruments: dict[str, _Instrument] = {}
        for name in _COUNTERS + _UPDOWN:
            self.instruments[name] = _Instrument(self._series(name, cumulative=True))
        for name in _HISTOGRAMS:
            self.instruments[name] = _Instrument(self._series(name, cumulative=True, histogram=True))
        self._system: SystemReader | None = SystemReader() if read_system else None
        self._http_attributes: dict[tuple, tuple[int, ...]] = {}
        self._no_attributes: dict[str, int] = {name: self.instruments[name].series.slot({}) for name in (
            "api_request_count", "api_error_count", "api_request_latency", "api_request_size",
        )}
        self.active_requests = 0
        #: (workflow, stage, state) -> Histogram of stage durations in seconds, for the Prometheus
        #: exposition only (server/prometheus.py): not in the original's JSON ``/metrics``.
        self.stage_durations: dict[tuple[str, str, str], Histogram] = {}

    def stage_done(self, workflow: str, stage: str, state: str, seconds: float) -> None:
        key = (workflow, stage, state)
        hist = self.stage_durations.get(key)
        if hist is None:
            if len(self.stage_durations) >= MAX_STAGE_SERIES:
                return
            hist = self.stage_durations[key] = Histogram(STAGE_BOUNDS)
        hist.record(seconds)

    def _series(self, name: str, *, cumulative: bool, histogram: bool = False) -> Series:
        series = self.series.get(name)
        if series is None:
            series = self.series[name] = Series(
                cumulative=cumulative,
                histogram=histogram,
                budget=self.max_points,
                started=self.start_ns,
                max_samples=self.max_samples,
            )
        return series

    # -- recording (called on the loop; must stay cheap) ---------------------------------

    def _add(self, name: str, at: int, amount: float = 1.0) -> None:
        instrument = self.instruments[name]
        instrument.changed = True
        values = instrument.values
        values[at] = values.get(at, 0.0) + amount

    def _observe(self, name: str, at: int, value: float) -> None:
        instrument = self.instruments[name]
        instrument.changed = True
        values = instrument.values
        hist = values.get(at)
        if hist is None:
            hist = values[at] = Histogram()
        hist.record(value)

    def request_started(self, scope: dict[str, Any]) -> None:
        self.active_requests += 1

    def request_done(
        self, scope: dict[str, Any], status: int, seconds: float, request_bytes: int = 0, response_bytes: int = 0
    ) -> None:
        self.active_requests -= 1
        millis = seconds * 1000.0
        plain = self._no_attributes
        self._add("api_request_count", plain["api_request_count"])
        if status >= 500:  # the original counted unhandled errors only
            self._add("api_error_count", plain["api_error_count"])
        self._observe("api_request_latency", plain["api_request_latency"], millis)
        self._observe("api_request_size", plain["api_request_size"], request_bytes)

        route = scope.get("route")
        target = getattr(route, "path", None) or ""  # the route template, never the raw path
        method = scope.get("method", "")
        key = (method, target, status, scope.get("scheme", "http"), scope.get("http_version", "1.1"))
        slots = self._http_attributes.get(key)
        if slots is None:
            slots = self._http_slots(scope, key)
        active, duration, response_size, request_size = slots
        active_requests = self.instruments["http.server.active_requests"]
        active_requests.values[active] = float(self.active_requests)
        active_requests.changed = True
        self._observe("http.server.duration", duration, millis)
        self._observe("http.server.response.size", response_size, response_bytes)
        if request_bytes:
            self._observe("http.server.request.size", request_size, request_bytes)

    def _http_slots(self, scope: dict[str, Any], key: tuple) -> tuple[int, ...]:
        method, target, status, scheme, flavor = key
        host, port = (scope.get("server") or ("", 0))[:2]
        common = {"http.scheme": scheme, "http.host": f"{host}:{port}", "http.flavor": flavor, "http.method": method,
                  "http.server_name": f"{host}:{port}"}
        full = {**common, "net.host.port": port, "http.status_code": status, "http.target": target}
        slots = (
            self.instruments["http.server.active_requests"].series.slot(common),
            self.instruments["http.server.duration"].series.slot(full),
            self.instruments["http.server.response.size"].series.slot(full),
            self.instruments["http.server.request.size"].series.slot(full),
        )
        if len(self._http_attributes) < 10_000:  # routes x methods x statuses: bounded in practice
            self._http_attributes[key] = slots
        return slots

    def run_done(
        self,
        failed: bool,
        seconds: float | None,
        *,
        workflow: str = "",
        executor: str | None = None,
        namespace: str = "default",
        source: str | None = None,
    ) -> None:
        attributes = {
            "workflow.name": workflow,
            "workflow.executor": executor or "",
            "workflow.namespace": namespace,
            "workflow.run.source": source or "",
        }
        executed = self.instruments["workflows_executed"].series.slot(attributes)
        self._add("workflows_executed", executed)
        if failed:
            self._add("workflows_failed", self.instruments["workflows_failed"].series.slot(attributes))
        elif seconds is not None:  # wall time (the original measured server CPU time)
            at = self.instruments["workflow_execution_time"].series.slot(attributes)
            self._observe("workflow_execution_time", at, seconds * 1000.0)

    def event_published(self, event_type: str, channel: str, source: str) -> None:
        attributes = {"event_type": event_type, "event_channel": channel, "event_source": source}
        self._add("events_published", self.instruments["events_published"].series.slot(attributes))

    def event_handled(self, event_type: str, channel: str, source: str, callback: str, seconds: float) -> None:
        received = {"channel": channel, "event_type": event_type, "event_source": source}
        self._add("events_received", self.instruments["events_received"].series.slot(received))
        latency = {"callback_name": callback, "event_type": event_type, "event_channel": channel, "event_source": source}
        at = self.instruments["event_callback_latency"].series.slot(latency)
        self._observe("event_callback_latency", at, seconds * 1000.0)

    # -- sampling ------------------------------------------------------------------------

    def read_system(self) -> dict[str, list[tuple[Attributes, float]]]:
        """System readings; blocking syscalls, so callers run it in a thread."""
        return self._system.read() if self._system is not None else {}

    def sample(self, readings: dict[str, list[tuple[Attributes, float]]] | None = None) -> None:
        now_ns = time.time_ns()
        for name, pairs in (readings or {}).items():
            series = self._series(name, cumulative=name in _SYSTEM_SUMS)
            slots = [series.slot(attributes) for attributes, _ in pairs]
            values = array("d", [math.nan]) * len(series.keys)
            for at, (_, value) in zip(slots, pairs, strict=True):
                values[at] = value
            series.append(now_ns, values)
        for instrument in self.instruments.values():
            if instrument.changed:
                instrument.changed = False
                instrument.series.append(now_ns, instrument.snapshot())

    async def run_sampler(self) -> None:
        while True:
            try:
                readings = await asyncio.to_thread(self.read_system)
            except Exception:
                readings = None
            self.sample(readings)
            await asyncio.sleep(self.interval)

    # -- reading -------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Metrics that have at least one point (what ``/metrics`` lists)."""
        names = []
        for name, series in self.series.items():
            instrument = self.instruments.get(name)
            if len(series) or (instrument is not None and instrument.values):
                names.append(name)
        return names

    def query(
        self,
        name: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        max_length: int | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        now_ns = time.time_ns()
        names = self.names()
        if name:
            # An asked-for name is always a key (empty when it has no points), as in the original.
            wanted = ALIASES.get(name, name)
            names = [wanted]
        start_ns = _to_ns(start_time) if start_time else None
        end_ns = _to_ns(end_time) if end_time else None
        limit = max_length if max_length is not None and max_length >= 0 else None
        out: dict[str, list[dict[str, Any]]] = {}
        for metric in names:
            series = self.series.get(metric)
            if series is None:
                out[metric] = []
                continue
            samples: list[tuple[int, Any]] = []
            instrument = self.instruments.get(metric)
            if instrument is not None and instrument.values:
                samples.append((now_ns, instrument.snapshot()))  # the current value, newest
            samples.extend(series.newest_first())  # a copy: reads may run off the loop
            points: list[dict[str, Any]] = []
            for time_ns, values in samples:
                if end_ns is not None and time_ns > end_ns:
                    continue
                if start_ns is not None and time_ns < start_ns:
                    break
                points.extend(series.points(time_ns, values))
                if limit is not None and len(points) >= limit:
                    break
            out[metric] = points if limit is None else points[:limit]
        return out


def _to_ns(value: datetime) -> int:
    if value.tzinfo is None:  # naive means UTC, as in the original
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000_000)
