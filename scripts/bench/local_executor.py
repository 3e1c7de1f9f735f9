"""Local executor overhead: Flowdapt's execute_workflow against a raw ProcessPoolExecutor.

    uv run python scripts/bench/local_executor.py [--repeat 5] [--original] [--no-user-path]

Workloads (issue 2): a 10,000-item map of a no-op function and a 1,000-item map fitting a tiny
least-squares model (numpy, 200x8) per item. The baseline is ``ProcessPoolExecutor.map`` with
chunks on a warm pool of the same size, measured in the same run. With ``--original`` the original
Flowdapt 0.1.52 (installed into a side venv) runs the same workflows through its API.

The user path (issue 13), each in fresh processes, with bytecode compiled first: five
``flowdapt.execute_workflow`` calls without an executor (the first starts the default executor,
the others reuse it), a cold ``flowdapt exec`` of a 10-item workflow, and ``flowdapt --version``.
Beside each: the warm path (the same work on an executor already started, from this run) and the
floor of a raw ``python -c`` doing the least the same job needs.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import json
import math
import os
import statistics
import subprocess
import sys
import time

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


USER_CALLS_SCRIPT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import flowdapt
wf = {"kind": "workflow", "metadata": {"name": "bench"}, "spec": {"stages": [
    {"name": "map", "target": "bench_stages.noop", "type": "parameterized", "options": {"map_on": "x"}}]}}
items = list(range(int(sys.argv[2])))
times = []
for _ in range(5):
    t = time.perf_counter()
    run = flowdapt.execute_workflow(wf, {"x": items})
    times.append(time.perf_counter() - t)
    assert run.state == "finished" and len(run.result) == len(items), run.error
print(json.dumps({"calls": times}))
"""

RAW_CALLS_SCRIPT = r"""
import concurrent.futures as cf, json, math, multiprocessing, os, sys, time
sys.path.insert(0, sys.argv[1])
import bench_stages
items = list(range(int(sys.argv[2])))
workers = os.cpu_count() or 2
times = []
with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
    for _ in range(5):
        t = time.perf_counter()
        out = list(pool.map(bench_stages.noop, items, chunksize=math.ceil(len(items) / (workers * 4))))
        times.append(time.perf_counter() - t)
print(json.dumps({"calls": times}))
"""

EXEC_WORKFLOW = """\
kind: workflow
metadata: {name: ten}
spec:
  stages:
    - {name: items, target: user_path_stages.items}
    - {name: double, target: user_path_stages.double, type: parameterized, depends_on: [items]}
"""
EXEC_STAGES = "def items():\n    return list(range(10))\n\n\ndef double(x):\n    return x * 2\n"

# The floor of a cold `flowdapt exec`: a raw script in a fresh interpreter mapping the same 10
# items over a 2-process forkserver pool.
RAW_EXEC_SCRIPT = r"""
import concurrent.futures as cf, multiprocessing, sys
sys.path.insert(0, sys.argv[1])
import user_path_stages as s
with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as pool:
    print(list(pool.map(s.double, s.items())))
"""


def _wall(cmd: list[str], env: dict[str, str], cwd: str | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr[-2000:]}")
    return elapsed


def compile_bytecode() -> None:
    """The figures are for compiled bytecode (what an installed package has); uv does not compile
    on install and PYTHONDONTWRITEBYTECODE stops Python from writing it."""
    import compileall
    import site
    import sysconfig

    dirs = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    import flowdapt

    dirs.add(os.path.dirname(os.path.dirname(flowdapt.__file__)))
    for directory in sorted(dirs):
        if os.path.isdir(directory):
            compileall.compile_dir(directory, quiet=1, workers=0)


