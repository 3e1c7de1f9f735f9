"""The public API for CLI commands, built-in or from a plugin's ``flowdapt_cli_commands(app)``.

A command that talks to a running server takes the same ``--server``/``--token`` options as the
built-in ones, gets a configured client, calls it through :func:`call` (an API error becomes the
CLI's message and exit code) and prints with :func:`dump` or :func:`print_table`::

    import typer
    from flowdapt.cli import api as cli

    def hello(name: str, server: cli.ServerOption = None, token: cli.TokenOption = None,
              output: cli.OutputOption = "table") -> None:
        with cli.client(server, token) as client:
            answer = cli.call(client.request, "GET", f"/hello/{name}")
        if output == "table":
            cli.print_table(["NAME", "GREETING"], [[name, answer["greeting"]]])
        else:
            cli.dump(answer, output)

Exit codes: 0 success, :data:`EXIT_FAILED` (1) a request or run failed, :data:`EXIT_BAD_INPUT`
(2) bad input (arguments, resources, settings; a 4xx other than 404). Commands that need the
settings or the plugin system take a ``typer.Context`` and call :func:`settings` or
:func:`plugins`, which honour the global ``--app-dir``/``--config``/``--override`` options.

(No ``from __future__ import annotations`` here: typer reads the option aliases at runtime.)
"""

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from flowdapt.cli.state import EXIT_BAD_INPUT, EXIT_FAILED, fail, state

if TYPE_CHECKING:  # pragma: no cover
    from flowdapt.client import ApiError, Client
    from flowdapt.plugins import PluginSystem
    from flowdapt.settings import Settings

T = TypeVar("T")

#: ``--server``/``-s`` (or ``$FLOWDAPT_SERVER``): the server's URL.
ServerOption = Annotated[
    str | None,
    typer.Option("--server", "-s", envvar="FLOWDAPT_SERVER", help="server URL (default http://127.0.0.1:8080)"),
]
#: ``--token`` (or ``$FLOWDAPT_TOKEN``): the server's API token.
TokenOption = Annotated[str | None, typer.Option("--token", envvar="FLOWDAPT_TOKEN", help="API token")]
#: ``--output``/``-o``: ``table``, ``json`` or ``yaml``.
OutputOption = Annotated[str, typer.Option("--output", "-o", help="table, json or yaml")]


def client(server: str | None = None, token: str | None = None, *, timeout: float = 30.0) -> "Client":
    """A :class:`flowdapt.client.Client` for ``server`` (default ``$FLOWDAPT_SERVER``, else
    http://127.0.0.1:8080) with ``token`` (default ``$FLOWDAPT_TOKEN``). Use it as a context manager."""
    from flowdapt.client import Client

    return Client(server, token=token, timeout=timeout)


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``; an :class:`flowdapt.client.ApiError` exits the command with the
    server's message (see :func:`exit_for`)."""
    from flowdapt.client import ApiError

    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        exit_for(exc)


def exit_for(exc: "ApiError") -> NoReturn:
    """Exit for an API error: the server's ``detail`` on stderr; exit code 2 for a 4xx other than
    404 (the input was wrong), else 1. A server that cannot be reached exits 1 with where it looked."""
    from flowdapt.client import ConnectionFailedError

    if isinstance(exc, ConnectionFailedError):
        fail(str(exc.detail), EXIT_FAILED)
    bad_input = 400 <= exc.status_code < 500 and exc.status_code != 404
    fail(f"{exc.status_code}: {exc.detail}", EXIT_BAD_INPUT if bad_input else EXIT_FAILED)


def dump(value: Any, output: str) -> None:
    """Print ``value`` as ``json`` (indented) or ``yaml``; any other format exits with code 2."""
    if output == "json":
        import orjson

        typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    elif output == "yaml":
        import yaml

        typer.echo(yaml.dump(value, Dumper=_yaml_dumper(), sort_keys=False, allow_unicode=True).rstrip())
    else:
        fail(f"unknown output format {output!r}; use table, json or yaml")


_DUMPER: Any = None


def _yaml_dumper() -> Any:
    """A safe YAML dumper that writes multi-line strings (tracebacks, logs) as ``|`` blocks, so
    they read as text rather than one escaped line."""
    global _DUMPER
    if _DUMPER is None:
        import yaml

        class Dumper(yaml.SafeDumper):
            pass

        def text(dumper: Any, value: str) -> Any:
            style = "|" if "\n" in value.rstrip("\n") else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        Dumper.add_representer(str, text)
        _DUMPER = Dumper
    return _DUMPER


#: Width of tables written to a pipe or file: wide enough that no row is cut or wrapped.
PIPE_WIDTH = 100_000


def print_table(columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    """Print rows under column headers, kubectl style (cells may hold rich markup: ``[red]x[/]``).
    Not a terminal (a pipe, a test): cells are never cut or wrapped, whatever their width."""
    from rich.console import Console
    from rich.table import Table

    piped = not sys.stdout.isatty()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=piped, overflow="ignore" if piped else "ellipsis")
    for row in rows:
        table.add_row(*[str(c) for c in row])
    Console(width=PIPE_WIDTH if piped else None).print(table)


def settings(ctx: typer.Context) -> "Settings":
    """The settings of this invocation (global options applied); invalid settings exit with code 2."""
    return state(ctx).settings


def plugins(ctx: typer.Context) -> "PluginSystem":
    """The plugin system of this invocation (``plugins.only``/``plugins.disabled`` applied)."""
    return state(ctx).plugins


__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "OutputOption",
    "ServerOption",
    "TokenOption",
    "call",
    "client",
    "dump",
    "exit_for",
    "fail",
    "plugins",
    "print_table",
    "settings",
]
