"""The plugin system: one pluggy manager, entry-point discovery and the backend registries.

Built-in plugins are found through the core's own entry points, exactly like third-party ones.
Tests build a :class:`PluginSystem` with ``load_entry_points=False`` and an explicit list of
plugin modules, so results never depend on what happens to be installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import logging
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from flowdapt import hookspecs
from flowdapt.errors import ConfigurationError, PluginNotFoundError
from flowdapt.value_handlers import ValueHandler, registry_name, type_path

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "flowdapt.plugins"

#: Registry kind -> hook that fills it.
REGISTRY_HOOKS: dict[str, str] = {
    "executors": "flowdapt_register_executors",
    "stage_types": "flowdapt_register_stage_types",
    "document_stores": "flowdapt_register_document_stores",
    "cluster_memory": "flowdapt_register_cluster_memory",
    "event_buses": "flowdapt_register_event_buses",
    "trigger_types": "flowdapt_register_trigger_types",
    "actions": "flowdapt_register_actions",
    "artifact_handlers": "flowdapt_register_artifact_handlers",
    "services": "flowdapt_register_services",
}

#: Where a backend that is not installed usually comes from, for start-up error messages.
KNOWN_PROVIDERS: dict[tuple[str, str], str] = {
    ("executors", "ray"): "flowdapt-ray",
    ("executors", "dask"): "flowdapt-dask",
    ("cluster_memory", "lmdb"): "flowdapt-lmdb",
    ("cluster_memory", "ray"): "flowdapt-ray",
    ("cluster_memory", "dask"): "flowdapt-dask",
    ("document_stores", "postgres"): "flowdapt-postgres",
    ("document_stores", "postgresql"): "flowdapt-postgres",
    ("event_buses", "nats"): "flowdapt-nats",
}

#: ``backend: auto`` picks the first of these that a loaded plugin registers. The last one of each
#: list ships with the core, so the defaults work with the core alone; a pick other than the first
#: is logged with what it costs and what to install (docs/configuration.md, "Defaults").
AUTO_BACKENDS: dict[str, tuple[str, ...]] = {
    "cluster_memory": ("lmdb", "memory"),
}
AUTO = "auto"

_AUTO_FALLBACK_NOTES: dict[tuple[str, str], str] = {
    ("cluster_memory", "memory"): (
        "the in-process 'memory' backend is used, which worker processes do not share: a value one "
        "stage puts is not seen by a stage in another worker process (use the Local executor's "
        "thread mode, strategy='artifact', or install the LMDB backend)"
    ),
}

_SINGULAR = {
    "executors": "executor",
    "stage_types": "stage type",
    "document_stores": "document store",
    "cluster_memory": "cluster memory backend",
    "event_buses": "event bus",
    "trigger_types": "trigger type",
    "actions": "action",
    "artifact_handlers": "artifact value handler",
    "services": "service",
}


_SETTING_OF = {"cluster_memory": "cluster_memory.backend"}


class NoOptions(BaseModel):
    """Options model of a backend that takes no options: any key is an error."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Registration:
    kind: str
    name: str
    factory: Callable[..., Any]
    options_model: type[BaseModel]
    plugin: str

    def parse_options(self, options: dict[str, Any] | None) -> BaseModel:
        try:
            return self.options_model.model_validate(options or {})
        except PydanticValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(options)'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigurationError(
                f"invalid options for {_SINGULAR[self.kind]} '{self.name}' (plugin '{self.plugin}'): {problems}"
            ) from None


@dataclass
class PluginInfo:
    """What the plugin system knows about one plugin, loaded or not."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    enabled: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def loaded(self) -> bool:
        return self.enabled and self.error is None

    def summary(self) -> dict[str, Any]:
        """What ``flowdapt plugin install`` reports about the plugin (JSON-ready)."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "enabled": self.enabled,
            "hooks": list(self.hooks),
            "error": self.error,
        }


