"""The shipped document-store conformance suite (flowdapt.testing.conformance.document_stores) on
the built-in SQLite and memory stores, then what is specific to SQLite (file location, WAL,
indexes, schema migrations, ``flowdapt db``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from flowdapt.errors import ConfigurationError, ConflictError
from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.testing.conformance import Backend
from flowdapt.testing.conformance.document_stores import (
    T0,
    DocumentStoreConformance,
    make_resource,
    make_run,
    race_in_threads,
    same,
)

BUILTIN_STORES = [
    # The default: no options at all, so the file is <app_dir>/flowdapt.db.
    Backend("document_stores", "sqlite", plugins=tuple(BUILTIN_PLUGINS)),
    Backend("document_stores", "memory", plugins=tuple(BUILTIN_PLUGINS)),
]


@pytest.fixture(scope="module", params=BUILTIN_STORES, ids=lambda b: b.test_id)
def flowdapt_store_backend(request):
    return request.param


class TestBuiltinStores(DocumentStoreConformance):
    pass


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    for key in list(os.environ):
        if key.startswith("FLOWDAPT__"):
            monkeypatch.delenv(key)
    path = tmp_path / "app"
    path.mkdir()
    return path



# =============================================================================================
# SQLite specifics
# =============================================================================================

from flowdapt.builtin.stores import migrations as sqlite_migrations  # noqa: E402
from flowdapt.builtin.stores.sqlite import SQLiteStore, SQLiteStoreOptions  # noqa: E402

#: The schema each *released* version created, frozen here as written at release time. A
#: migration is never edited once released; add the next version's DDL when you add a migration.
RELEASED_SCHEMAS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE resources (
            seq INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            uid TEXT NOT NULL,
            name TEXT NOT NULL,
            doc TEXT NOT NULL,
            CONSTRAINT resources_kind_uid UNIQUE (kind, uid),
            CONSTRAINT resources_kind_name UNIQUE (kind, name)
        )""",
        """CREATE TABLE runs (
            seq INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL UNIQUE,
            workflow TEXT NOT NULL,
            state TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            doc TEXT NOT NULL
        )""",
        "CREATE INDEX runs_workflow_started ON runs (workflow, started_at, seq)",
        "CREATE INDEX runs_started ON runs (started_at, seq)",
    ],
}
RELEASED_SCHEMAS[2] = [
    *RELEASED_SCHEMAS[1],
    "ALTER TABLE runs ADD COLUMN lease_owner TEXT",
    "ALTER TABLE runs ADD COLUMN lease_expires INTEGER",
    "CREATE INDEX runs_state_seq ON runs (state, seq)",
    "CREATE INDEX runs_lease_expires ON runs (lease_expires) WHERE lease_owner IS NOT NULL",
    """CREATE TABLE servers (
            server_id TEXT PRIMARY KEY,
            info TEXT NOT NULL,
            last_seen INTEGER NOT NULL,
            expires INTEGER NOT NULL
        )""",
]
RELEASED_SCHEMAS[3] = [
    *RELEASED_SCHEMAS[2],
    """CREATE TABLE run_logs (
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
        ) WITHOUT ROWID""",
    """CREATE TABLE run_log_totals (
            run_uid TEXT PRIMARY KEY,
            bytes INTEGER NOT NULL,
            dropped_records INTEGER NOT NULL,
            dropped_bytes INTEGER NOT NULL
        ) WITHOUT ROWID""",
]


