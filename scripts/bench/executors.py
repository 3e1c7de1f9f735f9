"""Ray and Dask executors against raw Ray and raw Dask doing the same work, in the same run.

    uv run python scripts/bench/executors.py [--repeat 5] [--cluster-memory lmdb|native]

Workloads (issue 5), on a started executor (2 CPUs: a local Ray instance with 2 CPUs, a Dask
LocalCluster of 2 single-thread workers), end to end through ``execute_workflow_async``:

- a 10,000-item map of a no-op function;
- a 1,000-item map that fits a least-squares model (numpy, 200x8) per item and puts its
  coefficients in the object store (cluster memory: LMDB, the default on one machine, or with
  ``--cluster-memory native`` the Ray / Dask cluster memory).

Baselines on the same cluster, measured in the same run: raw Ray (``ray.get`` of one task per item,
and of one task per chunk of items) and raw Dask (``client.map`` per item, ``client.submit`` per
chunk); the raw model baselines fit and return the coefficients (no store). Ratios are ours / raw
chunked. Targets: 10k map within 0.5 s on Ray and 1 s on Dask; 1,000 models within 1.5x of raw chunked.
The original Flowdapt took about 380 s (Ray) and 74 s (Dask) for the 10k map on 2 cores (issue 5).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_stages  # noqa: E402
import executor_bench_stages as stages  # noqa: E402
from _harness import BENCH_DIR, fmt_seconds, measure, measure_async, original_venv, print_table  # noqa: E402

NOOP_N = 10_000
MODELS_N = 1_000
CPUS = 2


def workflow(target: str) -> dict:
    return {
        "kind": "workflow",
        "metadata": {"name": "bench"},
        "spec": {"stages": [{"name": "map", "target": target, "type": "parameterized", "options": {"map_on": "x"}}]},
    }


def chunks(items: list, n_chunks: int) -> list[list]:
    size = math.ceil(len(items) / n_chunks)
    return [items[i : i + size] for i in range(0, len(items), size)]


async def ours(executor, settings, repeat: int) -> dict[str, float]:
    from flowdapt.api import execute_workflow_async

    out = {}
    for label, target, n in (
        ("noop", "bench_stages.noop", NOOP_N),
        ("models", "executor_bench_stages.fit_and_put", MODELS_N),
    ):
        items = list(range(n))
        wf = workflow(target)

        async def once(wf=wf, items=items, n=n):
            run = await execute_workflow_async(wf, {"x": items}, executor=executor, settings=settings)
            assert run.state == "finished" and len(run.result) == n, run.error

        out[label] = await measure_async(once, repeat)
    return out


def raw_ray(repeat: int) -> dict[str, float]:
    import ray

    noop = ray.remote(bench_stages.noop)
    fit = ray.remote(bench_stages.fit_model)
    noop_chunk = ray.remote(stages.noop_chunk)
    fit_chunk = ray.remote(stages.fit_chunk)
    put_chunk = ray.remote(stages.fit_and_put_chunk)
    noop_items, model_items = list(range(NOOP_N)), list(range(MODELS_N))
    n_chunks = CPUS * 4
    return {
        "noop per-item": measure(lambda: ray.get([noop.remote(x) for x in noop_items]), max(1, repeat // 2)),
        "noop chunked": measure(lambda: ray.get([noop_chunk.remote(c) for c in chunks(noop_items, n_chunks)]), repeat),
        "models per-item": measure(lambda: ray.get([fit.remote(x) for x in model_items]), repeat),
        "models chunked": measure(lambda: ray.get([fit_chunk.remote(c) for c in chunks(model_items, n_chunks)]), repeat),
        "models+put chunked": measure(
            lambda: ray.get([put_chunk.remote(c) for c in chunks(model_items, n_chunks)]), repeat
        ),
    }


def raw_dask(client, repeat: int) -> dict[str, float]:
    noop_items, model_items = list(range(NOOP_N)), list(range(MODELS_N))
    n_chunks = CPUS * 4

    def per_item(fn, items):
        return client.gather(client.map(fn, items, pure=False))

    def chunked(fn, items):
        return client.gather([client.submit(fn, c, pure=False) for c in chunks(items, n_chunks)])

    return {
        "noop per-item": measure(lambda: per_item(bench_stages.noop, noop_items), max(1, repeat // 2)),
        "noop chunked": measure(lambda: chunked(stages.noop_chunk, noop_items), repeat),
        "models per-item": measure(lambda: per_item(bench_stages.fit_model, model_items), repeat),
        "models chunked": measure(lambda: chunked(stages.fit_chunk, model_items), repeat),
        "models+put chunked": measure(lambda: chunked(stages.fit_and_put_chunk, model_items), repeat),
    }


def settings_for(backend: str, cluster_memory: str):
    from flowdapt.settings import load_settings, set_settings

    app_dir = tempfile.mkdtemp(prefix=f"flowdapt-bench-{backend}-")
    overrides = {}
    if cluster_memory == "native":
        overrides = {"cluster_memory.backend": backend}
    settings = load_settings(app_dir=app_dir, overrides=overrides)
    set_settings(settings)
    return settings


async def bench_ray(repeat: int, cluster_memory: str) -> tuple[dict, dict]:
    from flowdapt_ray import RayExecutor, RayExecutorOptions

    settings = settings_for("ray", cluster_memory)
    executor = RayExecutor(RayExecutorOptions(cpus=CPUS, include_dashboard=False, log_to_driver=False), settings)
    await executor.start()
    try:
        mine = await ours(executor, settings, repeat)
        raw = await asyncio.get_running_loop().run_in_executor(None, raw_ray, repeat)
    finally:
        await executor.stop()
    return mine, raw


async def bench_dask(repeat: int, cluster_memory: str) -> tuple[dict, dict]:
    from flowdapt_dask import DaskExecutor, DaskExecutorOptions

    settings = settings_for("dask", cluster_memory)
    executor = DaskExecutor(DaskExecutorOptions(workers=CPUS, threads_per_worker=1, dashboard_address=None), settings)
    await executor.start()
    try:
        mine = await ours(executor, settings, repeat)
        raw = await asyncio.get_running_loop().run_in_executor(None, raw_dask, executor.client, repeat)
    finally:
        await executor.stop()
    return mine, raw


def report(name: str, mine: dict, raw: dict, target_noop: float) -> list[list[str]]:
    def ratio(a, b):
        return f"{a / b:.2f}x" if b else "-"

    return [
        [
            f"{name}: map {NOOP_N:,} no-op",
            fmt_seconds(mine["noop"]),
            fmt_seconds(raw["noop chunked"]),
            fmt_seconds(raw["noop per-item"]),
            ratio(mine["noop"], raw["noop chunked"]),
            f"<= {target_noop:g} s: {'yes' if mine['noop'] <= target_noop else 'NO'}",
        ],
        [
            f"{name}: {MODELS_N:,} models + put",
            fmt_seconds(mine["models"]),
            fmt_seconds(raw["models+put chunked"]),
            "-",
            ratio(mine["models"], raw["models+put chunked"]),
            f"<= 1.5x chunked: {'yes' if mine['models'] <= 1.5 * raw['models+put chunked'] else 'NO'}",
        ],
        [
            f"{name}: {MODELS_N:,} models (raw: no put)",
            fmt_seconds(mine["models"]),
            fmt_seconds(raw["models chunked"]),
            fmt_seconds(raw["models per-item"]),
            ratio(mine["models"], raw["models chunked"]),
            "(context: raw skips the store)",
        ],
    ]


ORIGINAL_SCRIPT = r"""
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
kind, n = sys.argv[2], int(sys.argv[3])
from flowdapt.compute.resources.workflow.execute import execute_workflow
if kind == "ray":
    from flowdapt.compute.executor.ray import RayExecutor as Executor
