"""Installing and uninstalling plugins on a running server: the logic behind the routes of the
built-in ``plugin_admin`` plugin (:mod:`flowdapt.builtin.plugin_admin`)."""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from flowdapt.errors import FlowdaptError, ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from flowdapt.plugins import PluginSystem
    from flowdapt.server.core import FlowdaptServer

log = logging.getLogger("flowdapt.server.plugins")


class TokenRequiredError(FlowdaptError):
    status_code = 403


class PluginInstallBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plugin: str = Field(min_length=1, description="package name, path on the server's machine, or URL")
    version: str | None = Field(default=None, description="version or specifier, for package names: 1.2.0, '>=1.2,<2'")
    upgrade: bool = False
    editable: bool = Field(default=False, description="install a project directory in editable mode")
    extras: list[str] = Field(default_factory=list)
    include_definitions: bool = Field(default=False, description="apply the workflows, configs and trigger rules it ships")


class PluginUninstallBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plugin: str = Field(min_length=1, description="plugin name (as `flowdapt plugin list` shows) or distribution name")


_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock_for(server: FlowdaptServer) -> asyncio.Lock:
    lock = _locks.get(server)
    if lock is None:
        lock = _locks[server] = asyncio.Lock()
    return lock


async def _swap_plugins(server: FlowdaptServer, changed: set[str]) -> PluginSystem:
    from flowdapt.plugin_installer import reload_plugins

    settings = server.settings
    system = await asyncio.to_thread(
        reload_plugins, server.plugins, changed, only=settings.plugins.only, disabled=settings.plugins.disabled
    )
    server.plugins = system
    if server.executor is not None:
        await server.executor.reload_code()
    return system


def _call_for(system: PluginSystem, hook: str, names: list[str], **kwargs: Any) -> None:
    """Call a lifecycle hook on some plugins only (those just installed or about to go)."""
    keep = {system.manager.get_plugin(n) for n in names} - {None}
    if not keep:
        return
    others = [p for p in system.manager.get_plugins() if p not in keep]
    try:
        system.manager.subset_hook_caller(hook, remove_plugins=others)(**kwargs)
    except Exception:
        log.exception("%s of plugin(s) %s failed", hook, ", ".join(names))


async def apply_definitions(server: FlowdaptServer, plugin_names: list[str]) -> list[dict[str, str]]:
    """Create or update every resource the plugins ship; all are validated before any is written."""
    from flowdapt.definitions import collect_definitions
    from flowdapt.errors import ResourceNotFoundError

    definitions = collect_definitions(server.plugins, plugin_names)
    planned: list[tuple[Any, str]] = []
    for definition in definitions:
        body = definition.resource.to_document()
        body.get("metadata", {}).pop("uid", None)
        try:
            await server.resources.get(definition.kind, definition.name)
        except ResourceNotFoundError:
            await server.resources.create(definition.kind, body, dry_run=True)
            planned.append((definition, "created"))
        else:
            await server.resources.update(definition.kind, definition.name, body, dry_run=True)
            planned.append((definition, "updated"))
    applied = []
    for definition, action in planned:
        body = definition.resource.to_document()
        body.get("metadata", {}).pop("uid", None)
        if action == "created":
            await server.resources.create(definition.kind, body)
        else:
            await server.resources.update(definition.kind, definition.name, body)
        applied.append({"kind": definition.kind, "name": definition.name, "plugin": definition.plugin, "action": action})
    return applied


async def install_on_server(server: FlowdaptServer, body: PluginInstallBody) -> dict[str, Any]:
    from flowdapt.plugin_installer import InstallSpec, install, normalize_name, plugins_of

    spec = InstallSpec(body.plugin, body.version, body.upgrade, body.editable, list(body.extras))
    async with _lock_for(server):
        change = await install(spec)
        touched = set(change.changed)
        if change.distribution:
            touched.add(change.distribution)  # reinstalled at the same version: still reload its code
        system = await _swap_plugins(server, touched)
        names = plugins_of(system, change.distribution)
        if not names:  # a path or URL whose name we could not tell: whatever plugin it changed
            names = sorted(
                info.name
                for info in system.plugins.values()
                if info.distribution and normalize_name(info.distribution) in set(change.changed)
            )
        _call_for(system, "flowdapt_server_startup", [n for n in names if system.plugins[n].loaded], server=server)
        result: dict[str, Any] = {
            **change.as_dict(),
            "plugins": system.summaries(names),
            "definitions": [],
        }
        if not names:
            result["warning"] = (
                f"{body.plugin!r} was installed but provides no Flowdapt plugin "
                "(no entry point in group 'flowdapt.plugins')"
            )
        if body.include_definitions:
            if not names:
                raise ValidationError(f"{body.plugin!r} was installed, but it provides no plugin to take definitions from")
            broken = [f"{n}: {system.plugins[n].error}" for n in names if system.plugins[n].error]
            if broken:
                raise ValidationError(
                    f"{body.plugin!r} was installed, but its definitions were not applied because the plugin "
                    f"failed to load ({'; '.join(broken)})"
                )
            try:
                result["definitions"] = await apply_definitions(server, names)
            except FlowdaptError as exc:
                raise ValidationError(
                    f"{body.plugin!r} was installed, but its definitions were not applied (none was): {exc}"
                ) from None
        log.info("installed %s: %s", body.plugin, ", ".join(f"{k} {v[0]} -> {v[1]}" for k, v in change.changed.items()) or "no change")
        return result


async def uninstall_from_server(server: FlowdaptServer, body: PluginUninstallBody) -> dict[str, Any]:
    from flowdapt.plugin_installer import plugins_of, resolve_plugin_distribution, uninstall

    async with _lock_for(server):
        distribution = resolve_plugin_distribution(body.plugin, server.plugins)
        names = plugins_of(server.plugins, distribution)
        _call_for(server.plugins, "flowdapt_server_shutdown", [n for n in names if server.plugins.plugins[n].loaded], server=server)
        change = await uninstall(distribution)
        await _swap_plugins(server, set(change.changed) | {distribution})
        log.info("uninstalled %s (plugins: %s)", distribution, ", ".join(names) or "none")
        return {**change.as_dict(), "plugins": names}


def parse_body(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise ValidationError(problems) from None


def require_token(server: FlowdaptServer) -> None:
    if not server.settings.api.all_tokens():
        raise TokenRequiredError(
            "installing or removing plugins over the API needs an API token on the server, because it runs "
            "new code: start the server with FLOWDAPT__API__TOKEN=<secret> and call it with --token/FLOWDAPT_TOKEN, "
            "or install into a local environment with `flowdapt plugin install --local`"
        )

