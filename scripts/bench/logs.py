"""Run-log capture cost (issue 16): what capturing stage output adds to the run path.

    uv run python scripts/bench/logs.py [--repeat 5] [--workers 2] [--runs 1000] [--lines 1000]

1. A 10,000-item no-op map with capture on (``logs.enabled: true``, the default) beside capture
   off, on one started process pool, measured in the same run (target: within 1.2x).
2. A 10,000-item map whose every item logs one line (``logging.info``), and one whose every item
   prints one, beside the no-op map, all with capture on (target: within 2x). The records are
   turned into stored-record objects on the driver as the server does (``from_wire``). Beside
   them the floors (the same calls, not captured) and the logging map with the stdlib's
   optimisation knobs off (no caller/thread/process fields), as a worker setup hook can set them.
3. The server's RSS over ``--runs`` runs that each log ``--lines`` lines (a real ``flowdapt run``
   in a subprocess, SQLite store, ``logs.max_bytes_per_run`` default): RSS after a warm-up, half
   way and at the end (target: flat); then after one run whose stage prints ``--flood-mb`` MB
   (the run goes on, its log is cut at the bound with a marker, the server's RSS stays flat).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import BENCH_DIR, ROOT, fmt_seconds, print_table  # noqa: E402

N_ITEMS = 10_000


def workflow(target: str) -> dict:
    return {
        "kind": "workflow",
        "metadata": {"name": "bench-logs"},
        "spec": {"stages": [{"name": "map", "target": target, "type": "parameterized", "options": {"map_on": "x"}}]},
    }


async def in_process(workers: int, repeat: int) -> dict[str, float]:
    from flowdapt.api import execute_workflow_async
    from flowdapt.builtin.local_executor import LocalExecutor
    from flowdapt.engine.logs import from_wire
    from flowdapt.settings import load_settings

    app_dir = str(ROOT / ".bench" / "app")
    on = load_settings(app_dir=app_dir, overrides={"allowed_targets": ["bench_stages"]})
    off = load_settings(app_dir=app_dir, overrides={"allowed_targets": ["bench_stages"], "logs.enabled": False})
    executor = LocalExecutor("process", workers, settings=on)
    await executor.start()
    items = list(range(N_ITEMS))
    cases = {
        "no-op map, capture off": ("bench_stages.noop", off, 0),
        "no-op map, capture on": ("bench_stages.noop", on, 0),
        "logging one line per item": ("bench_stages.log_one", on, N_ITEMS),
        # The same with logging's own optimisation knobs (_srcfile, logThreads, logProcesses,
        # logMultiprocessing) off, as a worker setup hook can set them (docs/logs.md#cost).
        "logging one line per item, lean records": ("bench_stages.log_one_lean", on, N_ITEMS),
        "printing one line per item": ("bench_stages.print_one", on, N_ITEMS),
        # The floors: the same calls without capture (logging to a formatting handler, print to
        # /dev/null), i.e. what the user's own logging or print call costs.
        "logging floor (not captured)": ("bench_stages.log_one_floor", off, 0),
        "printing floor (not captured)": ("bench_stages.print_one_floor", off, 0),
    }
    times: dict[str, list[float]] = {label: [] for label in cases}
    try:
        for round_ in range(repeat + 1):  # interleaved, so drift hits every case alike
            for label, (target, settings, lines) in cases.items():
                stored: list = []

                def sink(stage, records, stored=stored):
                    stored.extend(from_wire(stage, records))

                start = time.perf_counter()
                run = await execute_workflow_async(
                    workflow(target), {"x": items}, executor=executor, settings=settings, log_sink=sink
                )
                elapsed = time.perf_counter() - start
                assert run.state == "finished" and len(run.result) == N_ITEMS, run.error
                assert len(stored) == lines, (label, len(stored))
                if round_:
                    times[label].append(elapsed)
    finally:
        await executor.stop()
    return {label: statistics.median(values) for label, values in times.items()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def server_rss(runs: int, lines: int, workers: int, flood_mb: int = 0) -> list[tuple[object, int]]:
    """(runs done, server RSS KiB) at the warm-up, half way and the end."""
    import httpx

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDAPT__")}
        env["PYTHONPATH"] = str(BENCH_DIR) + os.pathsep + env.get("PYTHONPATH", "")
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "flowdapt.cli.main", "--app-dir", tmp,
                "-o", "allowed_targets=[bench_stages]", "-o", f"executor.options.workers={workers}",
                "run", "--port", str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=120) as http:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        http.get("/")
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise RuntimeError("the server did not start") from None
                        time.sleep(0.2)
                doc = {
                    "kind": "workflow",
                    "metadata": {"name": "logging"},
                    "spec": {"stages": [{"name": "lines", "target": "bench_stages.log_lines"}]},
                }
                http.post("/workflows/", json=doc).raise_for_status()
                flood_doc = {
                    "kind": "workflow",
                    "metadata": {"name": "flood"},
                    "spec": {"stages": [{"name": "flood", "target": "bench_stages.flood_mb"}]},
                }
                http.post("/workflows/", json=flood_doc).raise_for_status()
                samples = []
                warmup = min(20, runs)
                marks = {warmup, warmup + (runs - warmup) // 2, runs}
                for i in range(1, runs + 1):
                    run = http.post("/workflows/logging/run", json={"n": lines}).json()
                    assert run["state"] == "finished", run
                    if i in marks:
                        samples.append((i, _rss_kib(proc.pid)))
                last = http.get(f"/runs/{run['uid']}/logs", params={"limit": 1}).json()
                assert last["items"], "the last run has no stored log"
                if flood_mb:
                    start = time.perf_counter()
                    run = http.post("/workflows/flood/run", json={"mb": flood_mb}).json()
                    elapsed = time.perf_counter() - start
                    assert run["state"] == "finished", run
                    rss = _rss_kib(proc.pid)  # before reading the log back
                    stored = http.get(f"/runs/{run['uid']}/logs", params={"limit": 100_000}).json()["items"]
                    kept = sum(len(i["message"]) + len(i["logger"]) + 64 for i in stored[1:])
                    samples.append((f"+ a stage printing {flood_mb} MB ({elapsed:.0f} s; {len(stored) - 1} lines, "
                                    f"{kept / 1e6:.1f} MB kept, marker first)", rss))
                    assert stored[0]["seq"] == 0 and "dropped" in stored[0]["message"]
                return samples
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--runs", type=int, default=1000, help="logging runs for the server RSS figure (0: skip)")
    parser.add_argument("--lines", type=int, default=1000, help="lines each of those runs logs")
    parser.add_argument("--flood-mb", type=int, default=1024, help="then one run printing this many MB (0: skip)")
    args = parser.parse_args()

    times = asyncio.run(in_process(args.workers, args.repeat))
    off = times["no-op map, capture off"]
    on = times["no-op map, capture on"]
    logged, printed = times["logging one line per item"], times["printing one line per item"]
    log_floor, print_floor = times["logging floor (not captured)"], times["printing floor (not captured)"]
    lean = times["logging one line per item, lean records"]
    rows = [
        ["no-op map, capture off", fmt_seconds(off), "1.00x (baseline)", ""],
        ["no-op map, capture on", fmt_seconds(on), f"{on / off:.2f}x of capture off", "<= 1.2x"],
        ["logging one line per item", fmt_seconds(logged), f"{logged / on:.2f}x of no logging", "<= 2x"],
        ["  its floor, not captured", fmt_seconds(log_floor), f"captured is {logged / log_floor:.2f}x of it", ""],
        ["  lean records (knobs off)", fmt_seconds(lean), f"{lean / on:.2f}x of no logging", ""],
        ["printing one line per item", fmt_seconds(printed), f"{printed / on:.2f}x of no logging", "<= 2x"],
        ["  its floor, not captured", fmt_seconds(print_floor), f"captured is {printed / print_floor:.2f}x of it", ""],
    ]
    print(f"{N_ITEMS:,}-item maps, Local process pool of {args.workers}, median of {args.repeat}")
    print_table(["workload", "time", "ratio", "target"], rows)
    if args.runs:
        samples = server_rss(args.runs, args.lines, min(args.workers, 2), args.flood_mb)
        print()
        print(f"server RSS over {args.runs} runs logging {args.lines} lines each")
        first = samples[0][1]
        print_table(
            ["runs done", "RSS", "vs warm-up"],
            [[str(n), f"{kib / 1024:.1f} MiB", f"{(kib - first) / 1024:+.1f} MiB"] for n, kib in samples],
        )
    print(json.dumps({"times": times}, indent=None))


if __name__ == "__main__":
    main()
