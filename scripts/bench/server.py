"""Benchmark the API server through HTTP, beside the original Flowdapt 0.1.52 when it installs.

Measures, on this machine, each against a server started here with its default backends
(ours: SQLite + Local process pool; the original: TinyDB + its LocalExecutor):
  1. GET /workflows/ requests per second (10 workflows stored, 8 keep-alive connections);
  2. POST /workflows/{id}/run?wait=false runs per second (a one-stage no-op workflow);
  3. a 10,000-item no-op map run with wait=true, end to end (best of 3 after a warm-up);
  4. server RSS over many consecutive runs (ours; --rss-runs, default 2000).

    .venv/bin/python scripts/bench/server.py [--seconds 3] [--rss-runs 10000] [--no-original]

The original runs from a side venv (.bench/orig-venv; created on first use with
`flowdapt==0.1.52 fastapi==0.119.0 cloudpickle==3.1.1`). Ratios are ours over theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL_VENV = ROOT / ".bench" / "orig-venv"

STAGES = """
def noop(x=None):
    return x


def items(n: int = 10000):
    return list(range(n))


def total(xs):
    return len(xs)
"""


#: Sequential submits timed for the latency percentiles.
SUBMIT_SAMPLES = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def workflows(count: int) -> list[dict]:
    docs = [
        {
            "kind": "workflow",
            "metadata": {"name": "noop"},
            "spec": {"stages": [{"name": "noop", "target": "user_modules.bench_stages.noop"}]},
        },
        {
            "kind": "workflow",
            "metadata": {"name": "map10k"},
            "spec": {
                "stages": [
                    {"name": "items", "target": "user_modules.bench_stages.items"},
                    {"name": "map", "target": "user_modules.bench_stages.noop", "type": "parameterized", "depends_on": ["items"]},
                    {"name": "total", "target": "user_modules.bench_stages.total", "depends_on": ["map"]},
                ]
            },
        },
    ]
    for i in range(count - len(docs)):
        docs.append(
            {
                "kind": "workflow",
                "metadata": {"name": f"filler-{i}", "annotations": {"group": "bench"}},
                "spec": {
                    "stages": [
                        {"name": "a", "target": "user_modules.bench_stages.items"},
                        {"name": "b", "target": "user_modules.bench_stages.noop", "type": "parameterized", "depends_on": ["a"]},
                    ]
                },
            }
        )
    return docs


class Server:
    def __init__(self, label: str, command: list[str], env: dict[str, str], app_dir: Path, port: int):
        self.label, self.app_dir, self.port = label, app_dir, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(app_dir / "server.log", "wb")
        self.process = subprocess.Popen(command, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT, cwd=app_dir)
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{label} server exited: {(app_dir / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label} server did not start")
            time.sleep(0.2)

    def rss(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss

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
    return Server("flowdapt (ours)", [sys.executable, "-m", "flowdapt.server", "--port", str(port)], env, app_dir, port)


def ensure_original() -> Path | None:
    python = ORIGINAL_VENV / "bin" / "python"
    if not (ORIGINAL_VENV / "bin" / "flowdapt").exists():
        try:
            subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(ORIGINAL_VENV)], check=True)
            subprocess.run(
                ["uv", "pip", "install", "-q", "--python", str(python), "flowdapt==0.1.52", "fastapi==0.119.0", "cloudpickle==3.1.1"],
                check=True,
            )
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            print(f"original flowdapt could not be installed ({exc}); measuring ours only")
            return None
    return ORIGINAL_VENV / "bin" / "flowdapt"


def start_original(executable: Path, app_dir: Path) -> Server:
    port = free_port()
    env = {
        "FLOWDAPT__APP_DIR": str(app_dir),
        "FLOWDAPT__RPC__API__PORT": str(port),
        "FLOWDAPT__RPC__API__HOST": "127.0.0.1",
        "FLOWDAPT__LOGGING__LEVEL": "WARNING",
    }
    return Server("flowdapt 0.1.52 (original)", [str(executable), "run"], env, app_dir, port)


# -- load generation: raw keep-alive HTTP/1.1 on asyncio streams (cheaper than any client lib) --


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-length":
            length = int(value.strip())
        elif key == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _hammer(port: int, request: bytes, seconds: float, connections: int) -> tuple[int, int]:
    stop_at = time.perf_counter() + seconds
    counts = [0, 0]

    async def worker():
        while time.perf_counter() < stop_at:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                while time.perf_counter() < stop_at:
                    writer.write(request)
                    status = await _read_response(reader)
                    counts[0 if status < 400 else 1] += 1
            except (ConnectionError, asyncio.IncompleteReadError):
                counts[1] += 1  # the server dropped the connection: a failed request, reconnect
            finally:
                writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return counts[0], counts[1]


def requests_per_second(port: int, request: bytes, seconds: float, connections: int = 8) -> tuple[float, int]:
    asyncio.run(_hammer(port, request, 0.5, connections))  # warm-up
    started = time.perf_counter()
    ok, failed = asyncio.run(_hammer(port, request, seconds, connections))
    return ok / (time.perf_counter() - started), failed


def get_request(path: str) -> bytes:
    # The version header as the SDK sends it (the original answers 500 without one and without Accept).
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nX-API-Version: workflow.v1alpha1\r\n\r\n".encode()


def post_request(path: str, body: bytes = b"{}") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
        f"X-API-Version: workflow_run.v1alpha1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def wait_idle(server: Server, client: httpx.Client, timeout: float = 600) -> None:
    """Until the server has no pending/running noop runs (best effort for the original)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.get("/workflows/noop/run", params={"limit": 5}).json()
        if all(r["state"] not in ("pending", "running") for r in runs):
            return
        time.sleep(0.5)


