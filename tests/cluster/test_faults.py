"""Faults under load: the database goes away and comes back while an API server and a compute
server (separate processes) take runs; every accepted run ends once, none is lost or doubled."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from tests.cluster.conftest import Load, TcpProxy, wait_for, workflow

pytestmark = pytest.mark.timeout(240)


def _runs(cluster, dsn: str) -> list[dict]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{cluster.schema}"')
        return [json.loads(d) if isinstance(d, str) else d for (d,) in conn.execute("SELECT doc FROM runs").fetchall()]


def _database_restart_under_load(cluster, *, keyed: bool) -> tuple[Load, list[dict]]:
    """An API and a compute server (separate processes) on PostgreSQL behind a proxy; runs come at
    20/s; the database goes away for 3 s and comes back. Returns the load and the stored runs."""
    real_dsn = cluster.dsn
    port = int(real_dsn.rsplit(":", 1)[1].split("/")[0])
    proxy = TcpProxy(port)
    proxy.start()
    try:
        cluster.dsn = real_dsn.replace(f"127.0.0.1:{port}", f"127.0.0.1:{proxy.port}")
        cluster.settings = {
            "FLOWDAPT__COMPUTE__LEASE_SECONDS": "6",
            "FLOWDAPT__DATABASE__OPTIONS": {"dsn": cluster.dsn, "schema": cluster.schema, "pool_timeout": 2, "connect_timeout": 2},
        }
        api = cluster.add("api")
        cluster.add("compute")
        cluster.wait_ready(2)
        with cluster.http(api) as http:
            assert http.post("/workflows/", json=workflow("work", ("sleep", "sleep_then", []))).status_code == 200
        load = Load([api.url], "work", 0.05, {"seconds": 0.5}, keyed=keyed)
        load.thread.start()
        time.sleep(4)
        proxy.stop()  # the database restarts: every connection drops, new ones are refused
        down = len(load.accepted)
        time.sleep(3)
        proxy.start()
        time.sleep(6)
        load.stop.set()
        load.thread.join(30)
        assert len(load.accepted) > down + 10, "the servers did not take runs again after the database came back"

        def settled():
            runs = _runs(cluster, real_dsn)
            return runs if runs and not [r for r in runs if r["state"] in ("pending", "running")] else None

        runs = wait_for(settled, timeout=60, interval=1.0, what="every run to end")
        for proc in cluster.procs:
            assert proc.alive(), proc.output()
        return load, runs
    finally:
        proxy.close()


def test_a_database_restart_mid_load_loses_and_doubles_no_run(cluster):
    load, runs = _database_restart_under_load(cluster, keyed=False)
    by_uid = {r["uid"]: r for r in runs}
    lost = [uid for uid in load.accepted if uid not in by_uid]
    assert not lost, f"{len(lost)} accepted runs lost"
    assert 0 <= len(runs) - len(load.accepted) <= load.unknown
    states = Counter(by_uid[uid]["state"] for uid in load.accepted)
    unfinished = {uid: by_uid[uid].get("error") for uid in load.accepted if by_uid[uid]["state"] != "finished"}
    assert set(states) == {"finished"}, (states, unfinished)
    assert not [uid for uid in load.accepted if by_uid[uid]["attempt"]], "a run was run twice"
    assert load.refused + load.unknown > 0, "the outage was not seen (no request refused)"


def test_a_client_retrying_with_idempotency_keys_through_a_database_restart_gets_each_run_once(cluster):
    """The ambiguous answers of the outage (a 503 after the insert may have committed) are sent
    again with their Idempotency-Key until answered: every intended run exists exactly once."""
    load, runs = _database_restart_under_load(cluster, keyed=True)
    assert load.unknown + load.refused > 0, "the outage was not seen (no request refused)"
    assert load.unresolved == 0
    assert len(set(load.accepted)) == len(load.accepted), "a key's retry was answered with another run"
    assert sorted(r["uid"] for r in runs) == sorted(load.accepted), "a run exists that no answer named, or one is missing"
    states = Counter(r["state"] for r in runs)
    assert set(states) == {"finished"}, (states, {r["uid"]: r.get("error") for r in runs if r["state"] != "finished"})
    assert not [r for r in runs if r["attempt"]], "a run was run twice"
