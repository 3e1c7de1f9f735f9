"""``<app_dir>/user_modules/*.py`` are importable as ``user_modules.<name>`` by stages, in worker
processes too, through the Python API and ``flowdapt exec``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODULE = textwrap.dedent(
    """
    import os

    def numbers(count: int = 3) -> list[int]:
        return list(range(count))

    def square(x: int) -> int:
        return x * x

    def report(squares: list[int]) -> dict:
        return {"squares": squares, "pid": os.getpid()}
    """
)

WORKFLOW = textwrap.dedent(
    """
    kind: workflow
    metadata:
      name: user-modules-demo
    spec:
      stages:
        - name: numbers
          target: user_modules.mymod.numbers
        - name: square
          target: user_modules.mymod.square
          type: parameterized
          depends_on: [numbers]
        - name: report
          target: user_modules.mymod.report
          depends_on: [square]
    """
)


@pytest.fixture
def flowdapt_plugins(flowdapt_settings):
    """Only the built-in plugins: these tests are about user modules, not installed plugins."""
    from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system, set_plugin_system

    system = create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))
    set_plugin_system(system)
    yield system
    set_plugin_system(None)


def write_module(app_dir: Path, source: str = MODULE, name: str = "mymod") -> None:
    directory = app_dir / "user_modules"
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.py").write_text(source)


def test_user_module_stages_run_in_worker_processes(flowdapt_app_dir, flowdapt_settings, flowdapt_plugins):
    from flowdapt.api import execute_workflow
    from flowdapt.resources.loader import load_documents

    write_module(flowdapt_app_dir)
    executor = flowdapt_plugins.create("executors", "local", {"mode": "process", "workers": 2}, flowdapt_settings)
    run = execute_workflow(
        load_documents(WORKFLOW)[0], {"count": 4}, executor=executor, settings=flowdapt_settings, plugins=flowdapt_plugins
    )
    assert run.state == "finished", run.error
    assert run.result["squares"] == [0, 1, 4, 9]
    assert run.result["pid"] != os.getpid()  # ran in a worker process, which imported user_modules


def test_each_app_dir_gets_its_own_user_modules(flowdapt_app_dir, flowdapt_settings, flowdapt_plugins, tmp_path):
    """A second app dir in the same process must not see the first one's (cached) modules."""
    from flowdapt.api import execute_workflow
    from flowdapt.resources.loader import load_documents
    from flowdapt.settings import load_settings

    other = load_settings(app_dir=tmp_path / "other-app", overrides={"cluster_memory.backend": "memory"})
    write_module(other.app_dir, MODULE.replace("x * x", "x * x * 10"))
    write_module(flowdapt_app_dir)
    workflow = load_documents(WORKFLOW)[0]
    for settings, expected in ((flowdapt_settings, [0, 1, 4]), (other, [0, 10, 40]), (flowdapt_settings, [0, 1, 4])):
        run = execute_workflow(workflow, {"count": 3}, executor="local", executor_options={"mode": "inline"},
                               settings=settings, plugins=flowdapt_plugins)
        assert run.state == "finished", run.error
        assert run.result["squares"] == expected


def test_an_earlier_app_dir_put_back_on_sys_path_does_not_shadow_the_current_one(
    flowdapt_app_dir, flowdapt_settings, flowdapt_plugins, tmp_path
):
    """Something that restores an old ``sys.path`` (pytest's ``monkeypatch.syspath_prepend`` on
    undo, a notebook cell) can put an earlier app dir back in front of the current one; its
    ``user_modules`` must still not be the one imported."""
    from flowdapt.api import execute_workflow
    from flowdapt.resources.loader import load_documents
    from flowdapt.settings import load_settings

    earlier = load_settings(app_dir=tmp_path / "earlier-app", overrides={"cluster_memory.backend": "memory"})
    write_module(earlier.app_dir, MODULE.replace("x * x", "x * x * 10"))
    write_module(flowdapt_app_dir)
    workflow = load_documents(WORKFLOW)[0]

    def squares(settings):
        run = execute_workflow(workflow, {"count": 3}, executor="local", executor_options={"mode": "inline"},
                               settings=settings, plugins=flowdapt_plugins)
        assert run.state == "finished", run.error
        return run.result["squares"]

    saved = sys.path[:]
    assert squares(earlier) == [0, 10, 40]
    snapshot = sys.path[:]  # holds the earlier app dir
    assert squares(flowdapt_settings) == [0, 1, 4]
    try:
        sys.path[:] = snapshot  # put back, in front of where the current one will be appended
        assert squares(flowdapt_settings) == [0, 1, 4]
        assert str(earlier.app_dir) not in sys.path
    finally:
        sys.path[:] = saved


