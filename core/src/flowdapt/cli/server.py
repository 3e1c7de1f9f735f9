"""``flowdapt run``: start the server."""

from __future__ import annotations

from typing import Annotated

import typer

from flowdapt.cli.state import fail, state
from flowdapt.errors import FlowdaptError


def run_command(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", help="address to bind (default api.host, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option("--port", "-p", help="port (default api.port, 8080)")] = None,
    services: Annotated[
        str | None,
        typer.Option("--services", help="comma-separated services this process runs: api, compute, triggers, or one a plugin adds (default: every installed service)"),
    ] = None,
) -> None:
    """Start the Flowdapt server (REST API, run executor, triggers) until SIGTERM/Ctrl-C."""
    st = state(ctx)
    settings = st.settings
    plugins = st.plugins
    from flowdapt.server.serve import serve

    host = host or settings.api.host
    port = settings.api.port if port is None else port
    try:
        where = f"on http://{host}:{port}" if services is None or "api" in services else f"({services}, no API)"
        typer.secho(
            f"flowdapt server {settings.name} {where} (app dir {settings.app_dir}, "
            f"database {settings.database.backend}, executor {settings.executor.backend})",
            err=True,
        )
        serve(settings, plugins, host=host, port=port, services=services, log_level="debug" if st.dev else None)
    except FlowdaptError as exc:
        fail(str(exc))
    except OSError as exc:  # port in use, permission denied
        fail(f"cannot listen on {host}:{port}: {exc}")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
