"""Pytest fixtures for plugin authors (and Flowdapt's own tests).

Installed with the core as a pytest plugin (entry point ``pytest11``), so a plugin's tests can use
these fixtures without importing anything:

- ``flowdapt_app_dir``: a temporary app dir whose settings are installed process-wide (and in
  ``FLOWDAPT__APP_DIR`` for subprocesses). Settings come from ``flowdapt_settings_overrides``
  (dotted keys; override that fixture in a ``conftest.py`` to change them).
- ``flowdapt_settings``: the :class:`~flowdapt.settings.Settings` of that app dir.
- ``flowdapt_plugins``: the plugin system built from the installed entry points (the plugin under
  test included, when it is installed in the environment), installed process-wide.
- ``execute_workflow_inline``: run a workflow (a :class:`Workflow`, a mapping, a YAML file path,
  or the name of a workflow a loaded plugin ships) in this process and return the
  :class:`~flowdapt.resources.WorkflowRun`. Stages run in the calling thread, so breakpoints work.
- ``flowdapt_definitions``: the resources the loaded plugins ship (``flowdapt_resource_definitions``).
- ``flowdapt_executor_backend``, ``flowdapt_store_backend``, ``flowdapt_cluster_memory_backend``,
  ``flowdapt_event_bus_backend``: the :class:`~flowdapt.testing.conformance.Backend` the
  conformance suites (:mod:`flowdapt.testing.conformance`) run against, from the pytest options
  ``--flowdapt-executor``, ``--flowdapt-store``, ``--flowdapt-cluster-memory``
  (``NAME[:key=value,...]``) and ``--flowdapt-event-bus`` (the same, or
  ``URL[:key=value,...]``); a plugin's tests override them to pick their own backend.

The helpers behind them (:func:`run_workflow_inline`, :func:`workflow_from`) work without pytest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from flowdapt.definitions import PluginDefinition
    from flowdapt.plugins import PluginSystem
    from flowdapt.resources import Config, Workflow, WorkflowRun
    from flowdapt.settings import Settings

#: Settings every test app dir gets unless ``flowdapt_settings_overrides`` says otherwise: cluster
#: memory in this process (no extra plugin needed; inline runs share it) and the Local executor.
DEFAULT_TEST_OVERRIDES: dict[str, Any] = {
    "cluster_memory.backend": "memory",
    "executor.backend": "local",
}


def workflow_from(
    source: Any, plugins: PluginSystem | None = None
) -> tuple[Workflow, list[Config]]:
    """A workflow and the configs found beside it.

    ``source`` is a Workflow, a resource mapping, a path to a YAML/JSON file holding one workflow
    (configs in the same file are returned too), or the name of a workflow that a loaded plugin
    ships through ``flowdapt_resource_definitions`` (the configs that plugin ships are returned).
    """
    from flowdapt.errors import ValidationError
    from flowdapt.resources import Config, Workflow
    from flowdapt.resources.loader import load_documents, parse_resource

    if isinstance(source, Workflow):
        return source, []
    if isinstance(source, Mapping):
        return parse_resource(source, kind="workflow"), []  # type: ignore[return-value]
    path = Path(source) if isinstance(source, (str, os.PathLike)) else None
    if path is not None and path.suffix in (".yaml", ".yml", ".json") and path.exists():
        resources = [parse_resource(d, source=str(path)) for d in load_documents(path.read_text(), source=str(path))]
        workflows = [r for r in resources if isinstance(r, Workflow)]
        if len(workflows) != 1:
            raise ValidationError(f"expected exactly one workflow, found {len(workflows)}", resource=str(path))
        return workflows[0], [r for r in resources if isinstance(r, Config)]
    if isinstance(source, str) and plugins is not None:
        from flowdapt.definitions import collect_definitions

        definitions = collect_definitions(plugins)
        for definition in definitions:
            if definition.kind == "workflow" and definition.name == source:
                configs = [
                    d.resource for d in definitions if d.kind == "config" and d.plugin == definition.plugin
                ]
                return definition.resource, configs  # type: ignore[return-value]
        shipped = sorted(d.name for d in definitions if d.kind == "workflow")
        raise ValidationError(
            f"{source!r} is neither a workflow file nor a workflow a loaded plugin ships "
            f"(shipped: {', '.join(shipped) or 'none'})"
        )
    raise ValidationError(f"cannot make a workflow from {source!r}")


def run_workflow_inline(
    workflow: Any,
    input: Mapping[str, Any] | None = None,
    *,
    config: Mapping[str, Any] | Sequence[Config] | None = None,
    namespace: str | None = None,
    settings: Settings | None = None,
    plugins: PluginSystem | None = None,
    check: bool = False,
) -> WorkflowRun:
    """Run ``workflow`` with the Local executor in ``inline`` mode and return the run record.

    ``config`` is the config data itself (a mapping) or config resources to select from; by
    default the configs found beside the workflow (same file, same plugin). With ``check`` a run
    that did not finish raises AssertionError with the stage error.
    """
    from flowdapt.api import execute_workflow
    from flowdapt.plugins import get_plugin_system
    from flowdapt.settings import get_settings

    settings = settings or get_settings()
    plugins = plugins or get_plugin_system(settings)
    definition, found_configs = workflow_from(workflow, plugins)
    executor = plugins.create("executors", "local", {"mode": "inline"}, settings)
    run = execute_workflow(
        definition,
        input,
        executor=executor,
        config=found_configs if config is None else config,
        namespace=namespace,
        settings=settings,
        plugins=plugins,
    )
    if check and run.state != "finished":
        error = run.error
        detail = f"{error.type} in stage {error.stage!r}: {error.message}\n{error.traceback}" if error else ""
        raise AssertionError(f"workflow {definition.metadata.name!r} ended {run.state}: {detail}")
    return run


# -- conformance backends -------------------------------------------------------------------------

_BACKEND_OPTIONS = {
    # kind: (option, dest, what it picks)
    "executors": ("--flowdapt-executor", "flowdapt_executor", "executor"),
    "document_stores": ("--flowdapt-store", "flowdapt_store", "document store"),
    "cluster_memory": ("--flowdapt-cluster-memory", "flowdapt_cluster_memory", "cluster memory backend"),
    "event_buses": ("--flowdapt-event-bus", "flowdapt_event_bus", "event bus"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flowdapt", "Flowdapt conformance suites (flowdapt.testing.conformance)")
    for kind, (option, dest, what) in _BACKEND_OPTIONS.items():
        group.addoption(
            option,
            dest=dest,
            metavar="URL_OR_NAME[:key=value,...]" if kind == "event_buses" else "NAME[:key=value,...]",
            default=None,
            help=f"the registered {what} the conformance suite runs against, with its options "
            "(values are JSON when they parse; {app_dir} and {unique} expand per test)",
        )


def _backend_from_option(config: pytest.Config, kind: str) -> Any:
    from flowdapt.testing.conformance.backends import parse_backend_spec

    option, dest, what = _BACKEND_OPTIONS[kind]
    spec = config.getoption(dest)
    if not spec:
        metavar = "URL_OR_NAME" if kind == "event_buses" else "NAME"
        pytest.skip(f"no {what} to test: pass {option} {metavar}[:key=value,...] (or override this fixture)")
    try:
        return parse_backend_spec(kind, spec)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def flowdapt_executor_backend(pytestconfig: pytest.Config) -> Any:
    """The executor the executor conformance suite runs against (``--flowdapt-executor``)."""
    return _backend_from_option(pytestconfig, "executors")


@pytest.fixture(scope="session")
def flowdapt_store_backend(pytestconfig: pytest.Config) -> Any:
    """The document store the store conformance suite runs against (``--flowdapt-store``)."""
    return _backend_from_option(pytestconfig, "document_stores")


@pytest.fixture(scope="session")
def flowdapt_cluster_memory_backend(pytestconfig: pytest.Config) -> Any:
    """The cluster memory the cluster-memory suite runs against (``--flowdapt-cluster-memory``)."""
    return _backend_from_option(pytestconfig, "cluster_memory")


@pytest.fixture(scope="session")
def flowdapt_event_bus_backend(pytestconfig: pytest.Config) -> Any:
    """The event bus the event-bus suite runs against (``--flowdapt-event-bus``)."""
    return _backend_from_option(pytestconfig, "event_buses")


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def flowdapt_settings_overrides() -> dict[str, Any]:
    """Dotted settings keys applied to the test app dir; override this fixture to change them."""
    return dict(DEFAULT_TEST_OVERRIDES)


@pytest.fixture
def flowdapt_app_dir(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    flowdapt_settings_overrides: dict[str, Any],
) -> Iterator[Path]:
    """A fresh app dir; its settings are the process-wide settings for the test's duration."""
    from flowdapt.plugins import set_plugin_system
    from flowdapt.settings import load_settings, set_settings

    for key in list(os.environ):
        if key.startswith("FLOWDAPT__"):
            monkeypatch.delenv(key)
    app_dir = tmp_path_factory.mktemp("flowdapt-app")
    settings = load_settings(app_dir=app_dir, overrides=flowdapt_settings_overrides)
    monkeypatch.setenv("FLOWDAPT__APP_DIR", str(app_dir))
    set_settings(settings)
    set_plugin_system(None)
    try:
        yield app_dir
    finally:
        # An executor execute_workflow kept for this test's settings (a process pool, a Ray or Dask
        # cluster) must not outlive the test.
        from flowdapt.api import close_default_executor

        close_default_executor()
        set_settings(None)
        set_plugin_system(None)


