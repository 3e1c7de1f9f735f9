"""Compute servers on other hosts, with the Dask executor against a shared Dask cluster on yet
another host (docs/multi-host.md). The hosts are network namespaces joined to this one by veth
pairs (tests/cluster/netns.py), so the database, the Dask scheduler and the event bus are reached
across a network, through forwarders on each host's gateway, never through loopback:

    root namespace:  PostgreSQL 127.0.0.1:5432, [NATS 127.0.0.1:4222], API server 127.0.0.1
                     forwarders on each host's gateway -> PostgreSQL, NATS, the Dask scheduler
    host "dask":     dask scheduler + 2 workers on the host's own address
    host "host-a":   flowdapt run --services compute, executor.backend dask
    host "host-b":   the same (the second scenario)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.cluster import netns
from tests.cluster.conftest import Cluster, Proc, wait_for, workflow

pytestmark = pytest.mark.timeout(120)

SCHEDULER_PORT = 8786
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


@dataclass
class Site:
    """A compute host and the forwarders that make the shared services reachable from it."""

    host: netns.Host
    postgres: netns.Forwarder
    scheduler: netns.Forwarder
    nats: netns.Forwarder | None = None


@dataclass
class Hosts:
    net: netns.Network
    dask: netns.Host
    scheduler: str  # as the root namespace reaches it
    pg_target: tuple[str, int]
    sites: dict[str, Site] = field(default_factory=dict)

    def site(self, label: str, bus: str | None) -> Site:
        if label not in self.sites:
            host = self.net.add_host(label)
            site = Site(
                host,
                self.net.forward(host, self.pg_target),
                self.net.forward(host, (self.dask.ip, SCHEDULER_PORT)),
            )
            self.sites[label] = site
        site = self.sites[label]
        if bus and site.nats is None:
            parts = urlsplit(bus)
            site.nats = self.net.forward(site.host, (parts.hostname or "127.0.0.1", parts.port or 4222))
        return site


def _postgres_target(dsn: str) -> tuple[str, int]:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    host = str(params.get("hostaddr") or params.get("host") or "127.0.0.1")
    if host.startswith("/"):
        pytest.skip(f"the test database is on a unix socket ({host}); the namespace hosts need TCP")
    return host, int(params.get("port") or 5432)


@pytest.fixture(scope="module")
def hosts(postgres_dsn, tmp_path_factory) -> Iterator[Hosts]:
    reason = netns.unavailable()
    if reason:
        pytest.skip(f"multi-host test: {reason}")
    pytest.importorskip("flowdapt_postgres")
    pytest.importorskip("flowdapt_dask")
    distributed = pytest.importorskip("distributed")
    logs = tmp_path_factory.mktemp("dask-host")
    dask_cli = str(Path(sys.executable).parent / "dask")
    procs: list[subprocess.Popen] = []
    with netns.Network() as net:
        dask_host = net.add_host("dask")
        address = f"tcp://{dask_host.ip}:{SCHEDULER_PORT}"

        def start(name: str, argv: list[str]) -> None:
            procs.append(dask_host.popen(argv, stdout=(logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT))

        try:
            start("scheduler", [dask_cli, "scheduler", "--host", dask_host.ip, "--port", str(SCHEDULER_PORT), "--no-dashboard"])
            for i in (1, 2):
                start(f"worker-{i}", [
                    dask_cli, "worker", address, "--host", dask_host.ip, "--nthreads", "1", "--nworkers", "1",
                    "--resources", "CPU=1", "--memory-limit", "2GB", "--no-dashboard", "--name", f"dask-w{i}",
                    "--local-directory", str(logs / f"w{i}"),
                ])  # fmt: skip
            try:
                # The root namespace reaches a host's own address directly (a connected route).
                with distributed.Client(address, timeout=30) as client:
                    client.wait_for_workers(2, timeout=60)
            except Exception as exc:
                text = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(logs.glob("*.log")))
                raise RuntimeError(f"the Dask cluster on host dask ({address}) did not start: {exc}\n{text}") from exc
            yield Hosts(net, dask_host, address, _postgres_target(postgres_dsn))
        finally:
            # Workers first (they close faster while their scheduler is there), then the scheduler.
            for group in (procs[1:], procs[:1]):
                for proc in group:
                    proc.send_signal(signal.SIGTERM)
                for proc in group:
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)


def _compute_on(cluster: Cluster, hosts: Hosts, label: str, **overrides: object) -> tuple[Proc, Site]:
    """``flowdapt run --services compute`` inside host ``label``, on the Dask cluster of host dask
    (``overrides``: environment variables that replace the ones made here)."""
    from psycopg.conninfo import make_conninfo

    site = hosts.site(label, cluster.bus)
    env: dict[str, object] = {
        "FLOWDAPT__DATABASE__OPTIONS": {
            "dsn": make_conninfo(cluster.dsn, host=site.host.gateway, port=str(site.postgres.port)),
            "schema": cluster.schema,
        },
        "FLOWDAPT__EXECUTOR__BACKEND": "dask",
        "FLOWDAPT__EXECUTOR__OPTIONS": {"address": f"tcp://{site.scheduler.address}", "connect_timeout": 20},
    }
    if site.nats is not None:
        env["FLOWDAPT__EVENT_BUS__URL"] = f"nats://{site.nats.address}"
    env.update(overrides)
    return cluster.add("compute", label, env=env, launcher=site.host.command), site


def _connect_from(host: netns.Host, address: str, port: int, timeout: float = 1.0) -> str:
    done = host.run([sys.executable, "-c", CONNECT, address, str(port), str(timeout)])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _finished(http, run: dict, timeout: float = 40) -> dict:
    def check():
        current = http.get(f"/runs/{run['name']}").json()
        if current["state"] in ("failed", "cancelled"):
            raise AssertionError(f"run {run['name']} ended {current['state']}: {current.get('error')}")
        return current["state"] == "finished" and current

    return wait_for(check, timeout=timeout, interval=0.1, what=f"run {run['name']} to finish")


def _owner(cluster: Cluster, run: dict) -> tuple[str | None, str | None]:
    """The run's ``owner`` (the server process that drives it: ``host:pid:start``) and its lease
    holder, as the store has them (the API leaves ``owner`` out of what it shows)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(cluster.dsn, connect_timeout=5) as conn:
        row = conn.execute(
            sql.SQL("SELECT doc::json ->> 'owner', lease_owner FROM {}.runs WHERE name = %s").format(sql.Identifier(cluster.schema)),
            (run["name"],),
        ).fetchone()
    assert row is not None, f"run {run['name']} is not in the store"
    return row[0], row[1]