def _micros(value: datetime) -> int:
    return (value - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def build_v1_file(path: Path) -> dict:
    """A version-1 database written with raw sqlite3, as a v1 release would have left it."""
    workflow = make_resource("workflow", "legacy-wf")
    config = make_resource("config", "legacy-cfg")
    run = make_run("legacy-wf", T0, "finished", result={"x": 1})
    conn = sqlite3.connect(path)
    for statement in RELEASED_SCHEMAS[1]:
        conn.execute(statement)
    for resource in (workflow, config):
        conn.execute(
            "INSERT INTO resources (kind, uid, name, doc) VALUES (?, ?, ?, ?)",
            (resource.kind, str(resource.uid), resource.name, json.dumps(resource.to_document())),
        )
    conn.execute(
        "INSERT INTO runs (uid, name, workflow, state, started_at, doc) VALUES (?, ?, ?, ?, ?, ?)",
        (str(run.uid), run.name, run.workflow, "finished", _micros(run.started_at), run.model_dump_json()),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    return {"workflow": workflow, "config": config, "run": run}


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def _schema(conn: sqlite3.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").fetchall()
    return {name: " ".join(sql.split()) for name, sql in rows}


#: A migration that only exists in these tests: the version after the latest (NEXT) adds a `namespace` column to runs,
#: back-filled from each document, so an upgrade has to read and keep the old data.
def _backfill_namespace(conn: sqlite3.Connection) -> None:
    for seq, doc in conn.execute("SELECT seq, doc FROM runs").fetchall():
        conn.execute("UPDATE runs SET namespace = ? WHERE seq = ?", (json.loads(doc)["namespace"], seq))


NEXT = sqlite_migrations.latest_version() + 1
TEST_NEXT = sqlite_migrations.Migration(
    version=NEXT,
    description="runs.namespace column (test only)",
    statements=(
        "ALTER TABLE runs ADD COLUMN namespace TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX runs_namespace ON runs (namespace)",
    ),
    python=_backfill_namespace,
)
WITH_NEXT = (*sqlite_migrations.MIGRATIONS, TEST_NEXT)


@pytest.fixture
def plugin_system():
    from flowdapt.plugins import BUILTIN_PLUGINS

    return create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))


def _settings(app_dir: Path):
    from flowdapt.settings import load_settings

    return load_settings(app_dir=app_dir, config_file="-", create=False)


async def test_sqlite_is_the_default_backend_with_file_in_app_dir(app_dir, plugin_system):
    settings = _settings(app_dir)
    assert settings.database.backend == "sqlite"
    store = plugin_system.create("document_stores", settings.database.backend, settings.database.options, settings)
    assert isinstance(store, SQLiteStore)
    assert store.path == app_dir / "flowdapt.db"
    async with store:
        await store.create(make_resource("workflow", "w"))
    assert (app_dir / "flowdapt.db").is_file()


def test_sqlite_path_option(app_dir, tmp_path, plugin_system):
    settings = _settings(app_dir)
    relative = plugin_system.create("document_stores", "sqlite", {"path": "data/my.db"}, settings)
    assert relative.path == app_dir / "data" / "my.db"
    absolute = plugin_system.create("document_stores", "sqlite", {"path": str(tmp_path / "abs.db")}, settings)
    assert absolute.path == tmp_path / "abs.db"
    with pytest.raises(ConfigurationError, match="busy_timeout"):
        plugin_system.create("document_stores", "sqlite", {"busy_timeout": -1}, settings)
    with pytest.raises(ConfigurationError, match="memory"):
        plugin_system.create("document_stores", "sqlite", {"path": ":memory:"}, settings)
    with pytest.raises(ConfigurationError, match="nonsense"):
        plugin_system.create("document_stores", "sqlite", {"nonsense": 1}, settings)
    assert SQLiteStoreOptions().path is None


async def test_sqlite_wal_schema_and_indexes(tmp_path):
    path = tmp_path / "s.db"
    async with SQLiteStore(path) as store:
        await store.create(make_resource("workflow", "w"))
        await store.create_run(make_run("w"))
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_migrations.latest_version()
        schema = _schema(conn)
        # Frozen DDL of the latest released version == what the migrations create.
        expected = {}
        scratch = sqlite3.connect(":memory:")
        for statement in RELEASED_SCHEMAS[sqlite_migrations.latest_version()]:
            scratch.execute(statement)
        expected = _schema(scratch)
        assert schema == expected, "a released migration was edited: add a new migration instead"

        def plan(sql: str, *params) -> str:
            return " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))

        assert "sqlite_autoindex_resources" in plan("SELECT doc FROM resources WHERE kind = ? AND name = ?", "workflow", "w")
        assert "sqlite_autoindex_resources" in plan("SELECT doc FROM resources WHERE kind = ? AND uid = ?", "workflow", "u")
        assert "runs_workflow_started" in plan(
            "SELECT doc FROM runs WHERE workflow = ? ORDER BY started_at DESC, seq DESC LIMIT 10", "w"
        )
        listing = plan("SELECT doc FROM runs ORDER BY started_at DESC, seq DESC LIMIT 10")
        assert "runs_started" in listing and "TEMP B-TREE" not in listing
    finally:
        conn.close()


async def test_sqlite_released_schema_file_opens_without_data_loss(tmp_path):
    """A file left by the v1 release opens with this code (migrated forward if code is newer)."""
    path = tmp_path / "old.db"
    data = build_v1_file(path)
    async with SQLiteStore(path) as store:
        assert store.migrated_to == sqlite_migrations.latest_version()
        assert same(await store.get("workflow", "legacy-wf"), data["workflow"])
        assert same(await store.get("config", str(data["config"].uid)), data["config"])
        assert same(await store.get_run(data["run"].name), data["run"])
        assert [r.uid for r in await store.list_runs(workflow="legacy-wf")] == [data["run"].uid]
        with pytest.raises(ConflictError):
            await store.create(make_resource("workflow", "legacy-wf"))
    assert _user_version(path) == sqlite_migrations.latest_version()


async def test_sqlite_v1_file_gains_the_run_queue(tmp_path):
    """Version 2 adds the lease columns beside each run and the servers table: a pending run left
    by a v1 release is claimable after the upgrade, and its document is untouched."""
    path = tmp_path / "old.db"
    build_v1_file(path)
    conn = sqlite3.connect(path)
    pending = make_run("legacy-wf", T0, "pending")
    conn.execute(
        "INSERT INTO runs (uid, name, workflow, state, started_at, doc) VALUES (?, ?, ?, ?, ?, ?)",
        (str(pending.uid), pending.name, pending.workflow, "pending", _micros(T0), pending.model_dump_json()),
    )
    conn.commit()
    conn.close()
    async with SQLiteStore(path) as store:
        assert (store.migrated_from, store.migrated_to) == (1, sqlite_migrations.latest_version())
        (claimed,) = await store.claim_runs("server-1", 30)
        assert same(claimed, pending)
        assert (await store.get_lease(str(pending.uid)))[0] == "server-1"
        await store.heartbeat_server("server-1", {"services": ["compute"]}, 30)
        assert [s["server_id"] for s in await store.list_servers()] == ["server-1"]
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT lease_owner, doc FROM runs WHERE uid = ?", (str(pending.uid),)).fetchone()
    finally:
        conn.close()
    assert row[0] == "server-1" and "lease" not in json.loads(row[1])


async def test_sqlite_upgrades_older_file_forward_on_open(tmp_path):
    path = tmp_path / "old.db"
    data = build_v1_file(path)
    store = SQLiteStore(path, migrations=WITH_NEXT)
    assert store.schema_version == NEXT
    async with store:
        assert (store.migrated_from, store.migrated_to) == (1, NEXT)
        # Nothing lost, and the migration's back-fill used the old documents.
        assert same(await store.get("workflow", "legacy-wf"), data["workflow"])
        assert same(await store.get_run(str(data["run"].uid)), data["run"])
        await store.create_run(make_run("legacy-wf", T0 + timedelta(hours=1)))
        assert await store.count_runs(workflow="legacy-wf") == 2
    assert _user_version(path) == NEXT
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT namespace FROM runs WHERE name = ?", (data["run"].name,)).fetchone() == ("default",)
    conn.close()
    # A backup of the version-1 file was kept next to it.
    assert store.backup_path is not None and store.backup_path.name.startswith("old.db.v1-")
    assert _user_version(store.backup_path) == 1
    # Reopening does nothing more.
    async with SQLiteStore(path, migrations=WITH_NEXT) as again:
        assert (again.migrated_from, again.migrated_to) == (NEXT, NEXT)


async def test_sqlite_newer_file_is_a_clear_error(tmp_path):
    path = tmp_path / "new.db"
    build_v1_file(path)
    async with SQLiteStore(path, migrations=WITH_NEXT):
        pass
    with pytest.raises(ConfigurationError, match=f"schema version {NEXT}.*newer release"):
        await SQLiteStore(path).open()


async def test_sqlite_failed_migration_leaves_file_untouched(tmp_path):
    path = tmp_path / "old.db"
    data = build_v1_file(path)
    broken = sqlite_migrations.Migration(
        version=NEXT,
        description="broken",
        statements=("ALTER TABLE runs ADD COLUMN extra TEXT", "INSERT INTO no_such_table VALUES (1)"),
    )
    store = SQLiteStore(path, migrations=(*sqlite_migrations.MIGRATIONS, broken), backup_before_migrate=False)
    with pytest.raises(ConfigurationError, match=f"version {NEXT}.*broken.*left at version 1"):
        await store.open()
    assert _user_version(path) == 1
    conn = sqlite3.connect(path)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    conn.close()
    assert "extra" not in columns
    async with SQLiteStore(path) as plain:
        assert same(await plain.get("workflow", "legacy-wf"), data["workflow"])


async def test_sqlite_auto_migrate_off_requires_upgrade(tmp_path):
    path = tmp_path / "old.db"
    build_v1_file(path)
    store = SQLiteStore(path, migrations=WITH_NEXT, auto_migrate=False)
    with pytest.raises(ConfigurationError, match="flowdapt db upgrade"):
        await store.open()
    assert await store.stored_version() == 1
    assert await store.upgrade() == (1, NEXT)
    assert await store.upgrade() == (NEXT, NEXT)
    assert (await store.get("workflow", "legacy-wf")) is not None
    await store.close()


async def test_sqlite_concurrent_openers_migrate_once(tmp_path):
    path = tmp_path / "old.db"
    build_v1_file(path)
    calls = []

    def count_and_backfill(conn):
        calls.append(1)
        _backfill_namespace(conn)

    v2 = sqlite_migrations.Migration(NEXT, "counted", TEST_NEXT.statements, count_and_backfill)
    handles = [SQLiteStore(path, migrations=(*sqlite_migrations.MIGRATIONS, v2)) for _ in range(5)]

    async def noop(s, i):
        return (s.migrated_from, s.migrated_to)

    results = await asyncio.to_thread(race_in_threads, handles, noop, open_first=False)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(calls) == 1
    assert sorted(results) == [(1, NEXT)] + [(NEXT, NEXT)] * 4
    assert _user_version(path) == NEXT


async def test_sqlite_store_not_open_is_a_clear_error(tmp_path):
    store = SQLiteStore(tmp_path / "x.db")
    with pytest.raises(Exception, match="not open"):
        await store.list("workflow")


def _cli(app_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """The real ``flowdapt`` entry point in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from flowdapt.cli.main import main; main(sys.argv[1:])", "--app-dir", str(app_dir), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={k: v for k, v in __import__("os").environ.items() if not k.startswith("FLOWDAPT__")},
    )


@pytest.fixture
def db_cli(app_dir):
    """``flowdapt db ...`` in-process (the root options and the db sub-app, built-in plugins only)."""
    import typer
    from typer.testing import CliRunner

    from flowdapt.cli import db
    from flowdapt.cli.main import root

    app = typer.Typer()
    app.callback()(root)
    db.register(app)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["--app-dir", str(app_dir), "-o", "plugins.only=[document_stores]", "db", *args])

    return invoke


def test_cli_db_upgrade_through_the_flowdapt_command(app_dir):
    latest = sqlite_migrations.latest_version()
    result = _cli(app_dir, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert f"upgraded schema from version 0 to {latest}" in result.stdout
    assert _user_version(app_dir / "flowdapt.db") == latest


def test_cli_db_current_and_upgrade(app_dir, db_cli):
    latest = sqlite_migrations.latest_version()
    result = db_cli("current", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["current_version"] == 0
    assert not (app_dir / "flowdapt.db").exists()  # looking does not create it
    assert "not created yet" in db_cli("current").stdout

    result = db_cli("upgrade")
    assert result.exit_code == 0, result.stderr
    assert f"from version 0 to {latest}" in result.stdout
    assert _user_version(app_dir / "flowdapt.db") == latest

    result = db_cli("upgrade", "-o", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["from_version"] == data["to_version"] == data["latest_version"] == latest

    result = db_cli("current")
    assert result.exit_code == 0 and f"schema version {latest}" in result.stdout and "up to date" in result.stdout


def test_cli_db_upgrade_backs_up_and_migrates_an_older_file(app_dir, db_cli, monkeypatch):
    from flowdapt.builtin.stores import sqlite as sqlite_module

    data = build_v1_file(app_dir / "flowdapt.db")
    monkeypatch.setattr(sqlite_module._migrations, "MIGRATIONS", WITH_NEXT)
    result = db_cli("current")
    assert f"schema version 1 (latest {NEXT}), pending migrations" in result.stdout
    result = db_cli("upgrade")
    assert result.exit_code == 0, result.stderr
    assert f"upgraded schema from version 1 to {NEXT}" in result.stdout and ".v1-" in result.stdout
    async def check():
        async with SQLiteStore(app_dir / "flowdapt.db", migrations=WITH_NEXT) as store:
            assert same(await store.get("workflow", "legacy-wf"), data["workflow"])

    asyncio.run(check())


def test_cli_db_upgrade_refuses_newer_file(app_dir, db_cli):
    conn = sqlite3.connect(app_dir / "flowdapt.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    result = db_cli("upgrade")
    assert result.exit_code == 1
    assert "schema version 99" in result.stderr and "newer release" in result.stderr
    result = db_cli("current")
    assert result.exit_code == 0 and "newer than this Flowdapt" in result.stdout
