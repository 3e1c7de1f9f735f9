"""Object store benchmark: put/get latency and throughput across processes, 1 KB / 100 KB / 10 MB.

Columns, all measured in this run on this machine:

- ``flowdapt``: ``flowdapt.object_store.put/get`` (the whole API path: namespace, strategy
  ``fallback``, backend lookup) on the default LMDB cluster memory;
- ``backend``: the LMDB cluster memory called directly (the API's own cost is the difference);
- ``raw lmdb``: the baseline: py-lmdb with ``pickle.dumps``/``pickle.loads`` (protocol 5), one
  environment, no sync, the least any LMDB-backed store could do;
- ``original``: the original Flowdapt 0.1.52 Local cluster memory (its Unix-socket server in
  another process, as its executor runs it), from a side venv, with ``--original``.

Every value is written by this (driver) process and read by *other* processes: ``get`` is the
median latency of one read in a worker process; ``get x N`` is the aggregate read throughput of
N worker processes reading at once. ``put`` is the median latency of overwriting the key.

    .venv/bin/python scripts/bench/object_store.py [--original] [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import fmt_seconds, original_venv, print_table  # noqa: E402

SIZES = {"1 KB": 1_000, "100 KB": 100_000, "10 MB": 10_000_000}
IMPLS = ["flowdapt", "backend", "raw lmdb"]


def repeats(nbytes: int, quick: bool) -> int:
    base = 3000 if nbytes < 1_000_000 else 60
    return max(base // (5 if quick else 1), 10)


def make_array(nbytes: int):
    import numpy as np

    return np.random.default_rng(nbytes).random(nbytes // 8)


# -- the three implementations, built the same way in every process ---------------------------------


class Impl:
    def __init__(self, name: str, root: str):
        self.name = name
        if name == "flowdapt":
            from flowdapt import object_store
            from flowdapt.settings import load_settings, set_settings

            set_settings(load_settings(app_dir=Path(root) / "app", config_file="-"))
            self.put = lambda k, v: object_store.put(k, v)
            self.get = lambda k: object_store.get(k)
        elif name == "backend":
            from flowdapt_lmdb import LMDBClusterMemory, LMDBOptions

            memory = LMDBClusterMemory(Path(root) / "backend.lmdb", LMDBOptions(max_size=4 << 30))
            self.put = lambda k, v: memory.put(k, v)
            self.get = lambda k: memory.get(k)
        else:
            import lmdb

            env = lmdb.open(
                str(Path(root) / "raw.lmdb"),
                map_size=10 << 30,
                sync=False,
                metasync=False,
                readahead=False,
                max_dbs=2,
            )
            db = env.open_db(b"data")

            def put(k, v):
                data = pickle.dumps(v, protocol=5)
                with env.begin(write=True) as txn:
                    txn.put(k.encode(), data, db=db)

            def get(k):
                with env.begin() as txn:
                    return pickle.loads(txn.get(k.encode(), db=db))

            self.put, self.get = put, get


def _reader(name: str, root: str, key: str, count: int, start_at: float | None) -> list[float]:
    impl = Impl(name, root)
    impl.get(key)  # open the environment, warm the page cache
    if start_at is not None:
        while time.time() < start_at:
            time.sleep(0.0005)
        begin = time.perf_counter()
        for _ in range(count):
            impl.get(key)
        return [time.perf_counter() - begin]
    times = []
    get = impl.get
    for _ in range(count):
        t0 = time.perf_counter()
        get(key)
        times.append(time.perf_counter() - t0)
    return times


def bench_impl(name: str, root: str, quick: bool, readers: int, pool) -> dict[str, dict[str, float]]:
    impl = Impl(name, root)
    out: dict[str, dict[str, float]] = {}
    for label, nbytes in SIZES.items():
        value = make_array(nbytes)
        key = f"bench-{nbytes}"
        n = repeats(nbytes, quick)
        puts = []
        for _ in range(max(n // 5, 10)):
            t0 = time.perf_counter()
            impl.put(key, value)
            puts.append(time.perf_counter() - t0)
        got = impl.get(key)
        assert got.shape == value.shape and got[-1] == value[-1]
        single = pool.apply(_reader, (name, root, key, n, None))
        start_at = time.time() + 0.5
        results = [pool.apply_async(_reader, (name, root, key, n, start_at)) for _ in range(readers)]
        walls = [r.get()[0] for r in results]
        total_bytes = readers * n * value.nbytes
        out[label] = {
            "put": statistics.median(puts),
            "get": statistics.median(single),
            "get_throughput": value.nbytes / statistics.median(single),
            "parallel_throughput": total_bytes / max(walls),
            "parallel_ops": readers * n / max(walls),
        }
    return out


# -- the original Flowdapt, in its own venv ---------------------------------------------------------

ORIGINAL_SCRIPT = r"""
import asyncio, json, multiprocessing, os, statistics, sys, tempfile, threading, time
import numpy as np
from flowdapt.compute.executor.local.cluster_memory import ClusterMemoryClient, ClusterMemoryServer

def serve(path, ready):
    async def main():
        server = ClusterMemoryServer(path)
        await server.start()
        ready.set()
        await asyncio.Event().wait()
    asyncio.run(main())