def test_missing_user_module_is_reported(flowdapt_app_dir, flowdapt_settings, flowdapt_plugins):
    from flowdapt.api import execute_workflow
    from flowdapt.errors import ValidationError
    from flowdapt.resources.loader import load_documents

    write_module(flowdapt_app_dir, name="othermod")
    with pytest.raises(ValidationError, match=r"target 'user_modules\.mymod\.numbers' not found"):
        execute_workflow(load_documents(WORKFLOW)[0], {"count": 2}, executor="local",
                         executor_options={"mode": "inline"}, settings=flowdapt_settings, plugins=flowdapt_plugins)


def test_flowdapt_exec_runs_user_module_stages_in_processes(tmp_path):
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    write_module(app_dir)
    elsewhere = tmp_path / "workflows"  # not next to the module: only user_modules can provide it
    elsewhere.mkdir()
    (elsewhere / "demo.yaml").write_text(WORKFLOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDAPT__")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowdapt.cli.main", "--app-dir", str(app_dir), "exec", str(elsewhere / "demo.yaml"),
         "--input", "count=5", "--mode", "process", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["squares"] == [0, 1, 4, 9, 16]
    assert result["pid"] != proc.pid  # a worker process of `flowdapt exec` imported user_modules.mymod


CLUSTER_EXECUTORS = {
    "ray": ("flowdapt_ray.plugin", {"cpus": 2, "include_dashboard": False}),
    "dask": ("flowdapt_dask.plugin", {"workers": 2, "dashboard_address": ""}),
}


@pytest.mark.parametrize("backend", sorted(CLUSTER_EXECUTORS))
def test_user_module_stages_run_on_cluster_workers(backend, flowdapt_app_dir, flowdapt_settings):
    """Ray and Dask workers on this machine import user_modules from the app dir (remote clusters
    get the folder uploaded: ship_user_modules)."""
    from flowdapt.api import execute_workflow
    from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system, set_plugin_system
    from flowdapt.resources.loader import load_documents

    module, options = CLUSTER_EXECUTORS[backend]
    pytest.importorskip(module.split(".")[0])
    plugins = create_plugin_system(load_entry_points=False, plugins=[*BUILTIN_PLUGINS, (backend, module)])
    set_plugin_system(plugins)
    write_module(flowdapt_app_dir)
    try:
        run = execute_workflow(
            load_documents(WORKFLOW)[0], {"count": 4}, executor=backend, executor_options=options,
            settings=flowdapt_settings, plugins=plugins,
        )
    finally:
        set_plugin_system(None)
    assert run.state == "finished", run.error
    assert run.result["squares"] == [0, 1, 4, 9]
    assert run.result["pid"] != os.getpid()


def test_a_target_added_to_a_file_after_its_import_is_named_in_the_error(tmp_path, monkeypatch):
    """The file on disk defines the function, the module this process imported does not: the
    error says that the file changed after the import and how new code is picked up."""
    from flowdapt.engine.targets import TargetNotFoundError, import_target

    (tmp_path / "edited_stages.py").write_text("def old():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "edited_stages", raising=False)
    import_target("edited_stages.old")
    with open(tmp_path / "edited_stages.py", "a") as handle:
        handle.write("\n\nasync def added():\n    return 2\n")
    with pytest.raises(TargetNotFoundError) as caught:
        import_target("edited_stages.added")
    assert "has no attribute 'added'" in str(caught.value)
    assert "defines it now" in str(caught.value) and "user_modules are imported afresh" in str(caught.value)
    with pytest.raises(TargetNotFoundError) as caught:
        import_target("edited_stages.missing")
    assert "defines it now" not in str(caught.value)  # a plain typo gets the plain message
    sys.modules.pop("edited_stages", None)