else:
    from flowdapt.compute.executor.dask import DaskExecutor as Executor
async def main():
    # "local": its own instance, never a cluster that happens to be running on this machine
    ex = Executor(cpus=2, cluster_address="local") if kind == "ray" else Executor(cpus=2)
    await ex.start()
    wf = {"kind": "workflow", "metadata": {"name": "bench"}, "spec": {"stages": [
        {"name": "map", "target": "bench_stages.noop", "type": "parameterized", "options": {"map_on": "x"}}]}}
    t = time.perf_counter()
    run = await execute_workflow(wf, {"x": list(range(n))}, executor=ex)
    took = time.perf_counter() - t
    assert str(run.state).endswith("finished") and len(run.result) == n, (run.state, str(run.result)[:300])
    print(json.dumps({"seconds": took}))
    await ex.close()
asyncio.run(main())
"""


def original(kind: str, n: int) -> float | None:
    """One run of the original Flowdapt 0.1.52's executor on an n-item no-op map (side venv)."""
    import json
    import subprocess

    python = original_venv()
    if python is None:
        return None
    try:
        proc = subprocess.run(
            [str(python), "-c", ORIGINAL_SCRIPT, str(BENCH_DIR), kind, str(n)],
            capture_output=True, text=True, timeout=3600,
            # Its own Ray instance, not the one this benchmark process is still connected to.
            env={**os.environ, "RAY_ADDRESS": "local"},
        )
    except subprocess.TimeoutExpired:
        print(f"the original {kind} executor did not finish {n:,} items within an hour", file=sys.stderr)
        return None
    if proc.returncode != 0:
        print(f"the original {kind} executor failed: {proc.stderr[-1500:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cluster-memory", choices=["lmdb", "native"], default="lmdb")
    parser.add_argument("--only", choices=["ray", "dask"], default=None)
    parser.add_argument(
        "--original", action="store_true", help="also time the original Flowdapt 0.1.52's executors (side venv)"
    )
    parser.add_argument(
        "--original-items", type=int, default=NOOP_N,
        help="items of the original's no-op map (its Ray executor needs minutes for 10,000)",
    )
    args = parser.parse_args()
    from flowdapt.plugins import create_plugin_system, set_plugin_system

    set_plugin_system(create_plugin_system())
    rows = []
    if args.only in (None, "ray"):
        mine, raw = asyncio.run(bench_ray(args.repeat, args.cluster_memory))
        rows += report("ray", mine, raw, 0.5)
    if args.only in (None, "dask"):
        mine, raw = asyncio.run(bench_dask(args.repeat, args.cluster_memory))
        rows += report("dask", mine, raw, 1.0)
    print(f"\n{CPUS} CPUs, median of {args.repeat} after a warm-up; cluster memory: {args.cluster_memory}")
    print_table(["workload", "flowdapt", "raw chunked", "raw per-item", "flowdapt / raw chunked", "target"], rows)
    if args.original:
        n = args.original_items
        orig_rows = []
        for kind in [k for k in ("ray", "dask") if args.only in (None, k)]:
            seconds = original(kind, n)
            orig_rows.append([f"{kind}: map {n:,} no-op", fmt_seconds(seconds), "one run, executor started"])
        print(f"\nThe original Flowdapt 0.1.52 on the same machine (its own executors, {CPUS} CPUs):")
        print_table(["workload", "original", "note"], orig_rows)


if __name__ == "__main__":
    main()
