"""Aggregates the dashboard needs in one request each, computed next to the database.

The public API answers one question per request (a run, a page of runs, a count). The overview
and the workflow list need a little of everything: the last run of every workflow, run counts per
state and per hour. Asking for those through the public API would cost the browser one request
per workflow or per hour; here they are a few indexed queries, whatever the number of runs.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from flowdapt.resources.base import utcnow
from flowdapt.resources.run import RunState, WorkflowRun
from flowdapt.storage import DocumentStore

#: How many recent finished runs the duration chart shows.
DURATION_SAMPLE = 300
FINAL_STATES = [RunState.finished.value, RunState.failed.value, RunState.cancelled.value]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def run_brief(run: WorkflowRun) -> dict[str, Any]:
    """What a list row shows of a run: no result, no stage records."""
    return {
        "uid": str(run.uid),
        "name": run.name,
        "workflow": run.workflow,
        "state": run.state.value,
        "source": run.source,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration": run.duration,
    }


def map_stage_names(workflow: Any) -> list[str]:
    return [
        s.name for s in workflow.spec.stages if s.type == "parameterized" or "map_on" in (s.options or {})
    ]


async def workflow_summaries(store: DocumentStore, persist: bool = True) -> list[dict[str, Any]]:
    """Every workflow with its stage counts, last run and number of runs in the last 24 hours."""
    workflows = await store.list("workflow")
    since = utcnow() - timedelta(hours=24)

    async def one(workflow: Any) -> dict[str, Any]:
        name = workflow.metadata.name
        last: list[WorkflowRun] = []
        count = 0
        if persist:
            last, count = await asyncio.gather(
                store.list_runs(workflow=name, limit=1), store.count_runs(workflow=name, since=since)
            )
        return {
            "name": name,
            "uid": str(workflow.metadata.uid),
            "annotations": dict(workflow.metadata.annotations or {}),
            "created_at": _iso(workflow.metadata.created_at),
            "updated_at": _iso(workflow.metadata.updated_at),
            "stages": len(workflow.spec.stages),
            "map_stages": map_stage_names(workflow),
            "last_run": run_brief(last[0]) if last else None,
            "runs_24h": count,
        }

    return list(await asyncio.gather(*(one(w) for w in workflows)))


async def overview(
    store: DocumentStore, persist: bool = True, hours: int = 24, now: datetime | None = None
) -> dict[str, Any]:
    """Counts per state over ``hours``, runs started and failed per hour, recent run durations."""
    now = now or utcnow()
    # Whole hours, so buckets line up with the clock and a refresh moves them one hour at a time.
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    edges = [end - timedelta(hours=hours - i) for i in range(hours + 1)]
    since = now - timedelta(hours=hours)
    states = [s.value for s in RunState]
    workflows = await store.list("workflow")
    result: dict[str, Any] = {
        "now": now.isoformat(),
        "hours": hours,
        "workflows": len(workflows),
        "runs_total": 0,
        "runs_by_state": {s: 0 for s in states},
        "throughput": [],
        "durations": [],
    }
    if not persist:
        return result

    # Counts of runs started at or after each edge; the difference of neighbours is a bucket.
    # count_runs has only a lower bound, so this is len(edges) indexed counts per series.
    async def cumulative(state: list[str] | None) -> list[int]:
        return list(await asyncio.gather(*(store.count_runs(state=state, since=e) for e in edges)))

    total, by_state, started, failed, recent = await asyncio.gather(
        store.count_runs(),
        asyncio.gather(*(store.count_runs(state=s, since=since) for s in states)),
        cumulative(None),
        cumulative([RunState.failed.value]),
        store.list_runs(state=FINAL_STATES, limit=DURATION_SAMPLE),
    )
    result["runs_total"] = total
    result["runs_by_state"] = dict(zip(states, by_state, strict=True))
    result["throughput"] = [
        {"start": _iso(edges[i]), "started": started[i] - started[i + 1], "failed": failed[i] - failed[i + 1]}
        for i in range(hours)
    ]
    result["durations"] = [run_brief(r) for r in reversed(recent) if r.duration is not None]
    return result
