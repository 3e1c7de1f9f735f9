"""An edited ``user_modules`` file is picked up by the next run, without a server restart: by the
Local executor's threads and process pool, by Dask workers (processes of a LocalCluster, threads of
the server's own process, a separately started cluster) and by Ray workers (a local instance, a
separately started head)."""

from __future__ import annotations

import importlib.util
import os
import time

import httpx
import pytest

from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from tests.server.conftest import make_settings, start_server

pytestmark = pytest.mark.timeout(300)

VERSION = '''
def answer():
    return {value!r}
'''


def _write(path, value) -> None:
    path.write_text(VERSION.format(value=value))
    later = time.time() + 2  # a new mtime even on a coarse file system clock
    os.utime(path, (later, later))


def _edit_and_run(live, module) -> None:
    workflow = {"kind": "workflow", "metadata": {"name": "answer"}, "spec": {"stages": [{"name": "a", "target": "user_modules.reloaded.answer"}]}}
    with httpx.Client(base_url=live.url, timeout=120) as http:  # a first Ray run starts workers
        assert http.post("/workflows/", json=workflow).status_code == 200
        assert http.post("/workflows/answer/run", json={}).json()["result"] == "first"
        _write(module, "second")
        assert http.post("/workflows/answer/run", json={}).json()["result"] == "second"
        # A new function in the edited file can be named at once, too.
        module.write_text(VERSION.format(value="third") + "\n\ndef other():\n    return 'other'\n")
        later = time.time() + 4
        os.utime(module, (later, later))
        other = {**workflow, "metadata": {"name": "other"}, "spec": {"stages": [{"name": "a", "target": "user_modules.reloaded.other"}]}}
        applied = http.post("/workflows/", json=other)
        assert applied.status_code == 200, applied.text
        assert http.post("/workflows/other/run", json={}).json()["result"] == "other"
        assert http.post("/workflows/answer/run", json={}).json()["result"] == "third"


def _app_with_module(tmp_path, name: str):
    app_dir = tmp_path / f"app-{name}"
    module = app_dir / "user_modules" / "reloaded.py"
    module.parent.mkdir(parents=True)
    _write(module, "first")
    return app_dir, module


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_an_edited_user_module_is_used_by_the_next_run(make_server, tmp_path, mode):
    app_dir, module = _app_with_module(tmp_path, mode)
    _edit_and_run(make_server({"executor.options": {"mode": mode, "workers": 1}}, app_dir=app_dir), module)


def _cluster_options(backend: str, variant: str) -> dict:
    """Executor options for one way of running the backend's workers; skips (loudly) a separately
    started cluster that scripts/ci/setup-<backend>.sh did not start."""
    if variant == "external":
        variable = f"FLOWDAPT_TEST_{backend.upper()}_ADDRESS"
        address = os.environ.get(variable)
        if not address:
            pytest.skip(
                f"SKIPPED LOUDLY: {variable} is not set, so a user_modules edit on a separately started "
                f"{backend} cluster is not tested; run scripts/ci/setup-{backend}.sh (scripts/test.sh does)"
            )
        # Without the server's sys.path the workers import user_modules only from the copy the
        # executor ships (ship_user_modules), as workers on other machines do.
        return {"address": address, "driver_sys_path": False, **({"log_to_driver": False} if backend == "ray" else {})}
    if backend == "dask":
        return {"workers": 1, "threads_per_worker": 1, "processes": variant == "processes", "dashboard_address": ""}
    return {"cpus": 2, "include_dashboard": False, "log_to_driver": False}


@pytest.mark.parametrize(
    ("backend", "variant"),
    [("dask", "processes"), ("dask", "threads"), ("dask", "external"), ("ray", "local"), ("ray", "external")],
)
def test_an_edited_user_module_is_used_by_the_next_run_on_a_cluster(tmp_path, backend, variant):
    # flowdapt_ray first: it turns off Ray's `uv run` runtime env, which Ray reads when first imported.
    pytest.importorskip(f"flowdapt_{backend}")
    if importlib.util.find_spec("distributed" if backend == "dask" else "ray") is None:
        pytest.skip(f"{backend} is not installed")
    options = _cluster_options(backend, variant)
    app_dir, module = _app_with_module(tmp_path, f"{backend}-{variant}")
    plugins = create_plugin_system(
        load_entry_points=False, plugins=[*BUILTIN_PLUGINS, (backend, f"flowdapt_{backend}.plugin")]
    )
    settings = make_settings(
        app_dir,
        {"executor.backend": backend, "executor.options": options, "cluster_memory.backend": "memory"},
    )
    if backend == "ray":
        _connect_ray(options)
    try:
        live = start_server(settings, plugins)
        try:
            _edit_and_run(live, module)
        finally:
            live.stop()
    finally:
        if backend == "ray":
            import ray

            ray.shutdown()


def _connect_ray(options: dict) -> None:
    """A local instance is started before the server, which gives its executor 30 s only: that
    can run out on a loaded machine. The executor shares the connection (the same code generations,
    runtime envs and workers as with an instance it starts itself). A cluster by address is
    connected by the executor itself, with the job runtime_env that ships ``user_modules``."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    if "address" not in options:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
