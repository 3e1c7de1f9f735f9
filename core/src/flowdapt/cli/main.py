"""The ``flowdapt`` command line."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer
import yaml

from flowdapt import __version__
from flowdapt.cli.state import EXIT_BAD_INPUT, CliState
from flowdapt.errors import FlowdaptError

app = typer.Typer(
    name="flowdapt",
    help="Orchestrate adaptive machine-learning workflows of plain Python functions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"flowdapt {__version__}")
        raise typer.Exit()


def _parse_override(raw: str) -> tuple[str, Any]:
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"expected key.path=value, got {raw!r}")
    return key.strip(), yaml.safe_load(value) if value else ""


@app.callback()
def root(
    ctx: typer.Context,
    app_dir: Annotated[str | None, typer.Option("--app-dir", "-d", envvar="FLOWDAPT__APP_DIR", help="app dir (default ~/.flowdapt)")] = None,
    config: Annotated[str | None, typer.Option("--config", "-c", envvar="FLOWDAPT__CONFIG_FILE", help="config file, relative to the app dir; '-' for none")] = None,
    override: Annotated[list[str] | None, typer.Option("--override", "-o", help="set a setting: key.path=value (repeatable)")] = None,
    dev: Annotated[bool, typer.Option("--dev", envvar="FLOWDAPT_DEV_MODE", help="debug logging and full tracebacks")] = False,
    version: Annotated[bool, typer.Option("--version", "-v", callback=_version, is_eager=True, help="print the version")] = False,
) -> None:
    overrides = dict(_parse_override(o) for o in override or [])
    ctx.obj = CliState(app_dir=app_dir, config_file=config, overrides=overrides, dev=dev)
    logging.basicConfig(level=logging.DEBUG if dev else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _register_commands() -> None:
    from flowdapt.cli import client, core, db, plugins, server

    core.register(app)
    plugins.register(app)  # plugin install/uninstall
    server.register(app)
    client.register(app)
    db.register(app)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    _register_commands()
    try:
        from flowdapt.cli.state import set_startup_plugins
        from flowdapt.plugins import create_plugin_system

        # Settings are not parsed yet (the root callback does that); commands reuse this plugin
        # system when the settings do not filter plugins (cli.state.CliState.plugins).
        plugins = create_plugin_system(quiet=True)
        set_startup_plugins(plugins)
        plugins.hook.flowdapt_cli_commands(app=app)
    except FlowdaptError as exc:
        typer.echo(f"error: {exc}", err=True)
    try:
        app(args=args, standalone_mode=True)
    except FlowdaptError as exc:  # a command that did not catch its own: the message, no traceback
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(EXIT_BAD_INPUT) from None


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
