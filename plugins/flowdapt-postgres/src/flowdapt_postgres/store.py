"""The PostgreSQL document store: several servers, on several machines, on one database.

Design (see this plugin's README and ``docs/storage.md``):

* psycopg 3 in async mode with a ``psycopg_pool.AsyncConnectionPool`` (``min_size``..``max_size``
  connections, each checked before it is handed out, so a restarted database costs one failed
  check, not an error). Every connection runs in autocommit with ``search_path`` set to the
  configured schema and ``timezone=UTC``; multi-step writes are explicit transactions.
* Resources and runs are JSON documents (text, exactly as written) with the columns lookups and
  listings need, the same layout as the SQLite store. Name uniqueness is a ``UNIQUE (kind, name)``
  constraint; compare-and-set locks the row (``SELECT ... FOR UPDATE``) so racing servers see one
  winner; the run queue claims rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` and judges leases
  by the server's ``now()``.
* Run logs (capability ``run_logs``): one row per line in ``run_logs`` keyed by (run uid, seq),
  per-run totals in ``run_log_totals``, as the SQLite store. An append is one transaction whose
  first statement inserts the batch and adds it to the run's totals row (which it locks), so
  appends to one run from several connections serialize on that row and the totals stay exact; a
  record whose seq is already stored (a retried flush) is neither stored nor counted again.
* The schema version is the ``schema_version`` table; ``open()`` applies pending migrations
  (``flowdapt_postgres.migrations``) in one transaction under an advisory lock.
* The pool belongs to the event loop that opened the store. A call from another loop (a thread
  running its own loop on the same store object) uses a short-lived connection of its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

from flowdapt.builtin.stores.common import (
    FINAL_STATES,
    as_uid,
    check_kind,
    dump_resource,
    dump_run,
    load_resource,
    load_resources,
    load_run,
    micros,
    name_conflict,
    not_found,
    run_conflict,
    server_record,
    state_values,
    uid_conflict,
)
from flowdapt.engine.logs import SYSTEM, clean_text
from flowdapt.errors import ConfigurationError, FlowdaptError, StorageUnavailableError
from flowdapt.resources.base import Resource
from flowdapt.resources.run import WorkflowRun
from flowdapt.storage import DocumentStore, RunLogRecord
from flowdapt.storage.memory_logs import low_water, marker_message
from flowdapt_postgres import migrations as _migrations
from flowdapt_postgres.options import PostgresStoreOptions, strip_password

log = logging.getLogger(__name__)

_PENDING = "pending"


class StoreClosedError(FlowdaptError):
    """A store method was called before ``open()`` or after ``close()``."""


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


class PostgresStore(DocumentStore):
    """Resources and runs as JSON documents in PostgreSQL tables."""

    schema_version: int = _migrations.latest_version()
    run_queue = True
    run_logs = True

    def __init__(
        self,
        options: PostgresStoreOptions | dict[str, Any],
        *,
        migrations: Sequence[_migrations.Migration] | None = None,
    ):
        if not isinstance(options, PostgresStoreOptions):
            options = PostgresStoreOptions.model_validate(options)
        self.options = options
        self.schema = options.schema_name
        self.migrations: tuple[_migrations.Migration, ...] = tuple(
            _migrations.MIGRATIONS if migrations is None else migrations
        )
        _migrations.check_migrations(self.migrations)
        self.schema_version = _migrations.latest_version(self.migrations)
        params = pg_conninfo.conninfo_to_dict(options.dsn)
        #: host:port as libpq will try it (the first host of a list), for messages.
        self.host = str(params.get("host") or params.get("hostaddr") or "localhost").split(",")[0]
        self.port = str(params.get("port") or 5432).split(",")[0]
        self.dbname = str(params.get("dbname") or params.get("user") or "postgres")
        self.user = params.get("user")
        self._conninfo = self._build_conninfo(params)
        #: Versions before and after the last ``open()``/``upgrade()`` (equal when nothing ran).
        self.migrated_from: int | None = None
        self.migrated_to: int | None = None
        self._pool: AsyncConnectionPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, options: PostgresStoreOptions | dict[str, Any] | None, settings: Any = None) -> PostgresStore:
        return cls(options if isinstance(options, PostgresStoreOptions) else PostgresStoreOptions.model_validate(options or {}))

    def _build_conninfo(self, params: dict[str, Any]) -> str:
        opts = self.options
        server_options = [f"-c search_path={self.schema}", "-c timezone=UTC"]
        if opts.statement_timeout is not None:
            server_options.append(f"-c statement_timeout={int(opts.statement_timeout * 1000)}")
        if params.get("options"):
            server_options.insert(0, str(params["options"]))
        extra: dict[str, Any] = {
            "options": " ".join(server_options),
            # libpq counts whole seconds (and at least 2); the start-up check also bounds it itself.
            "connect_timeout": max(2, round(opts.connect_timeout)),
        }
        params.setdefault("application_name", opts.application_name)
        return pg_conninfo.make_conninfo(pg_conninfo.make_conninfo(**params), **extra)

    def describe(self) -> str:
        """Where the store is, without the password: ``PostgresStore postgresql://user@host:port/db schema=s``."""
        user = f"{self.user}@" if self.user else ""
        return f"PostgresStore postgresql://{user}{self.host}:{self.port}/{self.dbname} schema={self.schema}"

    def __repr__(self) -> str:
        return self.describe()

    # -- connections ---------------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection:
        """A new connection, or a ConfigurationError naming host:port within connect_timeout."""
        timeout = self.options.connect_timeout
        try:
            return await asyncio.wait_for(
                psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, prepare_threshold=self.options.prepare_threshold
                ),
                timeout + 1,
            )
        except (psycopg.Error, OSError, TimeoutError) as exc:
            reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
            if isinstance(exc, TimeoutError):
                reason = f"no answer within {timeout:g}s"
            raise ConfigurationError(
                f"cannot connect to the PostgreSQL database at {self.host}:{self.port} "
                f"(database {self.dbname}, user {self.user or 'default'}): {strip_password(reason)}; "
                "check database.options.dsn and that the server is running and reachable"
            ) from None

    def _unavailable(self, exc: BaseException) -> StorageUnavailableError:
        return StorageUnavailableError(
            f"the PostgreSQL database at {self.host}:{self.port} is unavailable "
            f"({strip_password(str(exc).strip() or type(exc).__name__)}); nothing was written, retry"
        )

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[psycopg.AsyncConnection]:
        pool, home = self._pool, self._loop
        if pool is None:
            raise StoreClosedError(f"{self!r} is not open: call `await store.open()` first")
        try:
            if asyncio.get_running_loop() is home:
                async with pool.connection() as conn:
                    yield conn
            else:  # another thread's loop: the pool's tasks and locks belong to the home loop
                try:
                    conn = await self._connect()
                except ConfigurationError as exc:  # at start-up a configuration error; now an outage
                    raise StorageUnavailableError(f"{exc}; nothing was written, retry") from None
                try:
                    yield conn
                finally:
                    await conn.close()
        except psycopg.OperationalError as exc:  # includes the pool's timeout; not constraint errors
            raise self._unavailable(exc) from exc

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._conn() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description is not None else []

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        await self._open(migrate=self.options.auto_migrate)

    async def upgrade(self) -> tuple[int, int]:
        """Open (if needed) applying pending migrations whatever ``auto_migrate`` says.

        Returns ``(from_version, to_version)``.
        """
        if self._pool is not None:
            conn = await self._connect()
            try:
                before, after = await self._prepare_schema(conn, migrate=True)
            finally:
                await conn.close()
            return before, after
        await self._open(migrate=True)
        assert self.migrated_from is not None and self.migrated_to is not None
        return self.migrated_from, self.migrated_to

    async def _open(self, *, migrate: bool) -> None:
        if self._pool is not None:
            return
        conn = await self._connect()
        try:
            self.migrated_from, self.migrated_to = await self._prepare_schema(conn, migrate=migrate)
        finally:
            await conn.close()
        pool = AsyncConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True, "prepare_threshold": self.options.prepare_threshold},
            min_size=self.options.min_size,
            max_size=self.options.max_size,
            timeout=self.options.pool_timeout,
            check=AsyncConnectionPool.check_connection,
            name=f"flowdapt-postgres-{self.schema}",
            open=False,
        )
        try:
            await pool.open(wait=self.options.min_size > 0, timeout=self.options.connect_timeout + 1)
        except Exception as exc:
            await pool.close()
            raise ConfigurationError(
                f"cannot open a connection pool to the PostgreSQL database at {self.host}:{self.port}: "
                f"{strip_password(str(exc))}"
            ) from None
        with self._lock:
            if self._pool is None:
                self._pool, self._loop = pool, asyncio.get_running_loop()
                pool = None
        if pool is not None:  # another task opened it meanwhile
            await pool.close()

    async def _stored_version(self, conn: psycopg.AsyncConnection) -> int:
        cur = await conn.execute("SELECT to_regclass(%s)", (f"{self.schema}.schema_version",))
        if (await cur.fetchone())[0] is None:
            return 0
        cur = await conn.execute(f'SELECT coalesce(max(version), 0) FROM "{self.schema}".schema_version')
        return int((await cur.fetchone())[0])

    async def _prepare_schema(self, conn: psycopg.AsyncConnection, *, migrate: bool) -> tuple[int, int]:
        """Check the stored version and apply pending migrations, in one locked transaction."""
        where = f"{self.host}:{self.port}/{self.dbname} schema {self.schema}"
        try:
            version = await self._stored_version(conn)
            _migrations.check_not_newer(version, where, self.migrations)
            if version >= self.schema_version:
                return version, version
            if not migrate:
                raise ConfigurationError(
                    f"the database {where} has schema version {version} and this Flowdapt needs "
                    f"{self.schema_version}; run `flowdapt db upgrade` (database.options.auto_migrate is off)"
                )
            async with conn.transaction():
                # Servers starting together: the first migrates, the others wait here and then
                # find nothing left to do.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"flowdapt-migrate:{self.schema}",))
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await conn.execute(f'SET LOCAL search_path TO "{self.schema}"')
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                    "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                version = await self._stored_version(conn)
                _migrations.check_not_newer(version, where, self.migrations)
                before = version
                for migration in _migrations.pending(version, self.migrations):
                    try:
                        async with conn.transaction():  # a savepoint, so the error names the step
                            await migration.apply(conn)
                    except psycopg.Error as exc:
                        raise ConfigurationError(
                            f"migrating {where} to schema version {migration.version} ({migration.description}) "
                            f"failed: {type(exc).__name__}: {' '.join(str(exc).split())}. The database was left at version {before}."
                        ) from exc
                    await conn.execute(
                        "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                        (migration.version, migration.description),
                    )
                    version = migration.version
            if before != version:
                log.info("PostgreSQL store %s migrated from schema version %d to %d", where, before, version)
            return before, version
        except psycopg.OperationalError as exc:
            raise ConfigurationError(f"the PostgreSQL database at {self.host}:{self.port} failed during start-up: {exc}") from None

    async def stored_version(self) -> int:
        """The schema version in the database (0 when the schema is not created yet), without migrating."""
        conn = await self._connect()
        try:
            return await self._stored_version(conn)
        finally:
            await conn.close()

    async def close(self) -> None:
        with self._lock:
            pool, home = self._pool, self._loop
            self._pool = self._loop = None
        if pool is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - close() is a coroutine
            running = None
        if running is home:
            await pool.close()
        elif home is not None and not home.is_closed() and home.is_running():
            asyncio.run_coroutine_threadsafe(pool.close(), home)
        # else: the home loop is gone, and its connections with it.

    # -- resources -----------------------------------------------------------------------

    async def create(self, resource: Resource) -> Resource:
        kind = check_kind(resource)
        uid, name, doc = str(resource.uid), resource.name, dump_resource(resource)
        try:
            await self._rows("INSERT INTO resources (kind, uid, name, doc) VALUES (%s, %s, %s, %s)", (kind, uid, name, doc))
        except pg_errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "resources_kind_uid":
                raise uid_conflict(kind, uid) from None
            raise name_conflict(kind, name) from None
        return load_resource(kind, doc)

    @staticmethod
    async def _find(conn: psycopg.AsyncConnection, table: str, kind: str | None, identifier: str, lock: bool = False):
        """(seq, doc) by uid, else by name; ``lock`` takes the row lock (inside a transaction)."""
        suffix = " FOR UPDATE" if lock else ""
        scope = "kind = %s AND " if kind is not None else ""
        base = () if kind is None else (kind,)
        uid = as_uid(identifier)
        if uid is not None:
            cur = await conn.execute(f"SELECT seq, doc FROM {table} WHERE {scope}uid = %s{suffix}", (*base, uid))
            row = await cur.fetchone()
            if row is not None:
                return row
        cur = await conn.execute(f"SELECT seq, doc FROM {table} WHERE {scope}name = %s{suffix}", (*base, identifier))
        return await cur.fetchone()

    async def get(self, kind: str, identifier: str) -> Resource | None:
        async with self._conn() as conn:
            row = await self._find(conn, "resources", kind, str(identifier))
        return None if row is None else load_resource(kind, row[1])

    async def list(self, kind: str) -> list[Resource]:
        rows = await self._rows("SELECT doc FROM resources WHERE kind = %s ORDER BY seq", (kind,))
        return load_resources(kind, [row[0] for row in rows])

    async def update(self, resource: Resource) -> Resource:
        kind = check_kind(resource)
        uid, name, doc = str(resource.uid), resource.name, dump_resource(resource)
        try:
            rows = await self._rows(
                "UPDATE resources SET name = %s, doc = %s WHERE kind = %s AND uid = %s RETURNING seq", (name, doc, kind, uid)
            )
        except pg_errors.UniqueViolation:
            raise name_conflict(kind, name) from None
        if not rows:
            raise not_found(kind, uid)
        return load_resource(kind, doc)

    async def delete(self, kind: str, identifier: str) -> Resource | None:
        async with self._conn() as conn, conn.transaction():
            row = await self._find(conn, "resources", kind, str(identifier), lock=True)
            if row is None:
                return None
            await conn.execute("DELETE FROM resources WHERE seq = %s", (row[0],))
        return load_resource(kind, row[1])

    async def compare_and_set_annotation(
        self, kind: str, uid: str, key: str, expected: str | None, value: str
    ) -> bool:
        # The row lock makes read-compare-write atomic against every other connection, in any
        # process or host: a second caller waits for the first to commit and then reads its value.
        async with self._conn() as conn, conn.transaction():
            row = await self._find(conn, "resources", kind, str(uid), lock=True)
            if row is None:
                return False
            seq, doc = row
            data = orjson.loads(doc)
            annotations = data.setdefault("metadata", {}).setdefault("annotations", {})
            if annotations.get(key) != expected:
                return False
            annotations[key] = str(value)
            await conn.execute("UPDATE resources SET doc = %s WHERE seq = %s", (orjson.dumps(data).decode(), seq))
            return True

    # -- runs ----------------------------------------------------------------------------

    @staticmethod
    def _run_row(run: WorkflowRun) -> tuple[Any, ...]:
        return (str(run.uid), run.name, run.workflow, str(run.state), micros(run.started_at), dump_run(run))

    async def create_run(self, run: WorkflowRun) -> WorkflowRun:
        row = self._run_row(run)
        try:
            await self._rows(
                "INSERT INTO runs (uid, name, workflow, state, started_at, doc) VALUES (%s, %s, %s, %s, %s, %s)", row
            )
        except pg_errors.UniqueViolation as exc:
            raise run_conflict(run, "uid" if exc.diag.constraint_name == "runs_uid" else "name") from None
        return load_run(row[-1])

    async def update_run(self, run: WorkflowRun) -> WorkflowRun:
        row = self._run_row(run)
        try:
            # The lease columns are not in the SET list: updating a run keeps its lease.
            await self._rows(
                "INSERT INTO runs (uid, name, workflow, state, started_at, doc) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (uid) DO UPDATE SET name = excluded.name, workflow = excluded.workflow, "
                "state = excluded.state, started_at = excluded.started_at, doc = excluded.doc",
                row,
            )
        except pg_errors.UniqueViolation:
            raise run_conflict(run, "name") from None
        return load_run(row[-1])

    async def get_run(self, identifier: str) -> WorkflowRun | None:
        async with self._conn() as conn:
            row = await self._find(conn, "runs", None, str(identifier))
        return None if row is None else load_run(row[1])

    async def delete_run(self, identifier: str) -> WorkflowRun | None:
        async with self._conn() as conn, conn.transaction():
            row = await self._find(conn, "runs", None, str(identifier), lock=True)
            if row is None:
                return None
            cur = await conn.execute("DELETE FROM runs WHERE seq = %s RETURNING uid", (row[0],))
            (uid,) = await cur.fetchone()
            await conn.execute(_DELETE_LOGS, (uid, uid))
        return load_run(row[1])

    @staticmethod
    def _run_filters(
        workflow: str | None, state: str | list[str] | None, since: datetime | None
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if workflow is not None:
            clauses.append("workflow = %s")
            params.append(str(workflow))
        states = state_values(state)
        if states is not None:
            clauses.append("state = ANY(%s)")
            params.append(states)
        if since is not None:
            clauses.append("started_at >= %s")
            params.append(micros(since))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        state: str | list[str] | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[WorkflowRun]:
        where, params = self._run_filters(workflow, state, since)
        params += [None if limit is None or limit < 0 else int(limit), max(0, int(offset or 0))]
        rows = await self._rows(f"SELECT doc FROM runs{where} ORDER BY started_at DESC, seq DESC LIMIT %s OFFSET %s", params)
        return [load_run(row[0]) for row in rows]

    async def count_runs(
        self, *, workflow: str | None = None, state: str | list[str] | None = None, since: datetime | None = None
    ) -> int:
        where, params = self._run_filters(workflow, state, since)
        rows = await self._rows(f"SELECT count(*) FROM runs{where}", params)
        return int(rows[0][0])

    async def delete_runs_before(self, before: datetime) -> int:
        # One statement: the runs and their logs go together (data-modifying CTEs all run).
        rows = await self._rows(
            "WITH doomed AS (DELETE FROM runs WHERE started_at < %s AND state = ANY(%s) RETURNING uid), "
            "logs AS (DELETE FROM run_logs WHERE run_uid IN (SELECT uid FROM doomed)), "
            "totals AS (DELETE FROM run_log_totals WHERE run_uid IN (SELECT uid FROM doomed)) "
            "SELECT count(*) FROM doomed",
            (micros(before), list(FINAL_STATES)),
        )
        return int(rows[0][0])

    # -- run queue -----------------------------------------------------------------------
    # Leases are judged by the database server's clock (now()), so hosts with skewed clocks
    # agree. Claims lock candidate rows with SKIP LOCKED: concurrent claimers never wait on each
    # other and never get the same run (a row another claimer just committed is re-checked
    # against the WHERE clause and dropped).

    async def _take(
        self, where: str, order: str, owner: str, lease_seconds: float, limit: int, args: tuple = ()
    ) -> list[WorkflowRun]:
        if int(limit) <= 0:
            return []
        rows = await self._rows(
            f"WITH picked AS (SELECT seq FROM runs WHERE {where} ORDER BY {order} LIMIT %s FOR UPDATE SKIP LOCKED) "
            "UPDATE runs SET lease_owner = %s, lease_expires = now() + %s * interval '1 second' "
            "FROM picked WHERE runs.seq = picked.seq RETURNING runs.seq, runs.doc",
            (*args, int(limit), str(owner), float(lease_seconds)),
        )
        return [load_run(doc) for _, doc in sorted(rows)]  # RETURNING has no order: creation order

    async def claim_runs(
        self, owner: str, lease_seconds: float, limit: int = 1, *, uids: list[str] | None = None
    ) -> list[WorkflowRun]:
        where = f"state = '{_PENDING}' AND lease_owner IS NULL"
        args: tuple = ()
        if uids is not None:
            if not uids:
                return []
            where += " AND uid = ANY(%s)"
            args = ([str(uid) for uid in uids],)
        return await self._take(where, "seq", owner, lease_seconds, limit, args)

    async def claim_expired(self, owner: str, lease_seconds: float, limit: int = 10) -> list[WorkflowRun]:
        final = ", ".join(f"'{state}'" for state in FINAL_STATES)
        return await self._take(
            f"lease_owner IS NOT NULL AND lease_expires < now() AND state NOT IN ({final})",
            "lease_expires, seq",
            owner,
            lease_seconds,
            limit,
        )

    async def renew_leases(self, owner: str, uids: list[str], lease_seconds: float) -> set[str]:
        uids = [str(uid) for uid in uids]
        if not uids:
            return set()
        rows = await self._rows(
            "UPDATE runs SET lease_expires = now() + %s * interval '1 second' "
            "WHERE lease_owner = %s AND uid = ANY(%s) RETURNING uid",
            (float(lease_seconds), str(owner), uids),
        )
        return {row[0] for row in rows}

    async def release_lease(self, owner: str, uid: str) -> None:
        await self._rows(
            "UPDATE runs SET lease_owner = NULL, lease_expires = NULL WHERE uid = %s AND lease_owner = %s",
            (str(uid), str(owner)),
        )

    async def get_lease(self, uid: str) -> tuple[str, datetime] | None:
        rows = await self._rows(
            "SELECT lease_owner, lease_expires FROM runs WHERE uid = %s AND lease_owner IS NOT NULL", (str(uid),)
        )
        if not rows:
            return None
        return rows[0][0], _naive_utc(rows[0][1])

    async def heartbeat_server(self, server_id: str, info: dict[str, Any], ttl_seconds: float) -> None:
        await self._rows(
            "INSERT INTO servers (server_id, info, last_seen, expires_at) "
            "VALUES (%s, %s, now(), now() + %s * interval '1 second') "
            "ON CONFLICT (server_id) DO UPDATE SET info = excluded.info, last_seen = excluded.last_seen, "
            "expires_at = excluded.expires_at",
            (str(server_id), orjson.dumps(info).decode(), float(ttl_seconds)),
        )

    async def list_servers(self) -> list[dict[str, Any]]:
        rows = await self._rows("SELECT server_id, info, last_seen FROM servers WHERE expires_at > now() ORDER BY server_id")
        return [server_record(sid, orjson.loads(info), _naive_utc(seen)) for sid, info, seen in rows]

    async def remove_server(self, server_id: str) -> None:
        await self._rows("DELETE FROM servers WHERE server_id = %s", (str(server_id),))

    # -- run logs ------------------------------------------------------------------------

    async def append_run_logs(
        self,
        run_uid: str,
        records: Sequence[RunLogRecord],
        *,
        max_bytes: int | None = None,
        dropped: tuple[int, int] = (0, 0),
    ) -> None:
        if not records and not dropped[0]:
            return
        uid = str(run_uid)
        caller_dropped = (int(dropped[0]), int(dropped[1]))
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(_APPEND_LOGS, (uid, *_log_columns(records), uid, *caller_dropped))
            totals = await cur.fetchone()
            trimmed = await self._trim_logs(conn, uid, int(max_bytes), totals) if max_bytes is not None else 0
            if caller_dropped[0] and not trimmed:
                await self._write_marker(conn, uid, records[0].time if records else 0.0, max_bytes, totals[1], totals[2])

    @staticmethod
    async def _trim_logs(
        conn: psycopg.AsyncConnection, run_uid: str, max_bytes: int, totals: tuple[int, int, int] | None = None
    ) -> int:
        """Inside the caller's transaction; ``totals``: the run's totals row as this transaction
        left it (locked), else it is read and locked here."""
        if totals is None:
            cur = await conn.execute(
                "SELECT bytes, dropped_records, dropped_bytes FROM run_log_totals WHERE run_uid = %s FOR UPDATE",
                (run_uid,),
            )
            totals = await cur.fetchone()
        if totals is None or totals[0] <= max_bytes:
            return 0
        total, dropped, dropped_bytes = (int(v) for v in totals)
        cur = await conn.execute(
            "SELECT seq, cum, n, time FROM (SELECT seq, time, "
            "(SUM(size) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING))::bigint AS cum, "
            "COUNT(*) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS n "
            "FROM run_logs WHERE run_uid = %s AND seq > 0) AS running WHERE cum >= %s ORDER BY seq LIMIT 1",
            (run_uid, total - low_water(max_bytes)),
        )
        cut = await cur.fetchone()
        if cut is None:  # every record together is less than the excess (totals off): drop all
            cur = await conn.execute(
                "SELECT max(seq), coalesce(sum(size), 0)::bigint, count(*), max(time) FROM run_logs "
                "WHERE run_uid = %s AND seq > 0",
                (run_uid,),
            )
            cut = await cur.fetchone()
            if not cut[2]:
                return 0
        seq, cut_bytes, count, when = cut
        await conn.execute("DELETE FROM run_logs WHERE run_uid = %s AND seq > 0 AND seq <= %s", (run_uid, seq))
        dropped += count
        dropped_bytes += cut_bytes
        await conn.execute(
            "UPDATE run_log_totals SET bytes = %s, dropped_records = %s, dropped_bytes = %s WHERE run_uid = %s",
            (max(0, total - cut_bytes), dropped, dropped_bytes, run_uid),
        )
        await PostgresStore._write_marker(conn, run_uid, when, max_bytes, dropped, dropped_bytes)
        return int(count)

    @staticmethod
    async def _write_marker(
        conn: psycopg.AsyncConnection, run_uid: str, when: float, max_bytes: int | None, dropped: int, dropped_bytes: int
    ) -> None:
        """The seq-0 record that says how much of the run's log was dropped (from the totals)."""
        message = marker_message(int(dropped), int(dropped_bytes), max_bytes)
        marker = RunLogRecord(0, float(when), None, None, SYSTEM, logging.WARNING, "", message)
        await conn.execute(
            "INSERT INTO run_logs (run_uid, seq, time, stage, item, stream, level, logger, message, size) "
            "VALUES (%s, 0, %s, NULL, NULL, %s, %s, '', %s, %s) ON CONFLICT (run_uid, seq) DO UPDATE SET "
            "time = greatest(run_logs.time, excluded.time), message = excluded.message, size = excluded.size",
            (run_uid, marker.time, marker.stream, marker.level, marker.message, marker.size),
        )

    async def read_run_logs(
        self,
        run_uid: str,
        *,
        stage: str | None = None,
        min_level: int | None = None,
        after_seq: int | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[RunLogRecord]:
        clauses = ["run_uid = %s"]
        params: list[Any] = [str(run_uid)]
        if stage is not None:
            clauses.append("(stage = %s OR seq = 0)")
            params.append(_text(stage))
        if min_level is not None:
            clauses.append("level >= %s")
            params.append(int(min_level))
        if after_seq is not None:
            clauses.append("seq > %s")
            params.append(int(after_seq))
        if since is not None:
            clauses.append("time >= %s")
            params.append(float(since))
        params.append(None if limit is None or limit < 0 else int(limit))
        rows = await self._rows(
            "SELECT seq, time, stage, item, stream, level, logger, message, json_message FROM run_logs WHERE "
            + " AND ".join(clauses)
            + " ORDER BY seq LIMIT %s",
            params,
        )
        return [
            RunLogRecord(seq, when, stage_, item, stream, level, logger, orjson.loads(message) if encoded else message)
            for seq, when, stage_, item, stream, level, logger, message, encoded in rows
        ]

    async def trim_run_logs(self, run_uid: str, max_bytes: int) -> int:
        async with self._conn() as conn, conn.transaction():
            return await self._trim_logs(conn, str(run_uid), int(max_bytes))

    async def delete_run_logs(self, run_uid: str) -> int:
        uid = str(run_uid)
        rows = await self._rows(_DELETE_LOGS, (uid, uid))
        return int(rows[0][0])


#: Insert a batch of log records (unnest of one array per column: one round trip whatever its
#: size) and add what was inserted, and what the caller dropped, to the run's totals row, which
#: the upsert locks until the transaction ends. Returns the run's totals.
_APPEND_LOGS = (
    "WITH added AS ("
    "INSERT INTO run_logs (run_uid, seq, time, stage, item, stream, level, logger, message, json_message, size) "
    "SELECT %s::text, * FROM unnest(%s::bigint[], %s::float8[], %s::text[], %s::bigint[], %s::text[], "
    "%s::integer[], %s::text[], %s::text[], %s::boolean[], %s::bigint[]) "
    "ON CONFLICT (run_uid, seq) DO NOTHING RETURNING size) "
    "INSERT INTO run_log_totals AS t (run_uid, bytes, dropped_records, dropped_bytes) "
    "SELECT %s::text, coalesce(sum(size), 0), %s, %s FROM added "
    "ON CONFLICT (run_uid) DO UPDATE SET bytes = t.bytes + excluded.bytes, "
    "dropped_records = t.dropped_records + excluded.dropped_records, "
    "dropped_bytes = t.dropped_bytes + excluded.dropped_bytes "
    "RETURNING bytes, dropped_records, dropped_bytes"
)

#: A run's whole log and totals; returns how many records (the marker not counted) went.
_DELETE_LOGS = (
    "WITH gone AS (DELETE FROM run_logs WHERE run_uid = %s RETURNING seq), "
    "totals AS (DELETE FROM run_log_totals WHERE run_uid = %s) "
    "SELECT count(*) FILTER (WHERE seq > 0) FROM gone"
)


def _text(value: str) -> str:
    """Text PostgreSQL takes: valid UTF-8 (lone surrogates become U+FFFD) without NUL (U+FFFD)."""
    value = clean_text(value)
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _log_columns(records: Iterable[RunLogRecord]) -> list[list[Any]]:
    """One list per column of ``_APPEND_LOGS``'s unnest. A message with NUL characters (which
    ``text`` cannot hold) is stored as its JSON string literal, flagged, and read back exactly."""
    columns: list[list[Any]] = [[] for _ in range(10)]
    seq, when, stage, item, stream, level, logger, message, encoded, size = columns
    for r in records:
        text = clean_text(r.message)
        nul = "\x00" in text
        seq.append(int(r.seq))
        when.append(float(r.time))
        stage.append(None if r.stage is None else _text(r.stage))
        item.append(None if r.item is None else int(r.item))
        stream.append(_text(r.stream))
        level.append(int(r.level))
        logger.append(_text(r.logger))
        message.append(orjson.dumps(text).decode() if nul else text)
        encoded.append(nul)
        size.append(int(r.size))
    return columns