def user_path(repeat: int, warm: dict[str, float]) -> list[list[str]]:
    import tempfile

    flowdapt_bin = os.path.join(os.path.dirname(sys.executable), "flowdapt")
    rows = []
    with tempfile.TemporaryDirectory(prefix="flowdapt-user-path-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDAPT__")}
        # bench_stages is put on sys.path by the scripts, not beside them: allowed by name.
        env.update(HOME=tmp, FLOWDAPT__APP_DIR=os.path.join(tmp, "app"), FLOWDAPT__ALLOWED_TARGETS='["bench_stages"]')
        n = WORKLOADS["map 10,000 no-op items"][1]

        calls = [json.loads(subprocess.run([sys.executable, "-c", USER_CALLS_SCRIPT, str(BENCH_DIR), str(n)],
                                            capture_output=True, text=True, env=env, check=True).stdout.strip().splitlines()[-1])["calls"]
                 for _ in range(max(1, repeat // 2))]
        raw = json.loads(subprocess.run([sys.executable, "-c", RAW_CALLS_SCRIPT, str(BENCH_DIR), str(n)],
                                        capture_output=True, text=True, env=env, check=True).stdout.strip().splitlines()[-1])["calls"]
        first = statistics.median(c[0] for c in calls)
        later = statistics.median(t for c in calls for t in c[1:])
        warm_t = warm["map 10,000 no-op items"]
        rows.append(["execute_workflow, no executor: 1st call (starts it)", fmt_seconds(first), fmt_seconds(warm_t),
                     fmt_seconds(raw[0]), f"{first / raw[0]:.2f}x"])
        rows.append(["execute_workflow, no executor: calls 2-5", fmt_seconds(later), fmt_seconds(warm_t),
                     fmt_seconds(statistics.median(raw[1:])), f"{later / statistics.median(raw[1:]):.2f}x"])

        with open(os.path.join(tmp, "wf.yaml"), "w") as f:
            f.write(EXEC_WORKFLOW)
        with open(os.path.join(tmp, "user_path_stages.py"), "w") as f:
            f.write(EXEC_STAGES)
        exec_cmd = [flowdapt_bin, "exec", os.path.join(tmp, "wf.yaml"), "--no-progress"]
        _wall(exec_cmd, env)  # the app dir is created once, as on a user's machine
        exec_t = statistics.median(_wall(exec_cmd, env) for _ in range(repeat))
        raw_exec = statistics.median(_wall([sys.executable, "-c", RAW_EXEC_SCRIPT, tmp], env) for _ in range(repeat))
        warm_exec = asyncio.run(_warm_ten(tmp))
        rows.append(["flowdapt exec, 10-item workflow, cold", fmt_seconds(exec_t), fmt_seconds(warm_exec),
                     fmt_seconds(raw_exec), f"{exec_t / raw_exec:.2f}x"])

        version_t = statistics.median(_wall([flowdapt_bin, "--version"], env) for _ in range(repeat))
        floor = statistics.median(_wall([sys.executable, "-c", "print('flowdapt x')"], env) for _ in range(repeat))
        rows.append(["flowdapt --version", fmt_seconds(version_t), "-", fmt_seconds(floor), f"{version_t / floor:.2f}x"])
    return rows


async def _warm_ten(stage_dir: str) -> float:
    from flowdapt.api import execute_workflow_async
    from flowdapt.builtin.local_executor import LocalExecutor
    from flowdapt.resources.loader import parse_resource

    sys.path.insert(0, stage_dir)
    import yaml

    wf = parse_resource(yaml.safe_load(EXEC_WORKFLOW), kind="workflow")
    executor = LocalExecutor("process", 2)
    await executor.start()
    try:
        async def once():
            # As `flowdapt exec` does: the modules beside the workflow file are allowed targets.
            run = await execute_workflow_async(wf, {}, executor=executor, allowed_beside=stage_dir)
            assert run.state == "finished", run.error

        return await measure_async(once, 5)
    finally:
        await executor.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--original", action="store_true", help="also run the original Flowdapt 0.1.52 (side venv)")
    parser.add_argument("--no-user-path", action="store_true", help="skip the user path (fresh processes)")
    parser.add_argument("--no-compile", action="store_true", help="do not compile bytecode first")
    args = parser.parse_args()
    if not args.no_compile:
        compile_bytecode()

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
    if not args.no_user_path:
        print()
        print(f"User path, fresh processes, bytecode compiled, median of {args.repeat}")
        print_table(["what", "flowdapt", "warm path", "raw python floor", "flowdapt/floor"], user_path(args.repeat, ours_t))


if __name__ == "__main__":
    main()
