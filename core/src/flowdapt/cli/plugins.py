"""``flowdapt plugin install`` and ``flowdapt plugin uninstall``.

By default they ask the running server (``--server``/``FLOWDAPT_SERVER``, token from ``--token``/
``FLOWDAPT_TOKEN``) to change its own environment and reload, without a restart. ``--local``
changes this command's environment instead (no server needed).
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

import typer

from flowdapt.cli.state import EXIT_FAILED, fail

ServerOpt = Annotated[
    str | None, typer.Option("--server", "-s", envvar="FLOWDAPT_SERVER", help="server URL (default http://127.0.0.1:8080)")
]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="FLOWDAPT_TOKEN", help="API token of the server")]
LocalOpt = Annotated[
    bool, typer.Option("--local", help="change this environment instead of the server's (no server needed)")
]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="text or json")]

#: Seconds the CLI waits for the server to install (building a project can take a while).
REQUEST_TIMEOUT = 900.0


def _absolute_if_local_path(plugin: str) -> str:
    """Paths go to the server as absolute paths (it resolves them on its own machine)."""
    from flowdapt.plugin_installer import InstallSpec

    spec = InstallSpec(plugin, base_dir=os.getcwd())
    if spec.source == "path" and spec.path().exists():
        return str(spec.path())
    return plugin


def _post(server: str | None, token: str | None, path: str, body: dict[str, Any]) -> Any:
    from flowdapt.cli import api as cli
    from flowdapt.client import ApiError

    try:
        with cli.client(server, token, timeout=REQUEST_TIMEOUT) as client:
            return client.request("POST", path, json=body)
    except ApiError as exc:
        detail = getattr(exc, "detail", None) or str(exc)
        if exc.status_code in (401, 403):  # refused: a token is missing or wrong (bad input, exit 2)
            cli.exit_for(exc)
        fail(str(detail), EXIT_FAILED)


def _print_change(result: dict[str, Any], verb: str) -> None:
    changed = result.get("changed") or []
    if not changed:
        typer.echo(f"{verb}: nothing changed (already as requested)")
    for item in changed:
        old, new = item.get("old"), item.get("new")
        if old and new:
            typer.echo(f"  ~ {item['distribution']} {old} -> {new}")
        elif new:
            typer.echo(f"  + {item['distribution']} {new}")
        else:
            typer.echo(f"  - {item['distribution']} {old}")


def _print_install(result: dict[str, Any]) -> None:
    _print_change(result, "installed")
    for plugin in result.get("plugins") or []:
        if plugin.get("error"):
            typer.secho(f"plugin {plugin['name']}: failed to load: {plugin['error']}", fg=typer.colors.RED, err=True)
        else:
            hooks = ", ".join(h.removeprefix("flowdapt_") for h in plugin.get("hooks") or []) or "no hooks"
            typer.echo(f"plugin {plugin['name']} {plugin.get('version') or ''} loaded ({hooks})")
    for item in result.get("definitions") or []:
        typer.echo(f"[{item['kind']}/{item['name']}] {item['action']}")
    if result.get("warning"):
        typer.secho(f"warning: {result['warning']}", fg=typer.colors.YELLOW, err=True)


def install_command(
    ctx: typer.Context,
    plugin: Annotated[str, typer.Argument(help="package name, local path (project dir, wheel, sdist) or URL")],
    version: Annotated[str | None, typer.Option("--version", help="version or specifier: 1.2.0, '>=1.2,<2'")] = None,
    upgrade: Annotated[bool, typer.Option("--upgrade", "-U", help="upgrade it (and its dependencies) if installed")] = False,
    editable: Annotated[bool, typer.Option("--editable", "-e", help="install a project directory in editable mode")] = False,
    extra: Annotated[list[str] | None, typer.Option("--extra", help="an optional-dependency group (repeatable)")] = None,
    include_definitions: Annotated[
        bool, typer.Option("--include-definitions", help="apply the workflows, configs and trigger rules it ships")
    ] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    local: LocalOpt = False,
    output: OutputOpt = "text",
) -> None:
    """Install a plugin into the server's environment and load it, without restarting the server.

    New runs use the new code: the executor replaces its workers. A failed install changes nothing
    and prints the installer's error. Paths are read on the server's machine.
    """
    from flowdapt.cli.core import dumps_json

    body = {
        "plugin": _absolute_if_local_path(plugin),
        "version": version,
        "upgrade": upgrade,
        "editable": editable,
        "extras": list(extra or []),
        "include_definitions": include_definitions,
    }
    if local:
        result = _install_local(ctx, body)
    else:
        result = _post(server, token, "/plugin/install", body)
    if output == "json":
        typer.echo(dumps_json(result))
    else:
        _print_install(result)
    if any(p.get("error") for p in result.get("plugins") or []):
        raise typer.Exit(EXIT_FAILED)


def _install_local(ctx: typer.Context, body: dict[str, Any]) -> dict[str, Any]:
    from flowdapt.cli.state import state
    from flowdapt.errors import FlowdaptError
    from flowdapt.plugin_installer import InstallSpec, install, plugins_of, reload_plugins

    if body["include_definitions"]:
        fail("--include-definitions needs a server to apply them to; drop --local, or apply the files with the client")
    settings = state(ctx).settings
    spec = InstallSpec(body["plugin"], body["version"], body["upgrade"], body["editable"], body["extras"], os.getcwd())
    try:
        change = asyncio.run(install(spec))
        system = reload_plugins(
            None, set(change.changed), only=settings.plugins.only, disabled=settings.plugins.disabled
        )
    except FlowdaptError as exc:
        fail(str(exc), EXIT_FAILED)
    return {**change.as_dict(), "plugins": system.summaries(plugins_of(system, change.distribution)), "definitions": []}


def uninstall_command(
    ctx: typer.Context,
    plugin: Annotated[str, typer.Argument(help="plugin name (see `flowdapt plugin list`) or distribution name")],
    server: ServerOpt = None,
    token: TokenOpt = None,
    local: LocalOpt = False,
    output: OutputOpt = "text",
) -> None:
    """Uninstall a plugin from the server's environment and unload it, without restarting the server.

    Resources applied from its definitions stay stored; runs of workflows that use its stages fail
    with "target not found" until it is installed again.
    """
    from flowdapt.cli.core import dumps_json

    if local:
        from flowdapt.cli.state import state
        from flowdapt.errors import FlowdaptError
        from flowdapt.plugin_installer import resolve_plugin_distribution, uninstall

        state(ctx).settings  # noqa: B018 - validates the global options
        try:
            distribution = resolve_plugin_distribution(plugin, state(ctx).plugins)
            change = asyncio.run(uninstall(distribution))
        except FlowdaptError as exc:
            fail(str(exc), EXIT_FAILED)
        result = {**change.as_dict(), "plugins": [plugin]}
    else:
        result = _post(server, token, "/plugin/uninstall", {"plugin": plugin})
    if output == "json":
        typer.echo(dumps_json(result))
    else:
        _print_change(result, "uninstalled")
        typer.echo(f"unloaded: {', '.join(result.get('plugins') or []) or '-'}")


def definitions_command(
    ctx: typer.Context,
    plugin: Annotated[list[str] | None, typer.Argument(help="plugin name(s) (default: every loaded plugin)")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="yaml or json")] = "yaml",
) -> None:
    """Print the workflows, configs and trigger rules installed plugins ship (for `flowdapt apply`)."""
    import yaml

    from flowdapt.cli.core import dumps_json
    from flowdapt.cli.state import state
    from flowdapt.definitions import collect_definitions
    from flowdapt.errors import FlowdaptError

    try:
        found = collect_definitions(state(ctx).plugins, plugin or None)
    except FlowdaptError as exc:
        fail(str(exc))
    documents = []
    for definition in found:
        document = definition.resource.model_dump(mode="json", include={"kind", "metadata", "spec"})
        document["metadata"] = {k: v for k, v in document["metadata"].items() if k in ("name", "annotations") and v}
        documents.append(document)
    if output == "json":
        typer.echo(dumps_json(documents))
    else:
        typer.echo(yaml.safe_dump_all(documents, sort_keys=False).rstrip() if documents else "")


def register(app: typer.Typer) -> None:
    """Add ``install`` and ``uninstall`` to the ``flowdapt plugin`` group (``list`` is in cli.core)."""
    from flowdapt.cli.core import plugin_app

    plugin_app.command("install")(install_command)
    plugin_app.command("uninstall")(uninstall_command)
    plugin_app.command("definitions")(definitions_command)


__all__ = ["definitions_command", "install_command", "register", "uninstall_command"]
