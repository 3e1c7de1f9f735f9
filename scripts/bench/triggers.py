"""Benchmark triggers through a live server: chain latency and schedule lateness.

1. Chain latency: workflow A finishes -> a condition rule -> workflow B starts. Measured from the run
   records the server keeps: B's ``started_at`` minus A's ``finished_at`` (both server-side UTC
   timestamps), over N chains run one after another. Beside it, the same chain on the original
   Flowdapt 0.1.52 (side venv ``.bench/original``, created on first use with
   ``flowdapt==0.1.52 fastapi==0.119.0 cloudpickle==3.1.1``) when it installs.
2. Schedule lateness: a one-second schedule (``* * * * * *``) runs a no-op workflow; lateness is the
   run's ``started_at`` minus the due time it fired for, over 20 firings. The original cannot run this
   (5-field cron, minute resolution, schedules polled every 5 s), so it has no column there.

Both servers run as separate processes started here, with their defaults (ours: SQLite, in-memory
event bus, Local executor; the original: TinyDB, memory broker, LocalExecutor), and stage code in the
app dir's ``user_modules``.

    .venv/bin/python scripts/bench/triggers.py [--chains 200] [--original-chains 20] [--firings 20] [--no-original]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import original_venv  # noqa: E402

STAGES = """
def noop(x=None):
    return x