def measure(server: Server, seconds: float, rss_runs: int, ours: bool) -> dict:
    out: dict = {}
    with httpx.Client(base_url=server.url, timeout=None) as client:
        for doc in workflows(10):
            response = client.post("/workflows/", json=doc)
            assert response.status_code in (200, 201), response.text
        rate, failed = requests_per_second(server.port, get_request("/workflows/"), seconds)
        out["get_workflows_rps"] = rate
        out["get_workflows_failed"] = failed

        # map run: warm-up then best of 3, end to end through HTTP
        client.post("/workflows/map10k/run", params={"wait": "true"}, json={"n": 10000})
        times = []
        for _ in range(3):
            started = time.perf_counter()
            run = client.post("/workflows/map10k/run", params={"wait": "true"}, json={"n": 10000}).json()
            times.append(time.perf_counter() - started)
            assert run["state"] == "finished" and run["result"] == 10000, run
        out["map10k_seconds"] = min(times)

        rate, failed = requests_per_second(
            server.port, post_request("/workflows/noop/run?wait=false"), seconds, connections=4
        )
        out["post_run_nowait_rps"] = rate
        out["post_run_failed"] = failed
        wait_idle(server, client, timeout=600 if ours else 60)

        # submit latency: one client, one request at a time (validation, plan cache, run record)
        latencies = []
        for i in range(SUBMIT_SAMPLES + 20):
            started = time.perf_counter()
            response = client.post("/workflows/noop/run", params={"wait": "false"}, json={})
            if i >= 20:  # the first ones warm up
                latencies.append(time.perf_counter() - started)
            assert response.status_code in (200, 201), response.text
        latencies.sort()
        out["submit_p50_ms"] = latencies[len(latencies) // 2] * 1000
        out["submit_p90_ms"] = latencies[int(len(latencies) * 0.9)] * 1000
        print(f"  {server.label}: {out}", flush=True)
        wait_idle(server, client, timeout=600 if ours else 60)

        if ours and rss_runs:
            for _ in range(200):  # warm caches and pools before the first sample
                client.post("/workflows/noop/run", json={})
            before = server.rss()
            peak = before
            started = time.perf_counter()
            for i in range(rss_runs):
                client.post("/workflows/noop/run", json={})
                if i % 500 == 0:
                    peak = max(peak, server.rss())
            after = server.rss()
            out["rss_runs"] = rss_runs
            out["rss_before_mib"] = before / 2**20
            out["rss_after_mib"] = after / 2**20
            out["rss_peak_mib"] = max(peak, after) / 2**20
            out["rss_growth_pct"] = (after - before) / before * 100
            out["sequential_runs_per_s"] = rss_runs / (time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput phase")
    parser.add_argument("--rss-runs", type=int, default=2000, help="consecutive runs for the memory check")
    parser.add_argument("--no-original", action="store_true", help="skip the original Flowdapt")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    results: dict[str, dict] = {}
    work = Path(tempfile.mkdtemp(prefix="flowdapt-bench-"))
    try:
        for label in ("ours", "original"):
            if label == "original" and args.no_original:
                continue
            app_dir = work / label
            (app_dir / "user_modules").mkdir(parents=True)
            (app_dir / "user_modules" / "__init__.py").write_text("")
            (app_dir / "user_modules" / "bench_stages.py").write_text(STAGES)
            if label == "ours":
                server = start_ours(app_dir)
            else:
                executable = ensure_original()
                if executable is None:
                    continue
                try:
                    server = start_original(executable, app_dir)
                except RuntimeError as exc:
                    print(f"original flowdapt did not start: {exc}")
                    continue
            print(f"measuring {server.label} ...", flush=True)
            try:
                results[label] = measure(server, args.seconds, args.rss_runs if label == "ours" else 0, label == "ours")
            finally:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ours, theirs = results.get("ours", {}), results.get("original", {})
    cpu = os.cpu_count()
    print(f"\nServer benchmark on {cpu} CPUs (each server started here; ratios ours/original)")
    rows = [
        ("GET /workflows/ req/s (10 stored)", "get_workflows_rps", True),
        ("POST run?wait=false runs/s", "post_run_nowait_rps", True),
        ("submit latency p50, wait=false (ms)", "submit_p50_ms", False),
        ("submit latency p90, wait=false (ms)", "submit_p90_ms", False),
        ("10,000-item map run, wait=true (s)", "map10k_seconds", False),
    ]
    print(f"{'':40s} {'ours':>12s} {'original':>12s} {'ratio':>10s}")
    for title, key, higher_better in rows:
        a, b = ours.get(key), theirs.get(key)
        ratio = ""
        if a and b:
            ratio = f"{a / b:.1f}x" if higher_better else f"{b / a:.1f}x faster"
        print(f"{title:40s} {a if a is None else f'{a:12.3f}':>12} {'-' if b is None else f'{b:12.3f}':>12} {ratio:>10s}")
    if "rss_runs" in ours:
        print(
            f"RSS over {ours['rss_runs']} consecutive runs (ours): {ours['rss_before_mib']:.1f} -> {ours['rss_after_mib']:.1f} MiB "
            f"({ours['rss_growth_pct']:+.1f}%), peak {ours['rss_peak_mib']:.1f} MiB; {ours['sequential_runs_per_s']:.0f} sequential runs/s"
        )
    targets = [
        ("map run <= 0.3 s", ours.get("map10k_seconds", 1e9) <= 0.3),
        ("GET /workflows/ >= 1500 req/s", ours.get("get_workflows_rps", 0) >= 1500),
        ("RSS within 10%", abs(ours.get("rss_growth_pct", 100)) <= 10),
    ]
    print("targets: " + ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in targets))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
