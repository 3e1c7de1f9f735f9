"""Schema migrations of the PostgreSQL document store.

The schema version lives in the store's own table ``schema_version`` (one row per migration
applied, with its description and time) inside the configured schema: 0 for a schema that does
not exist yet or has no such table. ``MIGRATIONS`` is the ordered list of forward steps; migration
``n`` takes a version ``n - 1`` schema to version ``n``. They run at ``PostgresStore.open()`` (and
``flowdapt db upgrade``) in **one** transaction that first takes a transaction-level advisory lock
for the schema: PostgreSQL's DDL is transactional, so a failing step leaves the schema exactly as
it was, and servers starting together against a new database migrate it once.

A later release that changes the schema **appends** a migration; it never edits a released one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flowdapt.errors import ConfigurationError


@dataclass(frozen=True)
class Migration:
    """One forward step: SQL statements, then an optional coroutine function on the connection
    (inside the same transaction; it must not commit)."""

    version: int
    description: str
    statements: tuple[str, ...] = ()
    python: Callable[[Any], Awaitable[None]] | None = None

    async def apply(self, conn: Any) -> None:
        for statement in self.statements:
            await conn.execute(statement)
        if self.python is not None:
            await self.python(conn)


#: Version 1: resources and runs as JSON documents (text, exactly as written) with the columns
#: lookups, listings and the run queue need; a run's lease sits beside its document. ``seq``
#: keeps creation order; runs' ``started_at`` is microseconds since 1970 (naive UTC), as in the
#: SQLite store, so both order runs identically. Lease and heartbeat times are ``timestamptz``
#: from the server's ``now()``: every host judges expiry by the same clock.
V1 = Migration(
    version=1,
    description="resources, runs (with leases) and servers tables with their indexes",
    statements=(
        """
        CREATE TABLE resources (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind text NOT NULL,
            uid text NOT NULL,
            name text NOT NULL,
            doc text NOT NULL,
            CONSTRAINT resources_kind_uid UNIQUE (kind, uid),
            CONSTRAINT resources_kind_name UNIQUE (kind, name)
        )
        """,
        """
        CREATE TABLE runs (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            uid text NOT NULL,
            name text NOT NULL,
            workflow text NOT NULL,
            state text NOT NULL,
            started_at bigint NOT NULL,
            doc text NOT NULL,
            lease_owner text,
            lease_expires timestamptz,
            CONSTRAINT runs_uid UNIQUE (uid),
            CONSTRAINT runs_name UNIQUE (name)
        )
        """,
        "CREATE INDEX runs_workflow_started ON runs (workflow, started_at, seq)",
        "CREATE INDEX runs_started ON runs (started_at, seq)",
        "CREATE INDEX runs_state_started ON runs (state, started_at)",
        # The queue: pending runs in creation order, and leases by expiry.
        "CREATE INDEX runs_pending ON runs (seq) WHERE state = 'pending'",
        "CREATE INDEX runs_lease_expires ON runs (lease_expires) WHERE lease_owner IS NOT NULL",
        """
        CREATE TABLE servers (
            server_id text PRIMARY KEY,
            info text NOT NULL,
            last_seen timestamptz NOT NULL,
            expires_at timestamptz NOT NULL
        )
        """,
    ),
)

#: Version 2: run logs (what stages printed and logged), one row per line keyed by run and seq,
#: and per-run totals for the size bound (bytes kept, records and bytes dropped), as the SQLite
#: store's version 3. ``size`` is the record's counted size (``RunLogRecord.size``); ``time`` is
#: epoch seconds. PostgreSQL ``text`` cannot hold NUL characters, so a message that has any is
#: stored as its JSON string literal with ``json_message`` set (and read back exactly).
V2 = Migration(
    version=2,
    description="run_logs and run_log_totals tables",
    statements=(
        """
        CREATE TABLE run_logs (
            run_uid text NOT NULL,
            seq bigint NOT NULL,
            time double precision NOT NULL,
            stage text,
            item bigint,
            stream text NOT NULL,
            level integer NOT NULL,
            logger text NOT NULL,
            message text NOT NULL,
            json_message boolean NOT NULL DEFAULT false,
            size bigint NOT NULL,
            PRIMARY KEY (run_uid, seq)
        )
        """,
        """
        CREATE TABLE run_log_totals (
            run_uid text PRIMARY KEY,
            bytes bigint NOT NULL,
            dropped_records bigint NOT NULL,
            dropped_bytes bigint NOT NULL
        )
        """,
    ),
)

#: Every migration, oldest first. Append only.
MIGRATIONS: tuple[Migration, ...] = (V1, V2)


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return migrations[-1].version if migrations else 0


def check_migrations(migrations: Sequence[Migration]) -> None:
    """Versions must be 1, 2, 3... in order, so every step has exactly one predecessor."""
    for index, migration in enumerate(migrations, start=1):
        if migration.version != index:
            raise ValueError(f"migration {migration.description!r} has version {migration.version}, expected {index}")


def check_not_newer(version: int, where: str, migrations: Sequence[Migration] = MIGRATIONS) -> None:
    latest = latest_version(migrations)
    if version > latest:
        raise ConfigurationError(
            f"the database {where} has schema version {version}, but this Flowdapt only knows versions "
            f"up to {latest}: it was written by a newer release. Upgrade Flowdapt "
            f"(pip install -U flowdapt flowdapt-postgres) or point database.options.schema at another schema."
        )


def pending(version: int, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
    return [m for m in migrations if m.version > version]
