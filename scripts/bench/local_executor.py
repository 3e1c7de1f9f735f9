"""Local executor overhead: Flowdapt's execute_workflow against a raw ProcessPoolExecutor.

    uv run python scripts/bench/local_executor.py [--repeat 5] [--original]

Workloads (issue 2): a 10,000-item map of a no-op function and a 1,000-item map fitting a tiny
least-squares model (numpy, 200x8) per item. The baseline is ``ProcessPoolExecutor.map`` with
chunks on a warm pool of the same size, measured in the same run. With ``--original`` the original
Flowdapt 0.1.52 (installed into a side venv) runs the same workflows through its API.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_stages  # noqa: E402
from _harness import BENCH_DIR, fmt_seconds, measure, measure_async, original_venv, print_table  # noqa: E402

WORKLOADS = {
    "map 10,000 no-op items": ("bench_stages.noop", 10_000),
    "map 1,000 lstsq models": ("bench_stages.fit_model", 1_000),
}


def workflow(target: str) -> dict:
    return {
        "kind": "workflow",
        "metadata": {"name": "bench"},
        "spec": {"stages": [{"name": "map", "target": target, "type": "parameterized", "options": {"map_on": "x"}}]},
    }


async def ours(workers: int, repeat: int) -> dict[str, float]:
    from flowdapt.api import execute_workflow_async
    from flowdapt.builtin.local_executor import LocalExecutor
    from flowdapt.settings import load_settings

    settings = load_settings(app_dir=os.path.join(os.path.dirname(BENCH_DIR), "..", ".bench", "app"))
    executor = LocalExecutor("process", workers, settings=settings)
    await executor.start()
    out = {}
    try:
        for label, (target, n) in WORKLOADS.items():
            items = list(range(n))
            wf = workflow(target)

            async def once(wf=wf, items=items, n=n):
                run = await execute_workflow_async(wf, {"x": items}, executor=executor, settings=settings)
                assert run.state == "finished" and len(run.result) == n, run.error

            out[label] = await measure_async(once, repeat)
    finally:
        await executor.stop()
    return out


def raw_pool(workers: int, repeat: int) -> dict[str, float]:
    import multiprocessing

    out = {}
    with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        list(pool.map(bench_stages.noop, range(workers * 4)))
        for label, (target, n) in WORKLOADS.items():
            fn = getattr(bench_stages, target.rsplit(".", 1)[1])
            chunksize = math.ceil(n / (workers * 4))
            items = list(range(n))
            out[label] = measure(lambda fn=fn, items=items, chunksize=chunksize: list(pool.map(fn, items, chunksize=chunksize)), repeat)
    return out


ORIGINAL_SCRIPT = r"""
import asyncio, json, sys, statistics, time
sys.path.insert(0, sys.argv[1])
from flowdapt.compute.resources.workflow.execute import execute_workflow
from flowdapt.compute.executor.local import LocalExecutor
workloads = json.loads(sys.argv[2]); repeat = int(sys.argv[3])
async def main():
    ex = LocalExecutor(use_processes=True)
    await ex.start()
    out = {}
    for label, (target, n) in workloads.items():
        wf = {"kind": "workflow", "metadata": {"name": "bench"}, "spec": {"stages": [
            {"name": "map", "target": target, "type": "parameterized", "options": {"map_on": "x"}}]}}
        items = list(range(n))
        times = []
        for i in range(repeat + 1):
            t = time.perf_counter()
            run = await execute_workflow(wf, {"x": items}, executor=ex)
            times.append(time.perf_counter() - t)
            assert str(run.state).endswith("finished") and len(run.result) == n, (run.state, str(run.result)[:300])
        out[label] = statistics.median(times[1:])
    await ex.close()
    print(json.dumps(out))
asyncio.run(main())
"""


def original(repeat: int) -> dict[str, float] | None:
    python = original_venv(["numpy"])
    if python is None:
        return None
    proc = subprocess.run(
        [str(python), "-c", ORIGINAL_SCRIPT, str(BENCH_DIR), json.dumps(WORKLOADS), str(repeat)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        print(f"the original Flowdapt failed: {proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--original", action="store_true", help="also run the original Flowdapt 0.1.52 (side venv)")
    args = parser.parse_args()

    ours_t = asyncio.run(ours(args.workers, args.repeat))
    raw_t = raw_pool(args.workers, args.repeat)
    orig_t = original(max(1, args.repeat // 2)) if args.original else None
    rows = []
    for label in WORKLOADS:
        row = [label, fmt_seconds(ours_t[label]), fmt_seconds(raw_t[label]), f"{ours_t[label] / raw_t[label]:.2f}x"]
        if orig_t:
            row += [fmt_seconds(orig_t.get(label)), f"{orig_t[label] / ours_t[label]:.1f}x faster"]
        rows.append(row)
    headers = ["workload", "flowdapt", "raw pool", "flowdapt/raw"]
    if orig_t:
        headers += ["original 0.1.52", "vs original"]
    print(f"Local executor, process mode, {args.workers} workers, median of {args.repeat} (executor already started)")
    print_table(headers, rows)


if __name__ == "__main__":
    main()
