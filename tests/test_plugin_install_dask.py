"""``flowdapt plugin install`` on a server whose executor is Dask (a LocalCluster of worker
processes): installed, upgraded and removed plugins take effect in the running workers, and in
workers that join later, without restarting the server or the cluster."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from plugin_env import CORE, ROOT, Server, build_wheel, check, clean_env, make_venv  # noqa: E402
from weather_plugin import MISSING_TARGET, run_workflow, weather_now_wheels  # noqa: E402

pytest.importorskip("distributed", reason="the Dask test needs distributed (installed with flowdapt-dask)")

TOKEN = "dask-install-token"
SUMMARIZE = "flowdapt_weather_now.stages.summarize"
V1 = {"count": 4, "total": 28.0, "mean": 7.0}  # scale 2 from the plugin's shipped config
V2 = {"version": 2, "count": 3, "total": 10.0, "mean": 10.0 / 3}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("dask-dist")
    core = build_wheel(CORE, base / "core")
    dask_plugin = build_wheel(ROOT / "plugins" / "flowdapt-dask", base / "dask")
    bin_dir = make_venv(tmp_path_factory.mktemp("dask-venv") / ".venv", core, dask_plugin)
    srv = Server(
        bin_dir,
        tmp_path_factory.mktemp("dask-app"),
        TOKEN,
        FLOWDAPT__EXECUTOR__BACKEND="dask",
        FLOWDAPT__EXECUTOR__OPTIONS__WORKERS="2",
        FLOWDAPT__CLUSTER_MEMORY__BACKEND="memory",
    )
    srv.wheels = weather_now_wheels(base / "plugin")
    try:
        srv.wait_ready(timeout=120)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def cluster(server):
    """A client of the server's Dask scheduler, to look inside its workers."""
    import cloudpickle
    from distributed import Client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the probes below run on the workers
    address = server.get("/status").json()["services"]["ComputeService"]["environment"]["address"]
    client = Client(address, set_as_default=False, timeout=30)
    try:
        yield client
    finally:
        client.close()


def summarize_on_worker(target: str):
    """What the worker's per-task path resolves ``target`` to, called on 3 scores (or the error)."""
    from flowdapt.engine.worker import resolve

    try:
        fn, _ = resolve(target)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return fn([1.0, 2.0, 3.0])


def summaries(cluster) -> list:
    return list(cluster.run(summarize_on_worker, SUMMARIZE).values())


def test_install_upgrade_uninstall_on_dask_workers(server, cluster):
    status = server.get("/status").json()
    assert status["services"]["ComputeService"]["executor"].endswith("DaskExecutor")
    pid = status["system"]["pid"]

    check(server.cli("plugin", "install", server.wheels["v1"], "--include-definitions"))
    first = run_workflow(server, 4)
    assert first["exit"] == 0, first
    assert first["run"]["result"] == V1
    # Every worker now holds 0.1.0: imported, and the target resolved and cached.
    assert summaries(cluster) == [{"count": 3, "total": 6.0, "mean": 2.0}] * 2

    proc = check(server.cli("plugin", "install", server.wheels["v2"], "--upgrade"))
    assert "~ flowdapt-weather-now 0.1.0 -> 0.2.0" in proc.stdout
    assert summaries(cluster) == [{"version": 2, "count": 3, "total": 6.0, "mean": 2.0}] * 2
    upgraded = run_workflow(server, 3)
    assert upgraded["exit"] == 0, upgraded
    assert upgraded["run"]["result"] == V2

    # A worker that joins now gets the worker plugin (settings, code generation) like the others.
    late = subprocess.Popen(
        [server.bin_dir / "dask", "worker", cluster.scheduler.address, "--nworkers", "1", "--nthreads", "1",
         "--no-dashboard", "--name", "late"],
        env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    try:
        cluster.wait_for_workers(3, timeout=60)
        assert summaries(cluster) == [{"version": 2, "count": 3, "total": 6.0, "mean": 2.0}] * 3

        check(server.cli("plugin", "uninstall", "weather_now"))
        assert all("not found" in str(s) for s in summaries(cluster)), summaries(cluster)
    finally:
        late.terminate()
        try:
            late.wait(30)
        except subprocess.TimeoutExpired:
            late.kill()
            late.wait(10)
    deadline = time.monotonic() + 30
    while len(cluster.scheduler_info(n_workers=-1)["workers"]) > 2 and time.monotonic() < deadline:
        time.sleep(0.2)

    gone = run_workflow(server, 2)
    assert gone["exit"] != 0
    assert MISSING_TARGET in gone["stderr"], gone
    assert server.get("/status").json()["system"]["pid"] == pid
