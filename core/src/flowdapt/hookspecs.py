"""Every hook a Flowdapt plugin can implement.

A plugin is a module (found through the ``flowdapt.plugins`` entry-point group) with functions
decorated by :data:`hookimpl` whose names match the specs below. The core owns the ``register``
callbacks handed to registration hooks: ``register(name, factory, options_model=None)``. The
``options_model`` is a pydantic model of the options a user may set for that backend under
``<section>.options`` in the settings, so a configuration error names the plugin and the field.

Every spec is annotated; the types it names are imported under ``TYPE_CHECKING`` only, so
importing this module (every plugin does) loads neither the server nor the CLI. A plugin may
annotate its implementations the same way: ``def flowdapt_register_executors(register: Register)``.
Routers and CLI commands reach the server and the CLI through :mod:`flowdapt.server.api` and
:mod:`flowdapt.cli.api`.

Hooks are grouped: registration, contribution, lifecycle. ``docs/hooks.md`` documents each one;
``tests/test_hooks_documented.py`` fails when a hook is missing there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:  # pragma: no cover - the hooks name these types; importing them here would load the server
    from fastapi import APIRouter
    from pydantic import BaseModel
    from typer import Typer

    from flowdapt.plugins import PluginSystem
    from flowdapt.resources.base import Resource
    from flowdapt.resources.run import WorkflowRun
    from flowdapt.resources.workflow import Workflow
    from flowdapt.server.core import FlowdaptServer
    from flowdapt.settings import Settings
    from flowdapt.value_handlers import ValueHandler

PROJECT_NAME = "flowdapt"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    """The callback a registration hook gets: ``register(name, factory, options_model=None)``.

    ``name`` is what settings and resources pick the implementation by (letters, digits, ``_``
    and ``-``); ``factory`` builds it (what it receives is said by each hook); ``options_model``
    is a pydantic model of its options (``None``: it takes none). The core checks all three and
    raises :class:`flowdapt.errors.ConfigurationError` naming the plugin when one is wrong or
    when another plugin registered the same name.
    """

    def __call__(
        self, name: str, factory: Callable[..., Any], options_model: type[BaseModel] | None = None
    ) -> None: ...


class RegisterArtifactHandler(Protocol):
    """The ``register`` of :func:`flowdapt_register_artifact_handlers`: the same callback, whose
    name is a value type (a type, or its dotted path) and whose factory is the handler itself.
    ``register(value_type, to_artifact, from_artifact, executor="*")`` (the earlier form) is
    accepted too."""

    def __call__(
        self, name: str | type, factory: ValueHandler, options_model: type[BaseModel] | None = None
    ) -> None: ...


#: A resource a plugin ships (:func:`flowdapt_resource_definitions`): a mapping, YAML text or a file.
ResourceDefinition = dict[str, Any] | str | Path


# --------------------------------------------------------------------------------------------
# Registration hooks: each gets a ``register(name, factory, options_model=None)`` callback.
# --------------------------------------------------------------------------------------------


@hookspec
def flowdapt_register_executors(register: Register) -> None:
    """Register executor backends, selected by ``executor.backend`` in the settings.

    Called once when the plugin system builds its registries (first use of an executor).
    ``factory(options, settings)`` receives the validated options model instance and the
    :class:`flowdapt.settings.Settings`, and returns a :class:`flowdapt.engine.executor.Executor`
    that has not been started yet. Returns nothing.
    """


@hookspec
def flowdapt_register_stage_types(register: Register) -> None:
    """Register stage types, referenced by a stage's ``type`` field in a workflow.

    Called when the registries are built. ``factory()`` returns a
    :class:`flowdapt.engine.stage_types.StageType`, which says how a stage of that type is run
    (one call, or one call per item of a list) and validates its ``options``. Returns nothing.
    """


@hookspec
def flowdapt_register_document_stores(register: Register) -> None:
    """Register document stores for resources and runs, selected by ``database.backend``.

    Called when the registries are built. ``factory(options, settings)`` returns a
    :class:`flowdapt.storage.DocumentStore` that has not been opened yet. Returns nothing.
    """


@hookspec
def flowdapt_register_cluster_memory(register: Register) -> None:
    """Register cluster-memory backends, selected by ``cluster_memory.backend``.

    Called when the registries are built. ``factory(options, settings)`` returns an object
    implementing :class:`flowdapt.object_store.ClusterMemory` (put, get, delete, exists, clear,
    keys). Returns nothing.
    """


@hookspec
def flowdapt_register_artifact_handlers(register: RegisterArtifactHandler) -> None:
    """Register artifact value handlers: how values of a type are written to an artifact and read back.

    Called when the registries are built (the first time an artifact value hook looks for a
    handler: ``flowdapt.artifacts.save_value``/``load_value``, the object store's artifact side,
    or the original's ``array_to_artifact``/``dataframe_to_artifact``). Call
    ``register(value_type, ValueHandler(to_artifact, from_artifact, executor="*"), options_model)``:
    ``value_type`` is a type or its full path (``"polars.dataframe.frame.DataFrame"``), recorded as
    ``value_type`` in the artifact metadata so a later read picks the same handler;
    ``to_artifact(artifact, value, **options)`` writes the files, ``from_artifact(artifact,
    **options)`` returns the value; ``executor`` limits the handler to one executor (``"dask"``);
    ``options_model`` validates the options a caller passes (``None``: passed unchecked). Import
    heavy libraries inside the handlers, not at module level. Returns nothing.
    """


@hookspec
def flowdapt_register_event_buses(register: Register) -> None:
    """Register event buses, selected by the scheme of ``event_bus.url`` (``memory``, ``amqp``...).

    Called when the registries are built. ``factory(options, settings)`` returns an event bus that
    delivers events to every subscriber (fan-out) and work items to one consumer. Returns nothing.
    """


@hookspec
def flowdapt_register_trigger_types(register: Register) -> None:
    """Register trigger rule types (``schedule``, ``condition`` and any a plugin adds).

    Called when the registries are built. ``factory()`` returns the trigger type object that
    validates a rule and decides when it fires. Returns nothing.
    """


@hookspec
def flowdapt_register_actions(register: Register) -> None:
    """Register trigger actions, referenced by ``spec.action.target`` of a trigger rule.

    Called when the registries are built. ``factory`` is the action callable itself; its
    ``options_model`` validates ``spec.action.parameters`` at apply time. Only registered actions
    can run: a trigger rule cannot name an arbitrary import path. Returns nothing.
    """


@hookspec
def flowdapt_register_services(register: Register) -> None:
    """Register long-running services, picked by name with ``flowdapt run --services a,b``.

    Called when the registries are built. ``factory(options, server)`` receives the validated
    options and the :class:`flowdapt.server.core.FlowdaptServer`, and returns a
    :class:`flowdapt.server.services.Service` (start, drain, stop, health, routers); register the
    class itself so the server can read its ``order``, ``default`` and ``routers()`` without
    building it. The built-ins are ``api`` and ``compute`` (:mod:`flowdapt.builtin.services`) and
    ``triggers`` (:mod:`flowdapt.builtin.triggers`); to replace one, disable the plugin that
    registers it (``plugins.disabled``) and register the same name. Returns nothing.
    """


# --------------------------------------------------------------------------------------------
# Contribution hooks: each returns things the core adds to its surfaces.
# --------------------------------------------------------------------------------------------


@hookspec
def flowdapt_api_routers() -> list[APIRouter]:
    """Return FastAPI ``APIRouter`` objects to mount on the API server.

    Called once while the server application is built, before it starts serving. Each plugin
    returns a list (possibly empty); the routers are included at the root path, so a plugin
    should give its routers a prefix of its own. Routes reach the server's store, settings and
    plugins through the dependencies of :mod:`flowdapt.server.api` (``StoreDep``...). When the
    server has API tokens, every path needs one, except those a router marks public with
    ``flowdapt.server.api.mark_public`` (attribute ``flowdapt_public_paths``: exact paths, or
    prefixes ending in ``*``): meant for pages and static files that hold no data.
    """


@hookspec
def flowdapt_cli_commands(app: Typer) -> None:
    """Add commands to the ``flowdapt`` CLI.

    Called once when the CLI starts, with the root ``typer.Typer`` application; a plugin adds
    commands or sub-applications to it (``app.command()(fn)`` or ``app.add_typer(sub, name=...)``).
    :mod:`flowdapt.cli.api` gives them the built-in commands' ``--server``/``--token``/``--output``
    options, a configured client, the API error handling and exit codes, and table/json/yaml
    printing. Returns nothing.
    """


@hookspec
def flowdapt_resource_definitions() -> list[ResourceDefinition]:
    """Return the resources a plugin ships: workflows, configs and trigger rules.

    Called when a user asks for them (``flowdapt plugin install --include-definitions`` or
    ``flowdapt plugin definitions NAME``), never automatically. Each item is a resource mapping
    (``{"kind": ..., "metadata": ..., "spec": ...}``), a YAML string, or a path to a YAML file.
    """


@hookspec
def flowdapt_validate_resource(resource: Resource, plugins: PluginSystem) -> bool | None:
    """Check a resource of a kind the plugin owns before the server stores it.

    Called on every apply (``PUT``/``POST`` of a resource, ``flowdapt apply``) with the parsed
    resource and the server's plugin system; every plugin's implementation is called. Raise
    :class:`flowdapt.errors.ValidationError` (400, naming the field) to refuse it; return ``True``
    when this plugin checked the resource, ``None`` when it is not one of its kinds. The server
    itself checks workflows only; every other kind is the business of the plugin that owns it (the
    built-in ``triggers`` plugin checks trigger rules), so with no plugin owning a kind its
    resources are stored as their schema parsed them.
    """


# --------------------------------------------------------------------------------------------
# Lifecycle hooks.
# --------------------------------------------------------------------------------------------


@hookspec
def flowdapt_server_startup(server: FlowdaptServer) -> None:
    """The server has opened its database and started its executor, and is about to serve.

    ``server`` is the running server object (settings, store, executor, plugin system). Called
    once per server process. Returns nothing; an exception aborts the start-up with its message.
    """


@hookspec
def flowdapt_server_shutdown(server: FlowdaptServer) -> None:
    """The server is stopping: in-flight runs have finished or been marked, the executor is about
    to stop and the database to close. Called once per server process. Returns nothing.
    """


@hookspec
def flowdapt_worker_setup(executor: str, settings: Settings) -> None:
    """A worker process (Local pool process, Dask worker, Ray worker) starts serving tasks.

    Called once per worker process, before it runs its first stage, with the executor name
    (``local``, ``dask``, ``ray``) and the settings. Use it to warm caches or set up logging.
    Returns nothing.
    """


@hookspec
def flowdapt_run_started(run: WorkflowRun, workflow: Workflow) -> None:
    """A workflow run moved to ``running``: work of its first stage began on a worker (a run
    waiting for a busy worker or a slot is still ``pending``). A run that ends before any stage
    began gets this call just before :func:`flowdapt_run_finished`. ``run`` is the
    :class:`WorkflowRun` record and ``workflow`` the :class:`Workflow` being run. Called in the
    driver process. Returns nothing.
    """


@hookspec
def flowdapt_run_finished(run: WorkflowRun, workflow: Workflow) -> None:
    """A workflow run ended (``finished``, ``failed`` or ``cancelled``). ``run`` carries the
    result or error. Called in the driver process, after the record is final. Returns nothing.
    """
