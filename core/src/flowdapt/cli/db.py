"""``flowdapt db``: the document store's schema version and its migrations."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from flowdapt.cli.state import EXIT_FAILED, fail, state
from flowdapt.errors import FlowdaptError

db_app = typer.Typer(help="Inspect and upgrade the database (document store) schema.", no_args_is_help=True)


def _create_store(ctx: typer.Context) -> tuple[Any, Any]:
    st = state(ctx)
    settings = st.settings
    try:
        store = st.plugins.create(
            "document_stores", settings.database.backend, settings.database.options, settings
        )
    except FlowdaptError as exc:
        fail(str(exc))
    return settings, store


def _describe(store: Any) -> str:
    """``store.describe()`` when the store has one (a server store: where it is, never a
    password), else its class and file."""
    describe = getattr(store, "describe", None)
    if callable(describe):
        return str(describe())
    path = getattr(store, "path", None)
    return f"{type(store).__name__} {path}" if path is not None else type(store).__name__


def _emit(data: dict[str, Any], text: str, output: str) -> None:
    if output == "json":
        typer.echo(json.dumps(data))
    else:
        typer.echo(text)


Output = Annotated[str, typer.Option("--output", "-o", help="text or json")]


@db_app.command("upgrade")
def upgrade(ctx: typer.Context, output: Output = "text") -> None:
    """Apply pending schema migrations to the configured store and print the versions."""
    settings, store = _create_store(ctx)

    async def run() -> tuple[int, int, int]:
        try:
            if hasattr(store, "upgrade"):
                before, after = await store.upgrade()
            else:  # a store without explicit upgrades migrates in open()
                await store.open()
                before = after = store.schema_version
            return before, after, store.schema_version
        finally:
            await store.close()

    try:
        before, after, latest = asyncio.run(run())
    except FlowdaptError as exc:
        fail(str(exc), EXIT_FAILED)
    backup = getattr(store, "backup_path", None)
    data = {
        "backend": settings.database.backend,
        "store": _describe(store),
        "from_version": before,
        "to_version": after,
        "latest_version": latest,
        "backup": str(backup) if backup else None,
    }
    if before == after:
        text = f"{_describe(store)}: schema version {after}, already up to date"
    else:
        text = f"{_describe(store)}: upgraded schema from version {before} to {after}"
        if backup:
            text += f" (backup of version {before}: {backup})"
    _emit(data, text, output)


@db_app.command("current")
def current(ctx: typer.Context, output: Output = "text") -> None:
    """Print the schema version stored in the database and the one this Flowdapt needs."""
    settings, store = _create_store(ctx)

    async def run() -> int:
        if hasattr(store, "stored_version"):
            return await store.stored_version()
        try:  # no read-only probe: opening is how this store reports (and reaches) its version
            await store.open()
            return store.schema_version
        finally:
            await store.close()

    try:
        stored = asyncio.run(run())
    except FlowdaptError as exc:
        fail(str(exc), EXIT_FAILED)
    latest = store.schema_version
    path = getattr(store, "path", None)
    if stored == 0 and (path is None or not path.exists()):
        status = "not created yet: the server creates it on start-up, or run `flowdapt db upgrade`"
    elif stored > latest:
        status = "newer than this Flowdapt: upgrade Flowdapt"
    elif stored < latest:
        status = "pending migrations: run `flowdapt db upgrade` (start-up applies them too)"
    else:
        status = "up to date"
    data = {
        "backend": settings.database.backend,
        "store": _describe(store),
        "current_version": stored,
        "latest_version": latest,
        "status": status.split(":")[0],
    }
    _emit(data, f"{_describe(store)}: schema version {stored} (latest {latest}), {status}", output)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