def _submit(http, name: str, body: dict | None = None) -> dict:
    response = http.post(f"/workflows/{name}/run", params={"wait": "false"}, json=body or {})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_compute_server_on_another_host_runs_the_api_servers_runs_on_a_dask_cluster_on_a_third(cluster, hosts):
    api = cluster.add("api")
    compute, site = _compute_on(cluster, hosts, "host-a")
    servers = cluster.wait_ready(2)
    # The cluster list: the compute server reports the host it runs on and its pid.
    (listed,) = [s for s in servers if s["services"] == ["compute"]]
    assert listed["host"] == "host-a" and listed["pid"] == compute.process.pid, listed
    with cluster.http(api) as http:
        for doc in (
            workflow("squares", ("make", "make", []), ("total", "total", ["make"])),
            workflow("where", ("where", "where", [])),
        ):
            assert http.post("/workflows/", json=doc).status_code == 200
        squares = _finished(http, _submit(http, "squares", {"n": 5}))
        where = _finished(http, _submit(http, "where"))
    # Driven by the compute server in host-a; the stage ran on a Dask worker in host dask.
    for run in (squares, where):
        owner, _ = _owner(cluster, run)
        assert owner and owner.startswith(f"host-a:{compute.process.pid}:"), owner
    assert squares["result"] == 10
    assert where["result"]["host"] == "dask" and where["result"]["pid"] in hosts.dask.pids(), where["result"]
    # What crossed a network really did: host-a cannot reach the database on the root namespace's
    # loopback, nor the scheduler's host directly (nothing forwards packets between hosts) ...
    pg_host, pg_port = hosts.pg_target
    assert _connect_from(site.host, pg_host, pg_port) == "ConnectionRefusedError"
    assert _connect_from(site.host, hosts.dask.ip, SCHEDULER_PORT) != "connected"
    assert _connect_from(site.host, site.scheduler.host, site.scheduler.port) == "connected"
    # ... and the forwarders on its gateway carried its traffic, from its own address.
    for fwd in (site.postgres, site.scheduler):
        assert fwd.peers and set(fwd.peers) <= {site.host.ip}, (fwd.target, fwd.peers)
        assert fwd.bytes_in > 0 and fwd.bytes_out > 0, fwd