def reader(path, key, count, start_at):
    client = ClusterMemoryClient(path)
    client.get(key)
    if start_at is not None:
        while time.time() < start_at:
            time.sleep(0.0005)
        t0 = time.perf_counter()
        for _ in range(count):
            client.get(key)
        return [time.perf_counter() - t0]
    times = []
    for _ in range(count):
        t0 = time.perf_counter(); client.get(key); times.append(time.perf_counter() - t0)
    return times

if __name__ == "__main__":
    sizes, quick, readers = json.loads(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
    ctx = multiprocessing.get_context("spawn")
    path = os.path.join(tempfile.mkdtemp(), "cm.sock")
    ready = ctx.Event()
    server = ctx.Process(target=serve, args=(path, ready), daemon=True)
    server.start()
    if not ready.wait(120):
        raise SystemExit("the original cluster memory server did not start")
    client = ClusterMemoryClient(path)
    out = {}
    with ctx.Pool(readers) as pool:
        for label, nbytes in sizes.items():
            value = np.random.default_rng(nbytes).random(nbytes // 8)
            key = f"bench-{nbytes}"
            n = (3000 if nbytes < 1_000_000 else 60) // (5 if quick else 1)
            n = max(n // 3, 10)  # it is slow: fewer repeats
            puts = []
            for _ in range(max(n // 5, 5)):
                t0 = time.perf_counter(); client.put(key, value); puts.append(time.perf_counter() - t0)
            single = pool.apply(reader, (path, key, n, None))
            start_at = time.time() + 0.5
            walls = [r.get()[0] for r in [pool.apply_async(reader, (path, key, n, start_at)) for _ in range(readers)]]
            out[label] = {"put": statistics.median(puts), "get": statistics.median(single),
                          "get_throughput": value.nbytes / statistics.median(single),
                          "parallel_throughput": readers * n * value.nbytes / max(walls),
                          "parallel_ops": readers * n / max(walls)}
    server.terminate()
    print(json.dumps(out))
"""


def original(quick: bool, readers: int) -> dict | None:
    python = original_venv(["numpy"])
    if python is None:
        return None
    # A file, not ``-c``: its worker processes (spawn) import their functions from it.
    script = Path(tempfile.mkdtemp(prefix="flowdapt-bench-orig-")) / "original_cluster_memory.py"
    script.write_text(ORIGINAL_SCRIPT)
    try:
        proc = subprocess.run(
            [str(python), str(script), json.dumps(SIZES), "1" if quick else "0", str(readers)],
            capture_output=True,
            text=True,
            timeout=1200,
        )
    finally:
        shutil.rmtree(script.parent, ignore_errors=True)
    if proc.returncode != 0:
        print(f"the original Flowdapt failed: {proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- report ------------------------------------------------------------------------------------------


def gbps(value: float) -> str:
    return f"{value / 1e9:.2f} GB/s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--original", action="store_true", help="also run the original Flowdapt 0.1.52 (side venv)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--readers", type=int, default=os.cpu_count() or 2, help="parallel reader processes")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="flowdapt-bench-os-")
    results: dict[str, dict] = {}
    try:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(args.readers) as pool:
            for name in IMPLS:
                results[name] = bench_impl(name, root, args.quick, args.readers, pool)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.original:
        orig = original(args.quick, args.readers)
        if orig is not None:
            results["original"] = orig
    else:
        print(
            "(the original Flowdapt column is skipped: pass --original to install and run it in .bench/original)"
        )

    print(
        f"\nobject store, {os.cpu_count()} CPUs, {args.readers} reader processes; values are float64 numpy arrays\n"
    )
    for metric, title, fmt in (
        ("get", "get latency (median, in another process)", fmt_seconds),
        ("put", "put latency (median)", fmt_seconds),
        ("get_throughput", "get throughput, one reader process", gbps),
        ("parallel_throughput", f"get throughput, {args.readers} reader processes at once", gbps),
    ):
        headers = ["size", *results.keys(), "flowdapt/raw"]
        if "original" in results:
            headers.append("original/flowdapt")
        rows = []
        for label in SIZES:
            row = [label, *(fmt(results[name][label][metric]) for name in results)]
            ours, raw = results["flowdapt"][label][metric], results["raw lmdb"][label][metric]
            # Ratios read "how many times the cost of": for throughput invert, so > 1 is slower.
            slower = ours / raw if metric in ("get", "put") else raw / ours
            row.append(f"{slower:.2f}x")
            if "original" in results:
                theirs = results["original"][label][metric]
                row.append(f"{theirs / ours:.1f}x" if metric in ("get", "put") else f"{ours / theirs:.1f}x")
            rows.append(row)
        print(title)
        print_table(headers, rows)
        print()
    f = results["flowdapt"]
    print(
        "targets: 100 KB get <= 50 us: {} ({}); 10 MB get >= 2 GB/s: {} ({}); within 1.2x of raw LMDB: {}".format(
            fmt_seconds(f["100 KB"]["get"]),
            "met" if f["100 KB"]["get"] <= 50e-6 else "MISSED",
            gbps(f["10 MB"]["get_throughput"]),
            "met" if f["10 MB"]["get_throughput"] >= 2e9 else "MISSED",
            ", ".join(
                f"{label} get {f[label]['get'] / results['raw lmdb'][label]['get']:.2f}x" for label in SIZES
            ),
        )
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
