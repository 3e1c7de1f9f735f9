"""The Python API: run a workflow in this process, without a server."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from flowdapt.engine.configs import merge_config_data, select_configs
from flowdapt.engine.context import RunContext
from flowdapt.engine.executor import Executor
from flowdapt.engine.plan import compile_workflow
from flowdapt.engine.runner import RunListener, execute_plan
from flowdapt.engine.worker import resolve
from flowdapt.plugins import PluginSystem, get_plugin_system
from flowdapt.resources.base import check_namespace
from flowdapt.resources.config import Config
from flowdapt.resources.loader import parse_resource
from flowdapt.resources.run import WorkflowRun
from flowdapt.resources.workflow import Workflow
from flowdapt.settings import Settings, get_settings


def ensure_user_modules(settings: Settings) -> None:
    """Make ``<app_dir>/user_modules/*.py`` importable as ``user_modules.<name>``."""
    directory = settings.user_modules_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text("")
    except OSError:
        return
    app_dir = str(settings.app_dir)
    _switch_user_modules(app_dir)
    if app_dir not in sys.path:
        sys.path.append(app_dir)


_user_modules_dir: str | None = None


def _switch_user_modules(app_dir: str) -> None:
    """Another app dir in this process (tests, notebooks): forget the previous one's user modules,
    which would otherwise stay cached in ``sys.modules`` and in resolved targets."""
    global _user_modules_dir
    previous, _user_modules_dir = _user_modules_dir, app_dir
    if previous is None or previous == app_dir:
        return
    from flowdapt.reloading import forget_modules

    while previous in sys.path:
        sys.path.remove(previous)
    forget_modules(["user_modules"])


def allowed_target_prefixes(settings: Settings, plugins: PluginSystem) -> list[str]:
    """Modules stage targets may come from: plugins, ``user_modules`` and configured prefixes."""
    return sorted({*plugins.module_prefixes(), "user_modules", *settings.allowed_targets} - {"flowdapt"})


def stage_types(plugins: PluginSystem) -> dict[str, Any]:
    return {name: reg.factory() for name, reg in plugins.registries["stage_types"].items()}


def create_executor(
    settings: Settings, plugins: PluginSystem, name: str | None = None, options: Mapping[str, Any] | None = None
) -> Executor:
    backend = name or settings.executor.backend
    if options is None:
        options = settings.executor.options if backend == settings.executor.backend else {}
    return plugins.create("executors", backend, dict(options), settings)


def _as_workflow(workflow: Workflow | Mapping[str, Any]) -> Workflow:
    if isinstance(workflow, Workflow):
        return workflow
    return parse_resource(workflow, kind="workflow")  # type: ignore[return-value]


def _config_data(workflow: Workflow, config: Mapping[str, Any] | Sequence[Config] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    return merge_config_data(select_configs(workflow, config))


async def execute_workflow_async(
    workflow: Workflow | Mapping[str, Any],
    input: Mapping[str, Any] | None = None,
    *,
    executor: Executor | str | None = None,
    config: Mapping[str, Any] | Sequence[Config] | None = None,
    namespace: str | None = None,
    run: WorkflowRun | None = None,
    source: str = "manual",
    settings: Settings | None = None,
    plugins: PluginSystem | None = None,
    listeners: Sequence[RunListener] = (),
    executor_options: Mapping[str, Any] | None = None,
) -> WorkflowRun:
    """Run a workflow to its end and return the run record (state, result, per-stage records)."""
    settings = settings or get_settings()
    plugins = plugins or get_plugin_system(settings)
    ensure_user_modules(settings)
    definition = _as_workflow(workflow)
    plan = compile_workflow(definition, stage_types(plugins), check_callables=True, resolve=lambda t: resolve(t)[0])
    owned = not isinstance(executor, Executor)
    if owned:
        executor = create_executor(settings, plugins, executor, executor_options)  # type: ignore[arg-type]
    assert isinstance(executor, Executor)
    namespace = check_namespace(namespace or settings.compute.default_namespace)
    if run is None:
        run = WorkflowRun(workflow=definition.metadata.name, source=source, namespace=namespace)
    ctx = RunContext(
        input=dict(input or {}),
        config=_config_data(definition, config),
        namespace=namespace,
        executor=executor.name,
        definition=definition,
        run=run,
    )
    started_here = not executor.running
    if started_here:
        await executor.start()
    try:
        return await execute_plan(plan, ctx, executor, listeners=listeners, hooks=plugins.hook)
    finally:
        if started_here or owned:
            await executor.stop()


def execute_workflow(
    workflow: Workflow | Mapping[str, Any],
    input: Mapping[str, Any] | None = None,
    *,
    executor: Executor | str | None = None,
    config: Mapping[str, Any] | Sequence[Config] | None = None,
    namespace: str | None = None,
    return_result: bool = False,
    **kwargs: Any,
) -> WorkflowRun | Any:
    """Run a workflow and return the finished run (or just its result with ``return_result``).

    ``executor`` is an :class:`Executor` (started and stopped here if it is not running), a backend
    name (``"local"``, ``"ray"``...), or None for the configured one. ``config`` is the merged
    config data, or a list of config resources to select from. Works inside a running event loop
    (a notebook) by running in a helper thread.
    """
    coro_args = dict(executor=executor, config=config, namespace=namespace, **kwargs)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        run = asyncio.run(execute_workflow_async(workflow, input, **coro_args))
    else:
        with cf.ThreadPoolExecutor(1) as pool:
            run = pool.submit(asyncio.run, execute_workflow_async(workflow, input, **coro_args)).result()
    return run.result if return_result else run