def test_a_compute_server_killed_on_one_host_loses_its_run_to_one_on_another_host(cluster, hosts):
    api = cluster.add("api")
    computes = {}
    for label in ("host-a", "host-b"):
        computes[label], _ = _compute_on(cluster, hosts, label)
    cluster.wait_ready(3)
    with cluster.http(api) as http:
        doc = workflow("long", ("sleep", "sleep_then", []), ("where", "where", ["sleep"]), retries=1)
        assert http.post("/workflows/", json=doc).status_code == 200
        run = _submit(http, "long", {"seconds": 4})
        wait_for(lambda: http.get(f"/runs/{run['name']}").json()["state"] == "running", interval=0.1, what="the run running")
        owner, lease = _owner(cluster, run)
        holder = (owner or "").split(":")[0]
        other = "host-b" if holder == "host-a" else "host-a"
        assert holder in computes and owner == lease, (owner, lease)
        assert owner.startswith(f"{holder}:{computes[holder].process.pid}:"), owner
        killed_at = time.monotonic()
        assert computes[holder].kill(signal.SIGKILL) == -signal.SIGKILL
        final = _finished(http, run, timeout=40)
        taken_over_in = time.monotonic() - killed_at
    # Run again (spec.retries: 1) by the compute server on the other host, on the Dask cluster.
    assert final["attempt"] == 1, final
    owner, _ = _owner(cluster, final)
    assert owner and owner.startswith(f"{other}:{computes[other].process.pid}:"), owner
    assert final["result"]["host"] == "dask", final["result"]
    # Lease 3 s (+ a reaper pass) then the 4 s run again.
    assert taken_over_in < 3 * 1.5 + 4 + 8, taken_over_in
    assert computes[other].alive()


def test_a_compute_server_on_a_host_that_cannot_reach_the_database_or_the_scheduler_says_which_address(cluster, hosts):
    # Addresses right on one machine, wrong on another host: the root namespace's loopback
    # database, and the scheduler's own address (no route: nothing forwards between hosts).
    from psycopg.conninfo import conninfo_to_dict

    pg_host, pg_port = hosts.pg_target
    scheduler = f"tcp://{hosts.dask.ip}:{SCHEDULER_PORT}"
    started = time.monotonic()
    no_db, _ = _compute_on(
        cluster, hosts, "host-a", FLOWDAPT__DATABASE__OPTIONS={"dsn": cluster.dsn, "schema": cluster.schema}
    )
    no_dask, _ = _compute_on(
        cluster, hosts, "host-b", FLOWDAPT__EXECUTOR__OPTIONS={"address": scheduler, "connect_timeout": 3}
    )
    assert no_db.process.wait(30) != 0
    assert no_dask.process.wait(30) != 0
    elapsed = time.monotonic() - started
    assert f"{pg_host}:{pg_port}" in no_db.output() and "database.options.dsn" in no_db.output(), no_db.output()
    assert conninfo_to_dict(cluster.dsn)["dbname"] in no_db.output()
    assert f"cannot reach the Dask scheduler at {scheduler} within 3s" in no_dask.output(), no_dask.output()
    assert elapsed < 25, elapsed
