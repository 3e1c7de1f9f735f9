"""The Prometheus text exposition (format 0.0.4) of a server: ``GET /metrics`` with
``Accept: text/plain`` or ``application/openmetrics-text`` (what Prometheus sends), or
``GET /metrics/prometheus``. The original's JSON ``/metrics`` is unchanged.

What it exposes (docs/metrics.md):

- ``flowdapt_runs{state}``: runs in the database by state (every server's); ``flowdapt_run_queue_depth``:
  runs waiting to start (``pending``); ``flowdapt_active_runs``: runs this server drives now;
- ``flowdapt_runs_finished_total{workflow,source,outcome}`` and the
  ``flowdapt_run_duration_seconds{workflow}`` histogram (finished runs): what this server ran;
- ``flowdapt_stage_duration_seconds{workflow,stage,state}``: a histogram per stage;
- ``flowdapt_executor_workers{executor}``, ``flowdapt_cluster_servers``: worker and server counts;
- ``flowdapt_http_request_duration_seconds{method,route,status}``, ``flowdapt_http_requests_in_flight``;
- ``flowdapt_events_published_total{event_type}``; ``flowdapt_up``, ``flowdapt_draining``,
  ``flowdapt_info{version,name}`` and the usual ``process_*`` series.

Counters and histograms are this server's since it started (Prometheus sums over servers); the
run gauges come from the shared database, so every server of a cluster reports the same values
(aggregate them with ``max``, not ``sum``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import psutil

from flowdapt.resources.run import RunState
from flowdapt.server.metrics import DEFAULT_BOUNDS, STAGE_BOUNDS

if TYPE_CHECKING:
    from flowdapt.server.core import FlowdaptServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def wants_prometheus(accept: str | None) -> bool:
    """Whether an Accept header asks for the text exposition rather than JSON: it names
    ``text/plain`` or ``application/openmetrics-text`` (Prometheus does) and no JSON type."""
    if not accept:
        return False
    accept = accept.lower()
    return ("text/plain" in accept or "application/openmetrics-text" in accept) and "json" not in accept


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, Any]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: dict[str, Any], value: float) -> None:
        self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(self, name: str, labels: dict[str, Any], bounds: Iterable[float], buckets: list[int], count: int, total: float) -> None:
        running = 0
        for bound, n in zip(bounds, buckets, strict=False):
            running += n
            self.sample(f"{name}_bucket", {**labels, "le": _number(float(bound))}, running)
        self.sample(f"{name}_bucket", {**labels, "le": "+Inf"}, count)
        self.sample(f"{name}_sum", labels, total)
        self.sample(f"{name}_count", labels, count)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


async def _run_counts(server: FlowdaptServer) -> dict[str, int] | None:
    if not server.runs.persist:
        return None
    counts = {}
    for state in RunState:
        counts[state.value] = await server.store.count_runs(state=state.value)
    return counts


async def render(server: FlowdaptServer) -> str:
    """The exposition text. Reads run counts from the database (one count per state)."""
    from flowdapt import __version__

    metrics = server.metrics
    out = Exposition()
    out.family("flowdapt_up", "gauge", "1 while the server answers")
    out.sample("flowdapt_up", {}, 1)
    out.family("flowdapt_info", "gauge", "the server's version and name")
    out.sample("flowdapt_info", {"version": __version__, "name": server.settings.name}, 1)
    out.family("flowdapt_draining", "gauge", "1 while the server refuses new runs (draining)")
    out.sample("flowdapt_draining", {}, 1 if server.draining else 0)

    try:
        counts = await _run_counts(server)
    except Exception:  # the database is down: the rest still answers
        counts = None
    if counts is not None:
        out.family("flowdapt_runs", "gauge", "runs in the database by state (shared by the servers of a cluster)")
        for state, n in counts.items():
            out.sample("flowdapt_runs", {"state": state}, n)
        out.family("flowdapt_run_queue_depth", "gauge", "runs waiting to start (state pending)")
        out.sample("flowdapt_run_queue_depth", {}, counts.get("pending", 0))
    out.family("flowdapt_active_runs", "gauge", "runs this server drives now")
    out.sample("flowdapt_active_runs", {}, len(server.runs.active))

    executed = metrics.instruments["workflows_executed"]
    failed = metrics.instruments["workflows_failed"]
    failed_by_key = {tuple(sorted(failed.series.keys[at].items())): value for at, value in list(failed.values.items())}
    out.family("flowdapt_runs_finished_total", "counter", "runs this server ended, by workflow, source and outcome")
    for at, value in list(executed.values.items()):
        attributes = executed.series.keys[at]
        labels = {"workflow": attributes.get("workflow.name", ""), "source": attributes.get("workflow.run.source", "")}
        bad = failed_by_key.get(tuple(sorted(attributes.items())), 0.0)
        out.sample("flowdapt_runs_finished_total", {**labels, "outcome": "finished"}, int(value - bad))
        out.sample("flowdapt_runs_finished_total", {**labels, "outcome": "failed"}, int(bad))

    durations = metrics.instruments["workflow_execution_time"]
    out.family("flowdapt_run_duration_seconds", "histogram", "wall time of the runs that finished")
    merged: dict[str, list] = {}
    for at, hist in list(durations.values.items()):
        workflow = durations.series.keys[at].get("workflow.name", "")
        entry = merged.setdefault(workflow, [[0] * (len(DEFAULT_BOUNDS) + 1), 0, 0.0])
        for i, n in enumerate(hist.buckets):
            entry[0][i] += n
        entry[1] += hist.count
        entry[2] += hist.total
    for workflow, (buckets, count, total) in merged.items():
        out.histogram("flowdapt_run_duration_seconds", {"workflow": workflow}, (b / 1000 for b in DEFAULT_BOUNDS), buckets, count, total / 1000)

    out.family("flowdapt_stage_duration_seconds", "histogram", "stage durations, by workflow, stage and final stage state")
    for (workflow, stage, state), hist in list(metrics.stage_durations.items()):
        out.histogram("flowdapt_stage_duration_seconds", {"workflow": workflow, "stage": stage, "state": state}, STAGE_BOUNDS, hist.buckets, hist.count, hist.total)

    executor = server.executor
    out.family("flowdapt_executor_workers", "gauge", "workers of this server's executor (0 without compute)")
    workers = 0
    if executor is not None:
        try:
            workers = int(executor.environment_info().get("workers") or 0)
        except Exception:
            workers = 0
    out.sample("flowdapt_executor_workers", {"executor": executor.name if executor is not None else ""}, workers)
    try:
        servers = await server.membership.servers()
    except Exception:
        servers = None
    if servers:
        out.family("flowdapt_cluster_servers", "gauge", "live servers sharing this database, by service")
        by_service: dict[str, int] = {}
        for record in servers:
            for service in record.get("services") or []:
                by_service[service] = by_service.get(service, 0) + 1
        out.sample("flowdapt_cluster_servers", {"service": "any"}, len(servers))
        for service, n in sorted(by_service.items()):
            out.sample("flowdapt_cluster_servers", {"service": service}, n)

    http = metrics.instruments["http.server.duration"]
    out.family("flowdapt_http_request_duration_seconds", "histogram", "HTTP request latency by method, route template and status")
    grouped: dict[tuple, list] = {}
    for at, hist in list(http.values.items()):
        attributes = http.series.keys[at]
        key = (attributes.get("http.method", ""), attributes.get("http.target", ""), attributes.get("http.status_code", ""))
        entry = grouped.setdefault(key, [[0] * (len(DEFAULT_BOUNDS) + 1), 0, 0.0])
        for i, n in enumerate(hist.buckets):
            entry[0][i] += n
        entry[1] += hist.count
        entry[2] += hist.total
    for (method, route, status), (buckets, count, total) in sorted(grouped.items(), key=lambda kv: tuple(map(str, kv[0]))):
        out.histogram(
            "flowdapt_http_request_duration_seconds",
            {"method": method, "route": route, "status": status},
            (b / 1000 for b in DEFAULT_BOUNDS),
            buckets,
            count,
            total / 1000,
        )
    out.family("flowdapt_http_requests_in_flight", "gauge", "HTTP requests being served")
    out.sample("flowdapt_http_requests_in_flight", {}, max(0, metrics.active_requests))

    published = metrics.instruments["events_published"]
    out.family("flowdapt_events_published_total", "counter", "events this server published, by type")
    by_type: dict[str, float] = {}
    for at, value in list(published.values.items()):
        event_type = published.series.keys[at].get("event_type", "")
        by_type[event_type] = by_type.get(event_type, 0.0) + value
    for event_type, value in sorted(by_type.items()):
        out.sample("flowdapt_events_published_total", {"event_type": event_type}, int(value))

    process = psutil.Process(os.getpid())
    with process.oneshot():
        memory = process.memory_info()
        cpu = process.cpu_times()
        started = process.create_time()
    out.family("process_resident_memory_bytes", "gauge", "resident memory of the server process")
    out.sample("process_resident_memory_bytes", {}, memory.rss)
    out.family("process_cpu_seconds_total", "counter", "user and system CPU time of the server process")
    out.sample("process_cpu_seconds_total", {}, cpu.user + cpu.system)
    out.family("process_start_time_seconds", "gauge", "start time of the server process (Unix seconds)")
    out.sample("process_start_time_seconds", {}, started)
    out.family("flowdapt_uptime_seconds", "gauge", "seconds since the server's metrics started")
    out.sample("flowdapt_uptime_seconds", {}, time.time() - metrics.start_ns / 1e9)
    return out.text()
