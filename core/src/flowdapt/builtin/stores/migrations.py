"""Schema migrations of the SQLite document store.

The schema version lives in the database header (``PRAGMA user_version``): 0 for a new, empty
file, then the version of the last migration applied. ``MIGRATIONS`` is the ordered list of
forward steps; migration ``n`` takes a version ``n - 1`` database to version ``n``. They run at
``SQLiteStore.open()`` (and ``flowdapt db upgrade``) inside one ``BEGIN IMMEDIATE`` transaction,
so a failing step leaves the file exactly as it was, and two processes opening the same old file
at once migrate it once.

A later release that changes the schema **appends** a migration; it never edits a released one
(a user's file may already be at that version). See ``docs/storage.md``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flowdapt.errors import ConfigurationError


@dataclass(frozen=True)
class Migration:
    """One forward step: SQL statements, then an optional Python function on the connection.

    Statements run one by one with ``execute`` (never ``executescript``, which would commit the
    surrounding transaction). ``python`` may rewrite documents; it must not commit either.
    """

    version: int
    description: str
    statements: tuple[str, ...] = ()
    python: Callable[[sqlite3.Connection], None] | None = None

    def apply(self, conn: sqlite3.Connection) -> None:
        for statement in self.statements:
            conn.execute(statement)
        if self.python is not None:
            self.python(conn)


#: Version 1: resources (workflow, config, trigger_rule) and workflow runs as JSON documents with
#: the columns lookups and listings need. ``seq`` (the rowid) keeps creation order.
#: ``started_at`` of runs is an integer: microseconds since 1970-01-01, naive UTC.
V1 = Migration(
    version=1,
    description="resources and runs tables with their lookup indexes",
    statements=(
        """
        CREATE TABLE resources (
            seq INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            uid TEXT NOT NULL,
            name TEXT NOT NULL,
            doc TEXT NOT NULL,
            CONSTRAINT resources_kind_uid UNIQUE (kind, uid),
            CONSTRAINT resources_kind_name UNIQUE (kind, name)
        )
        """,
        """
        CREATE TABLE runs (
            seq INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL UNIQUE,
            workflow TEXT NOT NULL,
            state TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            doc TEXT NOT NULL
        )
        """,
        "CREATE INDEX runs_workflow_started ON runs (workflow, started_at, seq)",
        "CREATE INDEX runs_started ON runs (started_at, seq)",
    ),
)

#: Version 2: the durable run queue. A run's lease (holder, expiry in microseconds since 1970,
#: naive UTC) sits beside its document, so ``update_run`` never loses it; ``servers`` holds the
#: cluster's live servers (heartbeat records with an expiry).
V2 = Migration(
    version=2,
    description="run leases and the servers table (durable run queue)",
    statements=(
        "ALTER TABLE runs ADD COLUMN lease_owner TEXT",
        "ALTER TABLE runs ADD COLUMN lease_expires INTEGER",
        "CREATE INDEX runs_state_seq ON runs (state, seq)",
        "CREATE INDEX runs_lease_expires ON runs (lease_expires) WHERE lease_owner IS NOT NULL",
        """
        CREATE TABLE servers (
            server_id TEXT PRIMARY KEY,
            info TEXT NOT NULL,
            last_seen INTEGER NOT NULL,
            expires INTEGER NOT NULL
        )
        """,
    ),
)

#: Version 3: run logs (what stages printed and logged), one row per line keyed by run and seq,
#: and per-run totals for the size bound (bytes kept, records and bytes dropped). ``size`` is the
#: record's counted size (``RunLogRecord.size``); ``time`` is epoch seconds.
V3 = Migration(
    version=3,
    description="run_logs and run_log_totals tables",
    statements=(
        """
        CREATE TABLE run_logs (
            run_uid TEXT NOT NULL,
            seq INTEGER NOT NULL,
            time REAL NOT NULL,
            stage TEXT,
            item INTEGER,
            stream TEXT NOT NULL,
            level INTEGER NOT NULL,
            logger TEXT NOT NULL,
            message TEXT NOT NULL,
            size INTEGER NOT NULL,
            PRIMARY KEY (run_uid, seq)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE run_log_totals (
            run_uid TEXT PRIMARY KEY,
            bytes INTEGER NOT NULL,
            dropped_records INTEGER NOT NULL,
            dropped_bytes INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
    ),
)

#: Every migration, oldest first. Append only.
MIGRATIONS: tuple[Migration, ...] = (V1, V2, V3)


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return migrations[-1].version if migrations else 0


def check_migrations(migrations: Sequence[Migration]) -> None:
    """Versions must be 1, 2, 3... in order, so every step has exactly one predecessor."""
    for index, migration in enumerate(migrations, start=1):
        if migration.version != index:
            raise ValueError(
                f"migration {migration.description!r} has version {migration.version}, expected {index}"
            )


def get_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_not_newer(version: int, path: str, migrations: Sequence[Migration] = MIGRATIONS) -> None:
    latest = latest_version(migrations)
    if version > latest:
        raise ConfigurationError(
            f"the database {path} has schema version {version}, but this Flowdapt only knows versions "
            f"up to {latest}: it was written by a newer release. Upgrade Flowdapt (pip install -U flowdapt) "
            f"or point database.options.path at another file."
        )


def pending(version: int, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
    return [m for m in migrations if m.version > version]


def migrate(conn: sqlite3.Connection, path: str, migrations: Sequence[Migration] = MIGRATIONS) -> tuple[int, int]:
    """Apply pending migrations inside the caller's ``BEGIN IMMEDIATE`` transaction.

    Returns ``(from_version, to_version)``. The caller commits, or rolls back on an exception.
    """
    check_migrations(migrations)
    current = get_version(conn)
    check_not_newer(current, path, migrations)
    for migration in pending(current, migrations):
        try:
            migration.apply(conn)
        except Exception as exc:
            raise ConfigurationError(
                f"migrating {path} to schema version {migration.version} ({migration.description}) failed: "
                f"{type(exc).__name__}: {exc}. The database was left at version {current}."
            ) from exc
        # user_version is part of the database header, so this write is transactional too.
        conn.execute(f"PRAGMA user_version = {int(migration.version)}")
    return current, get_version(conn)