@pytest.fixture
def flowdapt_settings(flowdapt_app_dir: Path) -> Settings:
    from flowdapt.settings import get_settings

    return get_settings()


@pytest.fixture
def flowdapt_plugins(flowdapt_settings: Settings) -> Iterator[PluginSystem]:
    """The installed plugins, loaded from their entry points, as the process-wide plugin system."""
    from flowdapt.plugins import create_plugin_system, set_plugin_system

    system = create_plugin_system(
        only=flowdapt_settings.plugins.only, disabled=flowdapt_settings.plugins.disabled
    )
    set_plugin_system(system)
    try:
        yield system
    finally:
        set_plugin_system(None)


@pytest.fixture
def flowdapt_builtin_plugins(flowdapt_settings: Settings) -> Iterator[PluginSystem]:
    """Only the core's built-in plugins, whatever else is installed, as the process-wide system."""
    from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system, set_plugin_system

    system = create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))
    set_plugin_system(system)
    try:
        yield system
    finally:
        set_plugin_system(None)


@pytest.fixture
def flowdapt_definitions(flowdapt_plugins: PluginSystem) -> list[PluginDefinition]:
    from flowdapt.definitions import collect_definitions

    return collect_definitions(flowdapt_plugins)


@pytest.fixture
def execute_workflow_inline(
    flowdapt_settings: Settings, flowdapt_plugins: PluginSystem
) -> Callable[..., WorkflowRun]:
    """``execute_workflow_inline(workflow, input=None, *, config=None, namespace=None, check=False)``."""

    def run(workflow: Any, input: Mapping[str, Any] | None = None, **kwargs: Any) -> WorkflowRun:
        return run_workflow_inline(workflow, input, settings=flowdapt_settings, plugins=flowdapt_plugins, **kwargs)

    return run


__all__ = [
    "DEFAULT_TEST_OVERRIDES",
    "execute_workflow_inline",
    "flowdapt_app_dir",
    "flowdapt_builtin_plugins",
    "flowdapt_cluster_memory_backend",
    "flowdapt_definitions",
    "flowdapt_event_bus_backend",
    "flowdapt_executor_backend",
    "flowdapt_plugins",
    "flowdapt_settings",
    "flowdapt_settings_overrides",
    "flowdapt_store_backend",
    "run_workflow_inline",
    "workflow_from",
]
