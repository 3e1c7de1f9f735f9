"""PostgreSQL specifics: options, migrations (applied at open and by ``flowdapt db upgrade``),
refusing a newer schema, an unreachable or silent server, reconnecting after the database dropped
the pool's connections or went away and came back, compare-and-set across processes
(exactly-once schedule fires) and a process killed with kill -9 holding leases and a row lock.

The generic contract is the shipped suite, run in ``test_conformance.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import psycopg
import pytest
from flowdapt_postgres import PostgresStore, PostgresStoreOptions
from flowdapt_postgres import migrations as pg_migrations

from flowdapt.errors import ConfigurationError, StorageUnavailableError
from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.testing.conformance.document_stores import (
    log_record,
    make_resource,
    make_run,
    race_in_threads,
    same,
)

PLUGINS = (*BUILTIN_PLUGINS, ("postgres", "flowdapt_postgres.plugin"))


def make(dsn: str, schema: str, **options) -> PostgresStore:
    plugins = create_plugin_system(load_entry_points=False, plugins=list(PLUGINS))
    return plugins.create("document_stores", "postgres", {"dsn": dsn, "schema": schema, **options}, None)


def query(dsn: str, sql: str, *params):
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else None


def with_password(dsn: str, password: str) -> str:
    scheme, rest = dsn.split("://", 1)
    userinfo, host = rest.split("@", 1)
    return f"{scheme}://{userinfo.split(':')[0]}:{password}@{host}"


# -- options --------------------------------------------------------------------------------


def test_options_are_validated_by_the_registry(postgres_dsn):
    plugins = create_plugin_system(load_entry_points=False, plugins=list(PLUGINS))
    assert isinstance(plugins.create("document_stores", "postgres", {"dsn": postgres_dsn}, None), PostgresStore)
    with pytest.raises(ConfigurationError, match="dsn"):
        plugins.create("document_stores", "postgres", {}, None)
    with pytest.raises(ConfigurationError, match="schema"):
        plugins.create("document_stores", "postgres", {"dsn": postgres_dsn, "schema": "Bad-Name; drop"}, None)
    with pytest.raises(ConfigurationError, match="min_size"):
        plugins.create("document_stores", "postgres", {"dsn": postgres_dsn, "min_size": 5, "max_size": 2}, None)
    with pytest.raises(ConfigurationError, match="nonsense"):
        plugins.create("document_stores", "postgres", {"dsn": postgres_dsn, "nonsense": 1}, None)
    with pytest.raises(ConfigurationError, match="connection string"):
        plugins.create("document_stores", "postgres", {"dsn": "host=x port"}, None)
    options = PostgresStoreOptions(dsn=postgres_dsn)
    assert (options.schema_name, options.min_size, options.max_size, options.connect_timeout) == ("public", 1, 10, 5.0)


def test_describe_never_shows_the_password(postgres_dsn):
    store = make(with_password(postgres_dsn, "s3cret-pw"), "t_describe")
    text = store.describe() + repr(store)
    assert "s3cret-pw" not in text
    assert "127.0.0.1:5432" in text and "schema=t_describe" in text and "postgres@" in text


# -- migrations -----------------------------------------------------------------------------


async def _backfill_namespace(conn) -> None:
    cur = await conn.execute("SELECT seq, doc FROM runs")
    for seq, doc in await cur.fetchall():
        await conn.execute("UPDATE runs SET namespace = %s WHERE seq = %s", (json.loads(doc)["namespace"], seq))


LATEST = pg_migrations.latest_version()
#: A migration that only exists in these tests: the version after the latest.
NEXT = pg_migrations.latest_version() + 1
TEST_NEXT = pg_migrations.Migration(
    version=NEXT,
    description="runs.namespace column (test only)",
    statements=(
        "ALTER TABLE runs ADD COLUMN namespace text NOT NULL DEFAULT ''",
        "CREATE INDEX runs_namespace ON runs (namespace)",
    ),
    python=_backfill_namespace,
)
WITH_NEXT = (*pg_migrations.MIGRATIONS, TEST_NEXT)


async def test_open_creates_the_schema_at_the_latest_version(postgres_dsn, schema):
    assert await make(postgres_dsn, schema).stored_version() == 0  # looking creates nothing
    assert query(postgres_dsn, "SELECT 1 FROM pg_namespace WHERE nspname = %s", schema) == []
    async with make(postgres_dsn, schema) as store:
        assert (store.migrated_from, store.migrated_to) == (0, pg_migrations.latest_version())
        await store.create(make_resource("workflow", "w"))
    rows = query(postgres_dsn, f"SELECT version, description FROM {schema}.schema_version ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, pg_migrations.latest_version() + 1))
    tables = {r[0] for r in query(postgres_dsn, "SELECT tablename FROM pg_tables WHERE schemaname = %s", schema)}
    assert tables == {"resources", "runs", "servers", "run_logs", "run_log_totals", "schema_version"}
    # Nothing landed in public: the store keeps to its schema.
    assert query(postgres_dsn, "SELECT to_regclass('public.resources')") == [(None,)]
    async with make(postgres_dsn, schema) as again:
        assert (again.migrated_from, again.migrated_to) == (LATEST, LATEST)
        assert [r.name for r in await again.list("workflow")] == ["w"]


async def test_claims_use_the_pending_index(postgres_dsn, schema):
    async with make(postgres_dsn, schema) as store:
        for _ in range(3):
            await store.create_run(make_run(state="pending"))
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT seq FROM runs WHERE state = 'pending' AND (lease_owner IS NULL OR lease_expires < now()) "
            "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED"
        ))
    assert "runs_pending" in plan, plan


async def test_older_schema_is_migrated_forward_on_open_keeping_data(postgres_dsn, schema):
    async with make(postgres_dsn, schema) as store:
        run = await store.create_run(make_run("wf", namespace="team-a"))
        workflow = await store.create(make_resource("workflow", "kept"))
        await store.claim_runs("x", 30)  # nothing pending; the lease columns are there
    upgraded = PostgresStore({"dsn": postgres_dsn, "schema": schema}, migrations=WITH_NEXT)
    assert upgraded.schema_version == NEXT
    async with upgraded:
        assert (upgraded.migrated_from, upgraded.migrated_to) == (NEXT - 1, NEXT)
        assert same(await upgraded.get_run(run.name), run)
        assert same(await upgraded.get("workflow", "kept"), workflow)
    assert query(postgres_dsn, f"SELECT namespace FROM {schema}.runs") == [("team-a",)]
    async with PostgresStore({"dsn": postgres_dsn, "schema": schema}, migrations=WITH_NEXT) as again:
        assert (again.migrated_from, again.migrated_to) == (NEXT, NEXT)


async def test_newer_schema_is_refused_with_a_clear_message(postgres_dsn, schema):
    async with PostgresStore({"dsn": postgres_dsn, "schema": schema}, migrations=WITH_NEXT):
        pass
    # This release (which knows one version less) must not touch it.
    with pytest.raises(ConfigurationError, match=f"schema version {NEXT}, but this Flowdapt only knows versions up to {NEXT - 1}.*newer release"):
        await make(postgres_dsn, schema).open()
    query(postgres_dsn, f"INSERT INTO {schema}.schema_version (version, description) VALUES (99, 'future')")
    with pytest.raises(ConfigurationError, match=f"127.0.0.1:5432/.* schema {schema} has schema version 99"):
        await make(postgres_dsn, schema).open()
    with pytest.raises(ConfigurationError, match="newer release"):
        await make(postgres_dsn, schema).upgrade()
    assert await make(postgres_dsn, schema).stored_version() == 99


async def test_failed_migration_leaves_the_schema_untouched(postgres_dsn, schema):
    async with make(postgres_dsn, schema) as store:
        await store.create(make_resource("config", "c"))
    broken = pg_migrations.Migration(
        version=NEXT,
        description="broken",
        statements=("ALTER TABLE runs ADD COLUMN extra text", "INSERT INTO no_such_table VALUES (1)"),
    )
    store = PostgresStore({"dsn": postgres_dsn, "schema": schema}, migrations=(*pg_migrations.MIGRATIONS, broken))
    with pytest.raises(ConfigurationError, match=f"version {NEXT} \\(broken\\) failed.*no_such_table.*left at version {NEXT - 1}"):
        await store.open()
    columns = {r[0] for r in query(postgres_dsn, "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'runs'", schema)}
    assert "extra" not in columns
    assert await make(postgres_dsn, schema).stored_version() == NEXT - 1
    async with make(postgres_dsn, schema) as plain:
        assert [r.name for r in await plain.list("config")] == ["c"]


async def test_auto_migrate_off_requires_db_upgrade(postgres_dsn, schema):
    store = make(postgres_dsn, schema, auto_migrate=False)
    with pytest.raises(ConfigurationError, match=f"schema version 0 and this Flowdapt needs {LATEST}; run `flowdapt db upgrade`"):
        await store.open()
    assert await store.upgrade() == (0, pg_migrations.latest_version())
    assert await store.upgrade() == (LATEST, LATEST)  # already open: checks again, nothing to do
    await store.create(make_resource("workflow", "after-upgrade"))
    await store.close()


async def test_servers_starting_together_migrate_once(postgres_dsn, schema):
    calls = []

    async def counted(conn):
        calls.append(1)
        await _backfill_namespace(conn)

    next_counted = pg_migrations.Migration(NEXT, "counted", TEST_NEXT.statements, counted)
    async with make(postgres_dsn, schema):
        pass
    handles = [
        PostgresStore({"dsn": postgres_dsn, "schema": schema}, migrations=(*pg_migrations.MIGRATIONS, next_counted))
        for _ in range(5)
    ]

    async def versions(s, i):
        return (s.migrated_from, s.migrated_to)

    results = await asyncio.to_thread(race_in_threads, handles, versions, open_first=False)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(calls) == 1
    assert sorted(results) == [(NEXT - 1, NEXT)] + [(NEXT, NEXT)] * 4


# -- run logs -------------------------------------------------------------------------------


async def test_a_version_1_schema_gains_run_logs_on_open(postgres_dsn, schema):
    async with PostgresStore({"dsn": postgres_dsn, "schema": schema}, migrations=pg_migrations.MIGRATIONS[:1]) as old:
        run = await old.create_run(make_run("wf"))
    async with make(postgres_dsn, schema) as store:
        assert (store.migrated_from, store.migrated_to) == (1, LATEST)
        assert same(await store.get_run(run.name), run)
        await store.append_run_logs(str(run.uid), [log_record(1, "s", "after the upgrade")])
        assert [r.message for r in await store.read_run_logs(str(run.uid))] == ["after the upgrade"]


async def test_run_log_appends_from_two_handles_keep_exact_totals(postgres_dsn, schema):
    """Two stores (two pools, as two servers) append to one run at once, with a bound that trims
    on most appends; then a flush is retried. The totals row must match what is stored."""
    async with make(postgres_dsn, schema) as first, make(postgres_dsn, schema) as second:
        uid = str((await first.create_run(make_run())).uid)
        bound, written = 30_000, []

        async def write(store, offset):
            for batch in range(40):
                records = [log_record(10 * batch + offset + i, "s", f"{offset} {batch} " + "x" * 200) for i in range(1, 6)]
                written.extend(records)
                await store.append_run_logs(uid, records, max_bytes=bound)

        await asyncio.gather(write(first, 0), write(second, 5))
        # The last batch again (a flush retried after its commit was not acknowledged).
        await second.append_run_logs(uid, written[-5:], max_bytes=bound)
        got = await first.read_run_logs(uid)
    marker, kept = got[0], got[1:]
    ((total, dropped, dropped_bytes),) = query(
        postgres_dsn, f"SELECT bytes, dropped_records, dropped_bytes FROM {schema}.run_log_totals WHERE run_uid = %s", uid
    )
    assert marker.seq == 0 and len({r.seq for r in kept}) == len(kept)
    assert total == sum(r.size for r in kept) <= bound
    assert dropped + len(kept) == len(written) == 400
    assert dropped_bytes + total == sum(r.size for r in written)
    assert marker.message.startswith(f"{dropped} earlier log record(s) ({dropped_bytes} bytes)")


async def test_run_log_text_postgresql_cannot_hold(postgres_dsn, schema):
    """NUL in a message round-trips (stored as a flagged JSON literal); in a stage or logger name
    it becomes U+FFFD, like undecodable bytes."""
    async with make(postgres_dsn, schema) as store:
        uid = str((await store.create_run(make_run())).uid)
        await store.append_run_logs(
            uid,
            [log_record(1, "s", "plain"), log_record(2, "s\x00x", "a \x00 b \udcff", stream="log", logger="lo\x00g")],
        )
        got = await store.read_run_logs(uid)
        assert [(r.stage, r.logger, r.message) for r in got] == [("s", "", "plain"), ("s\ufffdx", "lo\ufffdg", "a \x00 b \ufffd")]
        assert [r.seq for r in await store.read_run_logs(uid, stage="s\ufffdx")] == [2]
    rows = query(postgres_dsn, f"SELECT seq, json_message FROM {schema}.run_logs WHERE run_uid = %s ORDER BY seq", uid)
    assert rows == [(1, False), (2, True)]


# -- unreachable, silent, dropped connections -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_server_is_a_clear_error_naming_the_address():
    port = _free_port()
    store = make(f"postgresql://postgres:pw@127.0.0.1:{port}/flowdapt", "public")
    start = time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        await store.open()
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "refused" in message.lower() and "database.options.dsn" in message
    assert "pw@" not in message
    with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port}"):
        await store.stored_version()


async def test_missing_database_is_a_clear_error(postgres_dsn):
    dsn = postgres_dsn.rsplit("/", 1)[0] + "/flowdapt_no_such_database"
    with pytest.raises(ConfigurationError, match='127.0.0.1:5432 \\(database flowdapt_no_such_database.*does not exist'):
        await make(dsn, "public").open()


async def test_a_server_that_never_answers_fails_within_the_connect_timeout():
    """A port that accepts TCP connections and then says nothing (a hung server, a firewall that
    swallows packets): start-up fails after connect_timeout, not never."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        store = make(f"postgresql://postgres@127.0.0.1:{port}/flowdapt", "public", connect_timeout=2)
        start = time.monotonic()
        with pytest.raises(ConfigurationError, match=f"cannot connect to the PostgreSQL database at 127.0.0.1:{port}"):
            await store.open()
        elapsed = time.monotonic() - start
        assert 1.5 < elapsed < 6, elapsed
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


