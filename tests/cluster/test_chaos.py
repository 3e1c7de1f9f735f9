"""Several servers under load, one process of each kind killed (issue "Several servers, one
cluster"): 2 API + 2 compute + 2 trigger processes on one PostgreSQL database and one NATS broker,
a minute of mixed load (runs submitted to both API servers, a schedule every second, a condition
chain), ``kill -9`` of one API, one compute and one trigger process mid-load, each restarted. Then
every run is counted from the database: each accepted run reached a final state once, no schedule
due time fired twice or was missed beyond the misfire grace, and every chained run happened once."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest

from tests.cluster.conftest import Load, wait_for, workflow

pytestmark = pytest.mark.timeout(400)

LOAD_SECONDS = float(os.environ.get("FLOWDAPT_CHAOS_SECONDS", "60"))
MISFIRE_GRACE = 5.0


def _rows(cluster, sql: str, *params):
    import psycopg

    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{cluster.schema}"')
        return conn.execute(sql, params).fetchall()


def _runs(cluster) -> list[dict]:
    return [json.loads(doc) if isinstance(doc, str) else doc for (doc,) in _rows(cluster, "SELECT doc FROM runs")]


def test_two_of_each_service_under_load_with_a_process_of_each_kind_killed(cluster):
    if not cluster.bus:
        pytest.skip("the several-server test needs the broker plugin (flowdapt-nats) and a NATS server")
    apis = [cluster.add("api", f"api-{i}") for i in range(2)]
    computes = [cluster.add("compute", f"compute-{i}") for i in range(2)]
    triggers = [cluster.add("triggers", f"triggers-{i}") for i in range(2)]
    cluster.wait_ready(6, timeout=120)
    with cluster.http(apis[0]) as http:
        for doc in (
            workflow("work", ("sleep", "sleep_then", []), retries=3),
            workflow("tick", ("sleep", "sleep_then", []), retries=3),
            workflow("chain_a", ("sleep", "sleep_then", []), retries=3),
            workflow("chain_b", ("sleep", "sleep_then", []), retries=3),
        ):
            assert http.post("/workflows/", json=doc).status_code == 200
        rules = [
            {
                "kind": "trigger_rule",
                "metadata": {"name": "every-second"},
                "spec": {"type": "schedule", "rule": ["* * * * * *"],
                         "action": {"target": "run_workflow", "parameters": {"workflow": "tick", "input": {"seconds": 0.05}}}},
            },
            {
                "kind": "trigger_rule",
                "metadata": {"name": "a-then-b"},
                "spec": {
                    "type": "condition",
                    "rule": {"and": [
                        {"eq": [{"var": "type"}, "com.event.workflow.workflow_finished"]},
                        {"eq": [{"var": "data.workflow"}, "chain_a"]},
                        {"eq": [{"var": "data.state"}, "finished"]},
                    ]},
                    "action": {"target": "run_workflow",
                               "parameters": {"workflow": "chain_b", "input": {"seconds": {"var": "data.input.seconds"}}}},
                },
            },
        ]
        for rule in rules:
            assert http.post("/triggers/", json=rule).status_code == 200, rule
    time.sleep(2.5)  # every trigger server has the rules (resource events, resync)
    urls = [p.url for p in apis]
    work = Load(urls, "work", 0.1, {"seconds": 0.3})
    chain = Load(urls, "chain_a", 0.5, {"seconds": 0.1})
    started = time.monotonic()
    work.thread.start()
    chain.thread.start()
    def busy_compute():
        """The compute process that holds runs right now (so the kill has something to lose)."""
        owners = _rows(cluster, "SELECT lease_owner FROM runs WHERE lease_owner IS NOT NULL AND state IN ('pending', 'running')")
        busy = {int(owner.split(":")[1]) for (owner,) in owners}
        return next((p for p in computes if p.process.pid in busy), None)

    killed: list[str] = []
    plan = [(0.25, busy_compute), (0.45, lambda: apis[0]), (0.65, lambda: triggers[0])]
    for fraction, choose in plan:
        time.sleep(max(0.0, started + fraction * LOAD_SECONDS - time.monotonic()))
        victim = wait_for(choose, timeout=10, interval=0.05, what="a process to kill")
        pid = victim.process.pid
        assert victim.kill(signal.SIGKILL) == -signal.SIGKILL
        held_at_kill = _rows(cluster, "SELECT uid, state FROM runs WHERE lease_owner LIKE %s AND state IN ('pending', 'running')", f"%:{pid}:%")
        print("KILL", victim.name, pid, held_at_kill)
        killed.extend(uid for uid, _ in held_at_kill)
        time.sleep(3)
        victim.start()
    time.sleep(max(0.0, started + LOAD_SECONDS - time.monotonic()))
    work.stop.set()
    chain.stop.set()
    work.thread.join(15)
    chain.thread.join(15)
    stop_schedules = datetime.utcnow()
    with cluster.http(apis[1]) as http:
        http.delete("/triggers/every-second")
    cluster.wait_ready(6, timeout=60)

    def settled():
        runs = _runs(cluster)
        return runs if runs and not [r for r in runs if r["state"] in ("pending", "running")] else None

    runs = wait_for(settled, timeout=90, interval=1.0, what="every run to end")
    by_uid = {r["uid"]: r for r in runs}
    by_workflow = Counter(r["workflow"] for r in runs)
    attempts = Counter((r["workflow"], r.get("attempt", 0)) for r in runs)
    owners = Counter((r.get("owner") or "?").split(":")[1] for r in runs)
    report = (
        f"{len(runs)} runs {dict(by_workflow)}; attempts {dict(attempts)}; owner pids {dict(owners)}; work accepted {len(work.accepted)} refused {work.refused} "
        f"unknown {work.unknown}; chain_a accepted {len(chain.accepted)}"
    )
    print(report)
    assert len(work.accepted) > LOAD_SECONDS * 3, report

    # 1. Every accepted run is recorded once and ended; the work survived the killed compute server.
    for uid in work.accepted + chain.accepted:
        assert uid in by_uid, f"accepted run {uid} is lost; {report}"
    assert len(set(work.accepted)) == len(work.accepted)
    extra = by_workflow["work"] - len(work.accepted)
    assert 0 <= extra <= work.unknown, f"runs nobody asked for: {report}"
    states = Counter(by_uid[uid]["state"] for uid in work.accepted)
    assert set(states) == {"finished"}, f"{states}; {report}"
    print("HELD BY THE KILLED", [(by_uid[u]["state"], by_uid[u]["attempt"], by_uid[u]["owner"]) for u in killed if u in by_uid])
    assert any(by_uid[uid]["attempt"] for uid in work.accepted), "no run was taken over from the killed compute server"

    # 2. Schedules: one run per due time, none missed beyond the misfire grace.
    dues = sorted(datetime.fromisoformat(r["triggered_by"]["due"]) for r in runs if r["workflow"] == "tick")
    assert dues, report
    doubled = [d for d, n in Counter(dues).items() if n > 1]
    assert not doubled, f"due times fired twice: {doubled}"
    gaps = [(a, b) for a, b in zip(dues, dues[1:], strict=False) if (b - a).total_seconds() > 1 + MISFIRE_GRACE]
    assert not gaps, f"schedule gaps beyond the misfire grace: {gaps}"
    assert dues[-1] >= stop_schedules - timedelta(seconds=1 + MISFIRE_GRACE)
    assert all(r["state"] == "finished" for r in runs if r["workflow"] == "tick")

    # 3. The chain: one chain_b per finished chain_a, each exactly once.
    finished_a = [by_uid[uid] for uid in chain.accepted if by_uid[uid]["state"] == "finished"]
    b_runs = [r for r in runs if r["workflow"] == "chain_b"]
    by_event = Counter((r["triggered_by"] or {}).get("event") for r in b_runs)
    assert all(n == 1 for n in by_event.values()), f"a chained run happened twice: {by_event.most_common(3)}"
    assert len(b_runs) == len(finished_a), f"{len(b_runs)} chained runs for {len(finished_a)} finished chain_a runs; {report}"
    assert all(r["state"] == "finished" for r in b_runs)
