"""RayExecutor.reload_code without a cluster: each reload is a new code generation whose runtime_env
(a new FLOWDAPT_CODE_GENERATION) goes with every task and split, and whose code (the py_modules
directories, collected again) is shipped through the object store once the executor runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from flowdapt_ray import RayExecutor, RayExecutorOptions
from flowdapt_ray.executor import CODE_GENERATION_VAR


def stage(name: str = "s") -> SimpleNamespace:
    return SimpleNamespace(name=name, options=SimpleNamespace(retries=0))


def test_each_reload_is_a_new_generation_that_every_task_carries(tmp_path):
    extra = tmp_path / "extra_module"
    extra.mkdir()
    ex = RayExecutor(RayExecutorOptions(env_vars={"MINE": "1"}, py_modules=[str(extra)], ship_plugins=True))
    assert ex.task_runtime_env() is None
    assert "runtime_env" not in ex._task_options(stage(), {})

    asyncio.run(ex.reload_code())
    env = ex.task_runtime_env()
    assert env["env_vars"] == {"MINE": "1", CODE_GENERATION_VAR: "1"}
    assert "py_modules" not in env  # a task's runtime_env may not name local directories
    shipped = [Path(p).name for p in ex._code_dirs]
    assert shipped[0] == "extra_module"
    assert "flowdapt_ray" in shipped and "flowdapt" not in shipped  # the loaded plugins, collected now
    assert ex._task_options(stage(), {})["runtime_env"] is env

    asyncio.run(ex.reload_code())
    assert ex.task_runtime_env()["env_vars"][CODE_GENERATION_VAR] == "2"
    assert ex._task_options(stage(), {})["runtime_env"]["env_vars"][CODE_GENERATION_VAR] == "2"


def test_without_shipping_only_the_generation_changes():
    ex = RayExecutor(RayExecutorOptions())
    asyncio.run(ex.reload_code())
    assert ex.task_runtime_env() == {"env_vars": {CODE_GENERATION_VAR: "1"}}