"""

VERSION_HEADERS = {"X-API-Version": "workflow.v1alpha1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, label: str, command: list[str], env: dict[str, str], app_dir: Path, port: int):
        self.label, self.app_dir, self.url = label, app_dir, f"http://127.0.0.1:{port}"
        (app_dir / "user_modules").mkdir(parents=True, exist_ok=True)
        (app_dir / "user_modules" / "__init__.py").write_text("")
        (app_dir / "user_modules" / "bench_stages.py").write_text(STAGES)
        self.log = open(app_dir / "server.log", "wb")
        self.process = subprocess.Popen(command, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT, cwd=app_dir)
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{label} exited: {(app_dir / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/", timeout=1, headers={"X-API-Version": "system.v1alpha1"}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label} did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def start_ours(app_dir: Path) -> Server:
    port = free_port()
    env = {"FLOWDAPT__APP_DIR": str(app_dir), "FLOWDAPT__LOGGING__LEVEL": "WARNING"}
    return Server("ours", [sys.executable, "-m", "flowdapt.server", "--port", str(port)], env, app_dir, port)


def start_original(python: Path, app_dir: Path) -> Server:
    port = free_port()
    env = {
        "FLOWDAPT__APP_DIR": str(app_dir),
        "FLOWDAPT__RPC__API__PORT": str(port),
        "FLOWDAPT__RPC__API__HOST": "127.0.0.1",
        "FLOWDAPT__LOGGING__LEVEL": "WARNING",
    }
    return Server("original 0.1.52", [str(python.parent / "flowdapt"), "run"], env, app_dir, port)


def workflow(name: str) -> dict:
    return {"kind": "workflow", "metadata": {"name": name}, "spec": {"stages": [{"name": "s", "target": "user_modules.bench_stages.noop"}]}}


def chain_rule(name: str, on: str, run: str) -> dict:
    return {
        "kind": "trigger_rule",
        "metadata": {"name": name},
        "spec": {
            "type": "condition",
            "rule": {
                "and": [
                    {"eq": [{"var": "type"}, "com.event.workflow.workflow_finished"]},
                    {"eq": [{"var": "data.workflow"}, on]},
                    {"eq": [{"var": "data.state"}, "finished"]},
                ]
            },
            "action": {"target": "run_workflow", "parameters": {"workflow": run}},
        },
    }


def post(client: httpx.Client, path: str, kind: str, doc: dict) -> None:
    response = client.post(path, json=doc, headers={"X-API-Version": f"{kind}.v1alpha1"})
    response.raise_for_status()


def runs_of(client: httpx.Client, workflow: str, limit: int) -> list[dict]:
    response = client.get(f"/workflows/{workflow}/run", params={"limit": limit}, headers={"X-API-Version": "workflow_run.v1alpha1"})
    response.raise_for_status()
    return response.json()


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def chain_latencies(server: Server, chains: int) -> list[float]:
    """Seconds from A's finish to B's start, one chain at a time."""
    with httpx.Client(base_url=server.url, timeout=120) as client:
        post(client, "/workflows/", "workflow", workflow("chain_a"))
        post(client, "/workflows/", "workflow", workflow("chain_b"))
        post(client, "/triggers/", "trigger_rule", chain_rule("a_then_b", "chain_a", "chain_b"))
        time.sleep(0.5)
        latencies = []
        for i in range(chains + 1):
            response = client.post("/workflows/chain_a/run", json={}, params={"wait": "true"}, headers={"X-API-Version": "workflow_run.v1alpha1"})
            response.raise_for_status()
            run_a = response.json()
            if run_a["state"] != "finished":
                raise RuntimeError(f"{server.label}: workflow A did not finish: {run_a}")
            deadline = time.monotonic() + 30
            while True:
                b_runs = runs_of(client, "chain_b", 5)
                after = [r for r in b_runs if ts(r["started_at"]) >= ts(run_a["finished_at"])]
                if after and all(r["state"] in ("finished", "failed") for r in after):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server.label}: workflow B did not start after chain {i}")
                time.sleep(0.005)
            if i > 0:  # the first chain warms up worker processes and imports
                start_b = min(ts(r["started_at"]) for r in after)
                latencies.append((start_b - ts(run_a["finished_at"])).total_seconds())
    return latencies


def schedule_lateness(server: Server, firings: int) -> list[float]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        post(client, "/workflows/", "workflow", workflow("tick"))
        rule = {
            "kind": "trigger_rule",
            "metadata": {"name": "every_second"},
            "spec": {"type": "schedule", "rule": ["* * * * * *"], "action": {"target": "run_workflow", "parameters": {"workflow": "tick"}}},
        }
        post(client, "/triggers/", "trigger_rule", rule)
        deadline = time.monotonic() + firings + 30
        while True:
            runs = runs_of(client, "tick", firings + 5)
            if len(runs) >= firings + 1 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        client.delete("/triggers/every_second", headers={"X-API-Version": "trigger_rule.v1alpha1"})
    runs = sorted(runs, key=lambda r: r["started_at"])[1 : firings + 1]  # skip the first (rule just applied)
    return [(ts(r["started_at"]) - ts(r["triggered_by"]["due"])).total_seconds() for r in runs]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chains", type=int, default=200)
    parser.add_argument("--original-chains", type=int, default=20)
    parser.add_argument("--firings", type=int, default=20)
    parser.add_argument("--no-original", action="store_true")
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="flowdapt-bench-triggers-") as tmp:
        server = start_ours(Path(tmp) / "ours")
        try:
            lat = chain_latencies(server, args.chains)
            late = schedule_lateness(server, args.firings)
        finally:
            server.stop()
        results["ours"] = {
            "chains": len(lat), "p50": statistics.median(lat), "p99": pct(lat, 99), "max": max(lat),
            "late_p50": statistics.median(late), "late_max": max(late), "firings": len(late),
        }
        if not args.no_original:
            python = original_venv()
            if python is None:
                print("original Flowdapt could not be installed: no comparison column", file=sys.stderr)
            else:
                try:
                    original = start_original(python, Path(tmp) / "original")
                except RuntimeError as exc:
                    print(f"original Flowdapt did not start: {exc}", file=sys.stderr)
                else:
                    try:
                        lat_o = chain_latencies(original, args.original_chains)
                        results["original"] = {"chains": len(lat_o), "p50": statistics.median(lat_o), "p99": pct(lat_o, 99), "max": max(lat_o)}
                    finally:
                        original.stop()

    ours, theirs = results["ours"], results.get("original")
    print(f"\nTrigger benchmark on {os.cpu_count()} CPUs (each server a separate process started here)")
    print(f"{'':44s} {'ours':>12s} {'original':>12s}")
    print(f"{'A finish -> B start, chains measured':44s} {ours['chains']:>12d} {theirs['chains'] if theirs else '-':>12}")
    for key, label in (("p50", "p50"), ("p99", "p99"), ("max", "max")):
        print(f"{'A finish -> B start, ' + label:44s} {ms(ours[key]):>12s} {ms(theirs[key]) if theirs else '-':>12s}")
    print(f"{'1 s schedule lateness (run start - due), p50':44s} {ms(ours['late_p50']):>12s} {'n/a':>12s}")
    print(f"{'1 s schedule lateness, max over ' + str(ours['firings']):44s} {ms(ours['late_max']):>12s} {'n/a':>12s}")
    print("targets: chain p50 <= 5 ms, p99 <= 25 ms (in-memory bus); schedule lateness <= 100 ms")
    print("original: no sub-minute schedules (5-field cron, schedules polled every 5 s)")


if __name__ == "__main__":
    main()