async def test_pool_reconnects_after_the_server_dropped_its_connections(postgres_dsn, schema):
    """What a database restart does to a running server: every pooled connection dies. The next
    calls get fresh connections (each is checked before use) instead of errors."""
    async with make(postgres_dsn, schema, min_size=2, application_name=f"fd-{schema}") as store:
        await store.create(make_resource("workflow", "before"))
        killed = query(
            postgres_dsn,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            f"fd-{schema}",
        )
        assert killed and all(row[0] for row in killed)
        for i in range(5):
            await store.create(make_resource("config", f"after-{i}"))
        assert len(await store.list("config")) == 5


async def test_store_not_open_is_a_clear_error(postgres_dsn, schema):
    store = make(postgres_dsn, schema)
    with pytest.raises(Exception, match="not open"):
        await store.list("workflow")
    async with store:
        pass
    with pytest.raises(Exception, match="not open"):  # and after close
        await store.claim_runs("x", 30)


# -- exactly-once across processes ----------------------------------------------------------

FIRE_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system

    dsn, schema, uid, index, dues, go = sys.argv[1:]

    async def main():
        plugins = create_plugin_system(load_entry_points=False, plugins=[*BUILTIN_PLUGINS, ("postgres", "flowdapt_postgres.plugin")])
        store = plugins.create("document_stores", "postgres", {"dsn": dsn, "schema": schema}, None)
        async with store:
            while not __import__("os").path.exists(go):
                time.sleep(0.001)
            won = []
            previous = None
            for due in range(int(dues)):
                # Like a trigger service: fire due time `due` only if the rule's last fire is the previous one.
                if await store.compare_and_set_annotation("trigger_rule", uid, "flowdapt.ai/last_fired", previous, str(due)):
                    won.append(due)
                previous = str(due)
            print(json.dumps(won))

    asyncio.run(main())
    """
)


async def test_schedule_fires_exactly_once_across_processes(postgres_dsn, schema, tmp_path):
    async with make(postgres_dsn, schema) as store:
        rule = await store.create(make_resource("trigger_rule", "every-second"))
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FIRE_WORKER, postgres_dsn, schema, str(rule.uid), str(i), "40", str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
        )
        for i in range(4)
    ]
    time.sleep(1.0)  # let them connect; the race starts together
    go.touch()
    fired: list[int] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        fired += json.loads(out.strip().splitlines()[-1])
    assert sorted(fired) == list(range(40)), "a due time fired twice or never"
    async with make(postgres_dsn, schema) as store:
        assert (await store.get("trigger_rule", "every-second")).metadata.annotations["flowdapt.ai/last_fired"] == "39"


# -- flowdapt db ----------------------------------------------------------------------------


def _cli(app_dir, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from flowdapt.cli.main import main; main(sys.argv[1:])", "--app-dir", str(app_dir), *args],
        capture_output=True, text=True, timeout=120,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("FLOWDAPT__")}, **env},
    )


def test_flowdapt_db_current_and_upgrade_on_postgres(postgres_dsn, schema, tmp_path):
    env = {
        "FLOWDAPT__DATABASE__BACKEND": "postgres",
        "FLOWDAPT__DATABASE__OPTIONS__DSN": with_password(postgres_dsn, "hidden-pw"),
        "FLOWDAPT__DATABASE__OPTIONS__SCHEMA": schema,
    }
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    result = _cli(app_dir, env, "db", "current")
    assert result.returncode == 0, result.stderr
    assert "PostgresStore postgresql://postgres@127.0.0.1:5432/" in result.stdout and f"schema={schema}" in result.stdout
    assert f"schema version 0 (latest {LATEST}), not created yet" in result.stdout
    result = _cli(app_dir, env, "db", "upgrade", "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["backend"], data["from_version"], data["to_version"]) == ("postgres", 0, LATEST)
    result = _cli(app_dir, env, "db", "current")
    assert f"schema version {LATEST} (latest {LATEST}), up to date" in result.stdout
    query(postgres_dsn, f"INSERT INTO {schema}.schema_version (version, description) VALUES (7, 'future')")
    result = _cli(app_dir, env, "db", "upgrade")
    assert result.returncode == 1 and "schema version 7" in result.stderr and "newer release" in result.stderr
    assert "newer than this Flowdapt" in _cli(app_dir, env, "db", "current").stdout
    unreachable = {**env, "FLOWDAPT__DATABASE__OPTIONS__DSN": f"postgresql://postgres:hidden-pw@127.0.0.1:{_free_port()}/x"}
    result = _cli(app_dir, unreachable, "db", "upgrade")
    assert result.returncode == 1 and "cannot connect to the PostgreSQL database at 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr
    for out in (result.stdout, result.stderr):
        assert "hidden-pw" not in out


KILLED_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system

    dsn, schema, uid = sys.argv[1:]

    async def main():
        plugins = create_plugin_system(load_entry_points=False, plugins=[*BUILTIN_PLUGINS, ("postgres", "flowdapt_postgres.plugin")])
        store = plugins.create("document_stores", "postgres", {"dsn": dsn, "schema": schema}, None)
        await store.open()
        claimed = await store.claim_runs("doomed", 1.0, limit=10)
        # Then die inside a compare-and-set: the rule's row stays locked until the server notices.
        async with store._conn() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM resources WHERE uid = %s FOR UPDATE", (uid,))
            print(json.dumps([str(r.uid) for r in claimed]), flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_a_process_killed_holding_leases_and_a_row_lock_loses_nothing(postgres_dsn, schema):
    """kill -9 of a server mid-way: PostgreSQL ends its session (releasing the row lock of an
    unfinished compare-and-set), and its leased runs are taken over once the lease expires."""
    async with make(postgres_dsn, schema) as store:
        rule = await store.create(make_resource("trigger_rule", "contested"))
        runs = [await store.create_run(make_run(state="pending")) for _ in range(3)]
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLED_WORKER, postgres_dsn, schema, str(rule.uid)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line, proc.stderr.read()
            assert sorted(json.loads(line)) == sorted(str(r.uid) for r in runs)
        finally:
            proc.kill()
            proc.wait()
        start = time.monotonic()
        assert await store.compare_and_set_annotation("trigger_rule", str(rule.uid), "k", None, "after-kill")
        assert time.monotonic() - start < 5
        assert await store.claim_runs("survivor", 30) == []  # leases still live (1 s)
        await asyncio.sleep(1.2)
        taken = await store.claim_expired("survivor", 30)
        assert sorted(str(r.uid) for r in taken) == sorted(str(r.uid) for r in runs)


class TcpProxy:
    """A TCP forwarder to the real PostgreSQL that can go down and come back on the same port:
    what a database restart (or a network cut) looks like from the store."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = _free_port()
        self.server: asyncio.base_events.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    async def _handle(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_database_down_is_503_within_pool_timeout_and_the_store_recovers(postgres_dsn, schema):
    port = int(postgres_dsn.rsplit(":", 1)[1].split("/")[0])
    proxy = TcpProxy(port)
    await proxy.start()
    dsn = postgres_dsn.replace(f"127.0.0.1:{port}", f"127.0.0.1:{proxy.port}")
    async with make(dsn, schema, pool_timeout=2, connect_timeout=2, min_size=2) as store:
        await store.create(make_resource("workflow", "before"))
        await proxy.stop()  # the database goes away with the store's connections
        start = time.monotonic()
        with pytest.raises(StorageUnavailableError, match=f"127.0.0.1:{proxy.port} is unavailable"):
            await store.create(make_resource("workflow", "while-down"))
        assert time.monotonic() - start < 6
        await proxy.start()  # back on the same address
        deadline = time.monotonic() + 15
        while True:
            try:
                await store.create(make_resource("workflow", "after"))
                break
            except StorageUnavailableError:
                assert time.monotonic() < deadline, "the store did not reconnect"
                await asyncio.sleep(0.2)
        assert [w.name for w in await store.list("workflow")] == ["before", "after"]
    await proxy.stop()
