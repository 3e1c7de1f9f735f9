"""Several servers on PostgreSQL and a broker, beside one server on SQLite, in the same run.

Starts real ``flowdapt run`` processes (fresh processes, Local executor) and measures:
  1. submit latency (POST /workflows/{id}/run?wait=false, sequential) p50/p99 and runs/s
     (8 concurrent clients): SQLite single server (the default) | PostgreSQL single server (no
     broker, so no queue) | the same with the run queue and the broker | PostgreSQL, two API
     servers + two compute servers + a trigger server (submits to both API servers);
  2. claim latency: a run recorded pending to its first stage started, on the two-API cluster;
  3. trigger chain latency across servers: run A finished -> condition rule on a trigger server
     -> run B's first stage started on a compute server (needs the broker);
  4. takeover: ``kill -9`` a compute server holding a run (``spec.retries: 1``) -> the run running
     again on the other compute server (lease 3 s).
Prints each figure and the ratios against SQLite; targets: PostgreSQL single-server submit p50
within 2x of SQLite, takeover within 10 s, 0 runs lost, 0 doubled.

    .venv/bin/python scripts/bench/cluster.py [--samples 300] [--seconds 3]
        [--dsn postgresql://postgres@127.0.0.1:5432/postgres] [--nats nats://127.0.0.1:4222]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx

STAGES = """
import time


def noop(x=None):
    return x


def sleep_then(seconds: float = 1.0):
    time.sleep(seconds)
    return seconds
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Fleet:
    """``flowdapt run`` processes sharing one configuration."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root, self.env, self.procs = root, env, []
        self.claims: list[float] = []

    def add(self, services: str) -> dict:
        name = f"{services.replace(',', '+')}-{len(self.procs)}"
        app = self.root / name
        (app / "user_modules").mkdir(parents=True)
        (app / "user_modules" / "bench_stages.py").write_text(STAGES)
        port = free_port() if "api" in services.split(",") else None
        env = {**os.environ, **self.env, "FLOWDAPT__APP_DIR": str(app), "FLOWDAPT__NAME": name}
        args = [sys.executable, "-m", "flowdapt.cli.main", "run", "--services", services]
        if port:
            args += ["--port", str(port)]
        log = (app / "server.log").open("wb")
        proc = {"name": name, "port": port, "process": subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT), "app": app}
        self.procs.append(proc)
        return proc

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p['port']}" for p in self.procs if p["port"]]

    def wait(self, servers: int | None = None, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                answers = [httpx.get(url + "/status", timeout=2).json() for url in self.urls()]
                listed = len(answers[0].get("cluster", {}).get("servers", [])) if answers else 0
                if servers is None or listed >= servers:
                    return
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.2)
        logs = "\n".join((p["app"] / "server.log").read_text(errors="replace")[-2000:] for p in self.procs)
        raise RuntimeError(f"servers did not come up:\n{logs}")

    def stop(self) -> None:
        for p in self.procs:
            if p["process"].poll() is None:
                p["process"].send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p["process"].wait(30)
            except subprocess.TimeoutExpired:
                p["process"].kill()


def workflow(name: str, target: str, **spec) -> dict:
    return {"kind": "workflow", "metadata": {"name": name}, "spec": {"stages": [{"name": "s", "target": f"user_modules.bench_stages.{target}"}], **spec}}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def submit_latency(urls: list[str], samples: int) -> tuple[float, float]:
    clients = [httpx.Client(base_url=u, timeout=30) for u in urls]
    times = []
    for i in range(samples + 20):
        client = clients[i % len(clients)]
        started = time.perf_counter()
        response = client.post("/workflows/noop/run", params={"wait": "false"}, json={})
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text
        if i >= 20:
            times.append(elapsed)
    for c in clients:
        c.close()
    return percentile(times, 0.5), percentile(times, 0.99)


async def _throughput(urls: list[str], seconds: float, concurrency: int = 8) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(url: str) -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while time.perf_counter() < deadline:
                response = await client.post("/workflows/noop/run", params={"wait": "false"}, json={})
                assert response.status_code == 200, response.text
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(urls[i % len(urls)]) for i in range(concurrency)))
    return done / (time.perf_counter() - started)


def wait_idle(url: str, timeout: float = 120) -> int:
    """Until no run is pending or running; returns how many runs exist."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=30) as http:
        while time.monotonic() < deadline:
            active = sum(http.get("/runs", params={"state": s, "limit": 1}).json()["total"] for s in ("pending", "running"))
            if not active:
                return http.get("/runs", params={"limit": 1}).json()["total"]
            time.sleep(0.3)
    raise RuntimeError("runs did not finish")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def claim_latencies(url: str, count: int) -> list[float]:
    with httpx.Client(base_url=url, timeout=30) as http:
        runs = http.get("/runs", params={"workflow": "noop", "limit": count}).json()["items"]
        values = []
        for run in runs:
            full = http.get(f"/runs/{run['name']}").json()
            stage = full["stages"].get("s") or {}
            if stage.get("started_at"):
                values.append((parse_time(stage["started_at"]) - parse_time(full["started_at"])).total_seconds())
    return values