class PluginSystem:
    """A pluggy manager plus the registries its registration hooks fill, built once and cached."""

    def __init__(self, manager: pluggy.PluginManager, plugins: dict[str, PluginInfo]):
        self.manager = manager
        self.plugins = plugins
        #: Registries by kind, each built (its registration hooks run) on first use: a process
        #: that only compiles and runs workflows never runs, say, the services hooks (which
        #: import the web framework).
        self._built: dict[str, dict[str, Registration]] = {}
        self._lock = threading.Lock()
        self._auto_warned: set[tuple[str, str]] = set()

    @property
    def hook(self):
        return self.manager.hook

    # -- registries -----------------------------------------------------------------------

    @property
    def registries(self) -> dict[str, dict[str, Registration]]:
        """Every kind's registry (every registration hook runs: a broken plugin shows now)."""
        return {kind: self.registry(kind) for kind in REGISTRY_HOOKS}

    def registry(self, kind: str) -> dict[str, Registration]:
        """One kind's registry (name -> registration), built on first use."""
        built = self._built.get(kind)
        if built is None:
            with self._lock:
                built = self._built.get(kind)
                if built is None:
                    built = self._built[kind] = self._build_registry(kind)
        return built

    def _build_registry(self, kind: str) -> dict[str, Registration]:
        registry: dict[str, Registration] = {}
        hook_name = REGISTRY_HOOKS[kind]
        caller = getattr(self.manager.hook, hook_name)
        for impl in caller.get_hookimpls():
            plugin_name = self.manager.get_name(impl.plugin) or repr(impl.plugin)

            def register(
                name: Any,
                factory: Any,
                options_model: Any = None,
                *args: Any,
                _kind: str = kind,
                _plugin: str = plugin_name,
                **extra: Any,
            ) -> None:
                adapter = REGISTRATION_ADAPTERS.get(_kind)
                if adapter is not None:
                    name, factory, options_model = adapter(name, factory, options_model, *args, **extra)
                elif args or extra:
                    raise ConfigurationError(
                        f"plugin '{_plugin}' called register for {_SINGULAR[_kind]} {name!r} with extra "
                        "arguments; it takes (name, factory, options_model=None)"
                    )
                _check_registration(_kind, name, factory, options_model, _plugin)
                existing = registry.get(name)
                if existing is not None and existing.plugin != _plugin:
                    raise ConfigurationError(
                        f"{_SINGULAR[_kind]} '{name}' is registered by both plugin "
                        f"'{existing.plugin}' and plugin '{_plugin}'; disable one with plugins.disabled"
                    )
                registry[name] = Registration(_kind, name, factory, options_model or NoOptions, _plugin)

            try:
                impl.function(register=register)
            except ConfigurationError:
                raise
            except Exception as exc:  # a broken plugin must not take the others down
                info = self.plugins.get(plugin_name)
                if info is not None:
                    info.error = f"{hook_name} raised {type(exc).__name__}: {exc}"
                log.error("plugin %s failed in %s: %s", plugin_name, hook_name, exc)
        return registry

    def names(self, kind: str) -> list[str]:
        return sorted(self.registry(kind))

    def resolve(self, kind: str, name: str) -> str:
        """The backend name a setting means: ``auto`` becomes the first registered name of
        :data:`AUTO_BACKENDS` for the kind; any other name is returned as is."""
        if name != AUTO or kind not in AUTO_BACKENDS:
            return name
        preferred = AUTO_BACKENDS[kind]
        registry = self.registry(kind)
        for candidate in preferred:
            if candidate in registry:
                if candidate != preferred[0] and (kind, candidate) not in self._auto_warned:
                    self._auto_warned.add((kind, candidate))
                    provider = KNOWN_PROVIDERS.get((kind, preferred[0]))
                    note = _AUTO_FALLBACK_NOTES.get((kind, candidate), f"'{candidate}' is used")
                    log.warning(
                        "%s is '%s' and no plugin registers '%s'%s: %s",
                        _SETTING_OF.get(kind, kind),
                        AUTO,
                        preferred[0],
                        f" (pip install {provider})" if provider else "",
                        note,
                    )
                return candidate
        return preferred[0]  # none registered: get() explains which plugin to install

    def get(self, kind: str, name: str) -> Registration:
        name = self.resolve(kind, name)
        registry = self.registry(kind)
        try:
            return registry[name]
        except KeyError:
            pass
        available = ", ".join(sorted(registry)) or "none"
        message = f"no {_SINGULAR[kind]} named '{name}' is registered (available: {available})."
        provider = KNOWN_PROVIDERS.get((kind, name))
        if provider:
            broken = [p for p in self.plugins.values() if p.distribution == provider and p.error]
            if broken:
                message += f" Plugin '{broken[0].name}' from {provider} failed to load: {broken[0].error}"
            else:
                message += f" Install the plugin that provides it: pip install {provider}"
        else:
            message += " Install the plugin that provides it, or check `flowdapt plugin list`."
        raise PluginNotFoundError(message)

    def create(self, kind: str, name: str, options: dict[str, Any] | None, *args: Any) -> Any:
        """Validate ``options`` with the backend's model and call its factory."""
        registration = self.get(kind, name)
        parsed = registration.parse_options(options)
        return registration.factory(parsed, *args)

    def summaries(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """:meth:`PluginInfo.summary` of each named plugin, in order."""
        return [self.plugins[name].summary() for name in names]

    # -- contribution helpers -------------------------------------------------------------

    def module_prefixes(self) -> list[str]:
        """Top-level packages of loaded plugins: stage targets may live under these."""
        prefixes = set()
        for info in self.plugins.values():
            if info.loaded:
                prefixes.add(info.module.split(".")[0])
        return sorted(prefixes)


def _adapt_artifact_handler(name: Any, factory: Any, options_model: Any = None, *args: Any, **extra: Any):
    """``register(value_type, ValueHandler(...), options_model=None)``, or the earlier form
    ``register(value_type, to_artifact, from_artifact, executor="*")``; a type names itself by its path."""
    value_type = name if isinstance(name, str) else type_path(name)
    if not isinstance(factory, ValueHandler):
        if not callable(options_model) or isinstance(options_model, type):
            raise ConfigurationError(
                f"an artifact value handler for {value_type!r} must be registered as "
                "register(value_type, ValueHandler(to_artifact, from_artifact), options_model=None)"
            )
        executor = extra.pop("executor", args[0] if args else "*")
        factory, options_model = ValueHandler(factory, options_model, executor=executor), None
        args = ()
    if args or extra:
        raise ConfigurationError(f"unexpected arguments registering the artifact value handler {value_type!r}")
    return registry_name(value_type, factory.executor), factory, options_model or AnyOptions


class AnyOptions(BaseModel):
    """Options model of an artifact value handler that gave none: every option goes to it unchecked."""

    model_config = ConfigDict(extra="allow")


#: Kinds whose ``register`` takes more than ``(name, factory, options_model)``: normalized here.
REGISTRATION_ADAPTERS: dict[str, Callable[..., tuple[str, Any, Any]]] = {
    "artifact_handlers": _adapt_artifact_handler,
}


def _valid_name(kind: str, name: Any) -> bool:
    if not isinstance(name, str) or not name:
        return False
    allowed = "_-.@" if kind == "artifact_handlers" else "_-"  # value types are dotted type paths
    return all(c.isalnum() or c in allowed for c in name)


def _check_registration(kind, name, factory, options_model, plugin) -> None:
    if not _valid_name(kind, name):
        raise ConfigurationError(f"plugin '{plugin}' registered a {_SINGULAR[kind]} with invalid name {name!r}")
    if kind != "artifact_handlers" and not callable(factory):
        raise ConfigurationError(f"plugin '{plugin}' registered {_SINGULAR[kind]} '{name}' with a non-callable factory")
    if options_model is not None and not (isinstance(options_model, type) and issubclass(options_model, BaseModel)):
        raise ConfigurationError(
            f"plugin '{plugin}' registered {_SINGULAR[kind]} '{name}' with options_model that is not a pydantic model"
        )


def _hook_names(module: ModuleType | object) -> list[str]:
    return sorted(
        name for name in dir(module) if name.startswith("flowdapt_") and hasattr(getattr(module, name), "flowdapt_impl")
    )


def _dist_version(dist_name: str | None) -> str | None:
    if not dist_name:
        return None
    try:
        return md.version(dist_name)
    except md.PackageNotFoundError:
        return None


def _dist_metadata(dist: md.Distribution | None) -> dict[str, Any]:
    if dist is None:
        return {}
    meta = dist.metadata
    return {
        "description": meta.get("Summary") or "",
        "author": meta.get("Author") or meta.get("Author-email") or "",
        "license": meta.get("License") or "",
        "url": meta.get("Home-page") or "",
        "version": dist.version,
        "requirements": list(dist.requires or []),
    }


def create_plugin_system(
    *,
    load_entry_points: bool = True,
    plugins: Iterable[ModuleType | str | tuple[str, ModuleType | str]] = (),
    only: Iterable[str] | None = None,
    disabled: Iterable[str] = (),
    quiet: bool = False,
) -> PluginSystem:
    """Build a plugin system.

    ``plugins`` are extra plugin modules (or import paths, or ``(name, module)`` pairs) registered
    after the entry points. ``only`` and ``disabled`` filter entry points by name *before* they
    are imported, so a disabled plugin's import-time side effects never happen. ``quiet`` logs
    plugin failures at debug level (worker processes: the driver already reported them).
    """
    warn = log.debug if quiet else log.warning
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    only_set = set(only) if only is not None else None
    disabled_set = set(disabled)

    def add(name: str, module_path: str, loader: Callable[[], Any], dist: md.Distribution | None) -> None:
        dist_name = dist.metadata["Name"] if dist is not None else None
        info = PluginInfo(
            name=name,
            module=module_path,
            distribution=dist_name,
            version=dist.version if dist is not None else _dist_version(dist_name),
            metadata=_dist_metadata(dist),
        )
        infos[name] = info
        if (only_set is not None and name not in only_set) or name in disabled_set:
            info.enabled = False
            return
        try:
            module = loader()
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
            warn("plugin %s (%s) failed to import and is skipped: %s", name, module_path, info.error)
            log.debug("%s", traceback.format_exc())
            return
        try:
            manager.register(module, name=name)
        except Exception as exc:  # pluggy rejects hooks with unknown names or bad signatures
            info.error = f"{type(exc).__name__}: {exc}"
            warn("plugin %s could not be registered: %s", name, info.error)
            return
        hooks = _hook_names(module)
        unknown = [h for h in hooks if not getattr(manager.hook, h).has_spec()]
        if unknown:
            manager.unregister(module)
            info.error = f"unknown hook(s) {', '.join(unknown)}: check the spelling against docs/hooks.md"
            warn("plugin %s is skipped: %s", name, info.error)
            return
        info.hooks = hooks

    if load_entry_points:
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in infos:
                continue
            add(ep.name, ep.value, ep.load, ep.dist)

    for item in plugins:
        if isinstance(item, tuple):
            name, target = item
        else:
            target = item
            name = target if isinstance(target, str) else target.__name__
        if isinstance(target, str):
            module_path = target
            loader = lambda path=target: importlib.import_module(path)  # noqa: E731
        else:
            module_path = getattr(target, "__name__", repr(target))
            loader = lambda mod=target: mod  # noqa: E731
        add(name, module_path, loader, None)

    manager.check_pending()
    return PluginSystem(manager, infos)


#: Modules of the built-in plugins, for tests and for ``only`` lists that want the defaults.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("local_executor", "flowdapt.builtin.local_executor"),
    ("document_stores", "flowdapt.builtin.stores"),
    ("stage_types", "flowdapt.builtin.stages"),
    ("cluster_memory", "flowdapt.builtin.cluster_memory"),
    ("event_bus", "flowdapt.builtin.event_bus"),
    ("services", "flowdapt.builtin.services"),
    ("triggers", "flowdapt.builtin.triggers"),
    ("artifact_handlers", "flowdapt.builtin.artifact_handlers"),
)

_default: PluginSystem | None = None
_default_lock = threading.Lock()


def get_plugin_system(settings=None, *, quiet: bool = False) -> PluginSystem:
    """The process-wide plugin system, built from entry points and the plugin settings."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                if settings is None:
                    from flowdapt.settings import get_settings

                    settings = get_settings()
                _default = create_plugin_system(
                    only=settings.plugins.only, disabled=settings.plugins.disabled, quiet=quiet
                )
    return _default


def set_plugin_system(system: PluginSystem | None) -> None:
    """Replace the process-wide plugin system (tests; a reload after installing a plugin)."""
    global _default
    with _default_lock:
        _default = system