def measure_submits(name: str, fleet: Fleet, args, rows: list, servers: int | None = None) -> tuple[float, float]:
    fleet.wait(servers)
    urls = fleet.urls()
    with httpx.Client(base_url=urls[0], timeout=30) as http:
        assert http.post("/workflows/", json=workflow("noop", "noop")).status_code == 200
    time.sleep(1.0)  # other servers see the workflow (the database is shared)
    p50, p99 = submit_latency(urls, args.samples)
    wait_idle(urls[0])
    # pending -> first stage started, for the sequential runs only (the throughput phase below
    # queues hundreds at once, and their wait would be counted as claim time)
    fleet.claims = claim_latencies(urls[0], args.samples)
    rate = asyncio.run(_throughput(urls, args.seconds))
    total = wait_idle(urls[0])
    rows.append([name, f"{p50 * 1000:.2f}", f"{p99 * 1000:.2f}", f"{rate:.0f}", str(total)])
    return p50, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--dsn", default=os.environ.get("FLOWDAPT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--nats", default=os.environ.get("FLOWDAPT_TEST_NATS_URL", "nats://127.0.0.1:4222"))
    args = parser.parse_args()
    try:
        import flowdapt_nats  # noqa: F401

        bus = args.nats
    except ImportError:
        bus = None
    base = {
        "FLOWDAPT__EXECUTOR__OPTIONS": json.dumps({"workers": 2}),
        "FLOWDAPT__COMPUTE__RUN_RETENTION_DURATION": "-1",
        "FLOWDAPT__API__SHUTDOWN_TIMEOUT": "3",
    }
    rows: list[list[str]] = []
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="flowdapt-bench-cluster-") as tmp:
        root = Path(tmp)
        sqlite = Fleet(root / "sqlite", base)
        sqlite.add("api,compute,triggers")
        try:
            figures["sqlite_p50"], figures["sqlite_rate"] = measure_submits("SQLite, one server", sqlite, args, rows)
        finally:
            sqlite.stop()

        def pg_env(schema: str, cluster: bool = True) -> dict[str, str]:
            env = {
                **base,
                "FLOWDAPT__DATABASE__BACKEND": "postgres",
                "FLOWDAPT__DATABASE__OPTIONS": json.dumps({"dsn": args.dsn, "schema": schema}),
                "FLOWDAPT__COMPUTE__LEASE_SECONDS": "3",
            }
            if cluster:
                env["FLOWDAPT__COMPUTE__RUN_QUEUE"] = "on"
                if bus:
                    env["FLOWDAPT__EVENT_BUS__URL"] = bus
                    env["FLOWDAPT__EVENT_BUS__OPTIONS"] = json.dumps({"prefix": schema, "max_bytes": 8 * 1024 * 1024})
            return env

        # One server on PostgreSQL as a user runs it (no broker: the queue stays off).
        single = Fleet(root / "pg1", pg_env(f"bench_{uuid.uuid4().hex[:10]}", cluster=False))
        single.add("api,compute,triggers")
        try:
            figures["pg1_p50"], figures["pg1_rate"] = measure_submits("PostgreSQL, one server", single, args, rows)
        finally:
            single.stop()
        # The same, as a member of a cluster (run queue on, the broker).
        queued = Fleet(root / "pg1q", pg_env(f"bench_{uuid.uuid4().hex[:10]}"))
        queued.add("api,compute,triggers")
        try:
            figures["pg1q_p50"], figures["pg1q_rate"] = measure_submits("PostgreSQL, one server, queue+broker", queued, args, rows, 1)
        finally:
            queued.stop()

        multi = Fleet(root / "pg2", pg_env(f"bench_{uuid.uuid4().hex[:10]}"))
        multi.add("api")
        multi.add("api")
        multi.add("compute")
        multi.add("compute")
        multi.add("triggers")
        try:
            figures["pg2_p50"], figures["pg2_rate"] = measure_submits("PostgreSQL, 2 API + 2 compute", multi, args, rows, 5)
            claims = multi.claims
            url = multi.urls()[0]
            chain = None
            with httpx.Client(base_url=url, timeout=60) as http:
                if bus:
                    http.post("/workflows/", json=workflow("first", "noop"))
                    http.post("/workflows/", json=workflow("second", "noop"))
                    http.post("/triggers/", json={
                        "kind": "trigger_rule", "metadata": {"name": "chain"},
                        "spec": {"type": "condition", "rule": {"and": [
                            {"eq": [{"var": "type"}, "com.event.workflow.workflow_finished"]},
                            {"eq": [{"var": "data.workflow"}, "first"]}]},
                            "action": {"target": "run_workflow", "parameters": {"workflow": "second"}}}})
                    time.sleep(1.0)
                    chains = []
                    for _ in range(10):
                        first = http.post("/workflows/first/run", params={"wait": "true"}, json={}).json()
                        deadline = time.monotonic() + 20
                        while time.monotonic() < deadline:
                            items = http.get("/runs", params={"workflow": "second", "limit": 1}).json()["items"]
                            second = http.get(f"/runs/{items[0]['name']}").json() if items else None
                            if second and second["started_at"] > first["finished_at"] and second["stages"].get("s", {}).get("started_at"):
                                chains.append((parse_time(second["stages"]["s"]["started_at"]) - parse_time(first["finished_at"])).total_seconds())
                                break
                            time.sleep(0.02)
                    chain = statistics.median(chains) if chains else None
                # takeover: the compute server holding the run is killed
                http.post("/workflows/", json=workflow("long", "sleep_then", retries=1))
                run = http.post("/workflows/long/run", params={"wait": "false"}, json={"seconds": 5}).json()
                holder = None
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and holder is None:
                    status = http.get("/status").json()
                    if http.get(f"/runs/{run['name']}").json()["state"] == "running":
                        for server in status["cluster"]["servers"]:
                            if server["services"] == ["compute"] and server["active_runs"]:
                                holder = server["pid"]
                    time.sleep(0.1)
                os.kill(holder, signal.SIGKILL)
                killed = time.monotonic()
                takeover = None
                while time.monotonic() - killed < 60:
                    current = http.get(f"/runs/{run['name']}").json()
                    if current.get("attempt") == 1 and current["state"] == "running":
                        takeover = time.monotonic() - killed
                        break
                    time.sleep(0.05)
        finally:
            multi.stop()
            if bus:  # the bench's streams (JetStream reserves their max_bytes) go with it
                from flowdapt_nats.bus import delete_streams

                asyncio.run(delete_streams(bus, "bench_*"))
    print(f"{'':32} {'submit p50 ms':>14} {'p99 ms':>8} {'runs/s':>8} {'runs':>6}")
    for row in rows:
        print(f"{row[0]:32} {row[1]:>14} {row[2]:>8} {row[3]:>8} {row[4]:>6}")
    print(f"claim latency (pending -> first stage started, sequential submits), 2 API + 2 compute: p50 {statistics.median(claims) * 1000:.1f} ms, p99 {percentile(claims, 0.99) * 1000:.1f} ms over {len(claims)} runs")
    print(f"trigger chain across servers (A finished -> B's stage started): {'%.1f ms' % (chain * 1000) if chain is not None else 'n/a (no broker plugin)'}")
    print(f"takeover of a killed compute server's run (lease 3 s): {f'{takeover:.2f} s' if takeover is not None else 'NOT TAKEN OVER'}")
    print(f"ratio PostgreSQL one server / SQLite submit p50: {figures['pg1_p50'] / figures['sqlite_p50']:.2f}x (target <= 2x)")
    print(f"ratio PostgreSQL one server with queue and broker / SQLite submit p50: {figures['pg1q_p50'] / figures['sqlite_p50']:.2f}x")
    print(f"ratio PostgreSQL 2 API / SQLite submit p50: {figures['pg2_p50'] / figures['sqlite_p50']:.2f}x; runs/s {figures['pg2_rate'] / figures['sqlite_rate']:.2f}x")


if __name__ == "__main__":
    main()
