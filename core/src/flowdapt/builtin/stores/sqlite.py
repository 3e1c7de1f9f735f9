"""The SQLite document store: the default, a single file ``<app_dir>/flowdapt.db``.

Design (see ``docs/storage.md``):

* stdlib ``sqlite3`` kept off the event loop: one dedicated writer thread owns the only write
  connection of this process, and a small pool of reader threads each own a read-only connection.
  WAL mode lets readers run while a writer commits, in this process and in others.
* ``synchronous=NORMAL`` (durable across application crashes; a power loss may drop the last
  commits, never corrupt the file) and a busy timeout, so writers of several processes sharing
  the file queue on SQLite's lock instead of failing.
* Name uniqueness is a ``UNIQUE (kind, name)`` constraint: an INSERT either wins or raises, with
  no find-then-insert race. Multi-step writes run in ``BEGIN IMMEDIATE`` transactions, which take
  the write lock up front, so they are atomic across processes too.
* The schema version is ``PRAGMA user_version``; ``open()`` applies pending migrations
  (``flowdapt.builtin.stores.migrations``) in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from flowdapt.builtin.stores import migrations as _migrations
from flowdapt.builtin.stores._common import (
    FINAL_STATES,
    as_uid,
    check_kind,
    dump_resource,
    dump_run,
    from_epoch,
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
from flowdapt.engine.logs import clean_text
from flowdapt.errors import ConfigurationError, FlowdaptError, StorageFullError, StorageUnavailableError
from flowdapt.resources.base import Resource
from flowdapt.resources.run import WorkflowRun
from flowdapt.storage import DocumentStore, RunLogRecord
from flowdapt.storage.memory_logs import low_water, marker_message

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_FILENAME = "flowdapt.db"


class SQLiteStoreOptions(BaseModel):
    """``database.options`` of the ``sqlite`` backend."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        default=None,
        description="database file; relative paths are under the app dir (default <app_dir>/flowdapt.db)",
    )
    busy_timeout: float = Field(
        default=30.0, gt=0, description="seconds a writer waits for another process's write lock before failing"
    )
    readers: int = Field(default=4, ge=1, le=64, description="reader threads (each owns one read connection)")
    synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL", description="NORMAL is safe in WAL mode; FULL also survives power loss"
    )
    auto_migrate: bool = Field(
        default=True,
        description="apply pending schema migrations on start-up; when false, start-up fails until `flowdapt db upgrade`",
    )
    backup_before_migrate: bool = Field(
        default=True, description="copy the file to <path>.v<old>-<timestamp>.bak before migrating it"
    )
    max_size_mb: float | None = Field(
        default=None,
        gt=0,
        description="cap on the database file's size; writes past it are refused with 507 like a full disk",
    )


class StoreClosedError(FlowdaptError):
    """A store method was called before ``open()`` or after ``close()``."""


class SQLiteStore(DocumentStore):
    """Resources and runs as JSON documents in one SQLite file."""

    schema_version: int = _migrations.latest_version()
    run_queue = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 30.0,
        readers: int = 4,
        synchronous: str = "NORMAL",
        auto_migrate: bool = True,
        backup_before_migrate: bool = True,
        migrations: Sequence[_migrations.Migration] | None = None,
        max_size_mb: float | None = None,
    ):
        self.max_size_mb = max_size_mb
        self.path = Path(path).expanduser()
        self.busy_timeout = float(busy_timeout)
        self.readers = int(readers)
        self.synchronous = synchronous.upper()
        self.auto_migrate = auto_migrate
        self.backup_before_migrate = backup_before_migrate
        self.migrations: tuple[_migrations.Migration, ...] = tuple(
            _migrations.MIGRATIONS if migrations is None else migrations
        )
        _migrations.check_migrations(self.migrations)
        self.schema_version = _migrations.latest_version(self.migrations)
        #: Versions before and after the last ``open()``/``upgrade()`` (equal when nothing ran).
        self.migrated_from: int | None = None
        self.migrated_to: int | None = None
        self.backup_path: Path | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._wconn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._open_lock = threading.Lock()

    @classmethod
    def from_options(cls, options: SQLiteStoreOptions | dict[str, Any] | None, settings: Any = None) -> SQLiteStore:
        if not isinstance(options, SQLiteStoreOptions):
            options = SQLiteStoreOptions.model_validate(options or {})
        return cls(
            resolve_path(options.path, settings),
            busy_timeout=options.busy_timeout,
            readers=options.readers,
            synchronous=options.synchronous,
            auto_migrate=options.auto_migrate,
            backup_before_migrate=options.backup_before_migrate,
            max_size_mb=options.max_size_mb,
        )

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- connections ---------------------------------------------------------------------

    def _connect(self, *, readonly: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path),
            timeout=self.busy_timeout,
            isolation_level=None,  # autocommit; write transactions are explicit BEGIN IMMEDIATE
            check_same_thread=False,  # each connection is used by one thread; close() runs elsewhere
            cached_statements=256,
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        if readonly:
            conn.execute("PRAGMA query_only = 1")
        elif self.max_size_mb is not None:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {max(1, int(self.max_size_mb * 2**20 // page_size))}")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(readonly=True)
            self._local.conn = conn
            with self._conns_lock:
                self._reader_conns.append(conn)
        return conn

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        pool = self._reader_pool
        if pool is None:
            raise StoreClosedError(f"{self!r} is not open: call `await store.open()` first")
        return await asyncio.get_running_loop().run_in_executor(pool, self._run_read, fn, args)

    def _run_read(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        return fn(self._reader(), *args)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        writer = self._writer
        if writer is None:
            raise StoreClosedError(f"{self!r} is not open: call `await store.open()` first")
        return await asyncio.get_running_loop().run_in_executor(writer, self._run_write, fn, args)

    def _run_write(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self._wconn
        if conn is None:
            raise StoreClosedError(f"{self!r} is closed")
        try:
            return fn(conn, *args)
        except sqlite3.OperationalError as exc:
            raise self._storage_error(exc) from exc

    def _storage_error(self, exc: sqlite3.Error) -> Exception:
        """A full disk (or database.options.max_size_mb), a read-only file: errors a client can
        act on, instead of a 500 that says "database or disk is full"."""
        code = getattr(exc, "sqlite_errorcode", None)
        message = str(exc)
        if code == sqlite3.SQLITE_FULL or "database or disk is full" in message:
            return StorageFullError(
                f"the database is full ({self.path}: {message}); nothing was written. Free disk space "
                "(or raise database.options.max_size_mb) and retry"
            )
        if code == sqlite3.SQLITE_READONLY or "readonly database" in message:
            return StorageUnavailableError(
                f"the database {self.path} is read-only ({message}); nothing was written"
            )
        if _is_busy(exc):
            return StorageUnavailableError(f"the database {self.path} is busy ({message}); retry")
        return exc

    @staticmethod
    def _transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in a ``BEGIN IMMEDIATE`` transaction: the write lock is taken first (the busy
        timeout applies), so read-then-write is atomic across connections and processes."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, *args)
        except BaseException:
            if conn.in_transaction:  # SQLite ends it by itself on some errors (a full disk)
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        await self._open(migrate=self.auto_migrate)

    async def upgrade(self) -> tuple[int, int]:
        """Open (if needed) applying pending migrations whatever ``auto_migrate`` says.

        Returns ``(from_version, to_version)``.
        """
        if self._writer is not None:
            before = await self._write(_migrations.get_version)
            if before < self.schema_version:
                await self._write(self._migrate_sync)
            return before, await self._write(_migrations.get_version)
        await self._open(migrate=True)
        assert self.migrated_from is not None and self.migrated_to is not None
        return self.migrated_from, self.migrated_to

    async def _open(self, *, migrate: bool) -> None:
        with self._open_lock:
            if self._writer is not None:
                return
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="flowdapt-sqlite-writer")
            self._reader_pool = ThreadPoolExecutor(self.readers, thread_name_prefix="flowdapt-sqlite-reader")
            self._local = threading.local()
        try:
            await asyncio.get_running_loop().run_in_executor(self._writer, self._open_sync, migrate)
        except BaseException:
            await self.close()
            raise

    def _open_sync(self, migrate: bool) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            conn.execute("PRAGMA schema_version").fetchone()  # opens the file now, not on first use
        except (OSError, sqlite3.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigurationError(
                f"cannot open the database {self.path}: {reason}. Check that the app dir "
                f"({self.path.parent}) exists and is writable by this user, or set database.options.path"
            ) from None
        try:
            mode = self._set_wal(conn)
            if str(mode).lower() != "wal":
                log.warning("SQLite store %s: WAL mode unavailable (journal_mode=%s)", self.path, mode)
            version = _migrations.get_version(conn)
            _migrations.check_not_newer(version, str(self.path), self.migrations)
            self.migrated_from = self.migrated_to = version
            if version < self.schema_version:
                if not migrate:
                    raise ConfigurationError(
                        f"the database {self.path} has schema version {version} and this Flowdapt needs "
                        f"{self.schema_version}; run `flowdapt db upgrade` (database.options.auto_migrate is off)"
                    )
                self._wconn = conn
                self._migrate_sync(conn)
            self._wconn = conn
        except BaseException:
            self._wconn = None
            conn.close()
            raise

    def _set_wal(self, conn: sqlite3.Connection) -> str:
        # Switching a new file to WAL needs an exclusive lock and SQLite reports "database is
        # locked" at once, without its busy handler, when another process is doing the same (two
        # servers starting together). It is idempotent, so retry it within the busy timeout.
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.001
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _migrate_sync(self, conn: sqlite3.Connection) -> None:
        before, after = self._transaction(conn, self._migrate_in_transaction)
        self.migrated_from, self.migrated_to = before, after
        if before != after:
            log.info("SQLite store %s migrated from schema version %d to %d", self.path, before, after)

    def _migrate_in_transaction(self, conn: sqlite3.Connection) -> tuple[int, int]:
        # Inside BEGIN IMMEDIATE: the version read here is final (another process that migrated
        # first has committed), so exactly one opener migrates and backs the file up.
        version = _migrations.get_version(conn)
        if version > 0 and self.backup_before_migrate and _migrations.pending(version, self.migrations):
            self.backup_path = self._backup(version)
        return _migrations.migrate(conn, str(self.path), self.migrations)

    def _backup(self, version: int) -> Path:
        """Copy the file before migrating it. Called while this process holds the write lock and
        has written nothing yet, so a separate read connection sees exactly the old version."""
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        target = self.path.with_name(f"{self.path.name}.v{version}-{stamp}.bak")
        source = self._connect(readonly=True)
        dest = sqlite3.connect(str(target))
        try:
            source.backup(dest)
        finally:
            dest.close()
            source.close()
        log.info("SQLite store %s: backed up schema version %d to %s", self.path, version, target)
        return target

    async def close(self) -> None:
        with self._open_lock:
            writer, readers = self._writer, self._reader_pool
            self._writer = self._reader_pool = None
        if writer is None and readers is None:
            return
        loop = asyncio.get_running_loop()
        if readers is not None:
            await loop.run_in_executor(None, readers.shutdown, True)
        with self._conns_lock:
            conns, self._reader_conns = self._reader_conns, []
        for conn in conns:
            conn.close()
        if writer is not None:
            await loop.run_in_executor(writer, self._close_writer)
            writer.shutdown(wait=False)

    def _close_writer(self) -> None:
        conn, self._wconn = self._wconn, None
        if conn is not None:
            try:
                conn.execute("PRAGMA optimize")
            except sqlite3.Error:  # pragma: no cover - best effort
                pass
            conn.close()

    async def stored_version(self) -> int:
        """The schema version in the file (0 when it does not exist yet), without migrating."""
        return await asyncio.get_running_loop().run_in_executor(None, self._stored_version_sync)

    def _stored_version_sync(self) -> int:
        if not self.path.exists():
            return 0
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=self.busy_timeout)
        try:
            return _migrations.get_version(conn)
        finally:
            conn.close()

    # -- resources -----------------------------------------------------------------------

    async def create(self, resource: Resource) -> Resource:
        kind = check_kind(resource)
        return await self._write(self._create_sync, kind, str(resource.uid), resource.name, dump_resource(resource), resource)

    @staticmethod
    def _create_sync(conn: sqlite3.Connection, kind: str, uid: str, name: str, doc: str, resource: Resource) -> Resource:
        try:
            conn.execute("INSERT INTO resources (kind, uid, name, doc) VALUES (?, ?, ?, ?)", (kind, uid, name, doc))
        except sqlite3.IntegrityError as exc:
            if "uid" in str(exc):
                raise uid_conflict(kind, uid) from None
            raise name_conflict(kind, name) from None
        return load_resource(kind, doc)

    async def get(self, kind: str, identifier: str) -> Resource | None:
        doc = await self._read(self._get_doc, kind, str(identifier))
        return None if doc is None else load_resource(kind, doc)

    @staticmethod
    def _find(conn: sqlite3.Connection, kind: str, identifier: str) -> tuple[int, str] | None:
        uid = as_uid(identifier)
        if uid is not None:
            row = conn.execute("SELECT seq, doc FROM resources WHERE kind = ? AND uid = ?", (kind, uid)).fetchone()
            if row is not None:
                return row
        return conn.execute("SELECT seq, doc FROM resources WHERE kind = ? AND name = ?", (kind, identifier)).fetchone()

    @classmethod
    def _get_doc(cls, conn: sqlite3.Connection, kind: str, identifier: str) -> str | None:
        row = cls._find(conn, kind, identifier)
        return None if row is None else row[1]

    async def list(self, kind: str) -> list[Resource]:
        docs = await self._read(self._list_docs, kind)
        return load_resources(kind, docs)

    @staticmethod
    def _list_docs(conn: sqlite3.Connection, kind: str) -> list[str]:
        return [row[0] for row in conn.execute("SELECT doc FROM resources WHERE kind = ? ORDER BY seq", (kind,))]

    async def update(self, resource: Resource) -> Resource:
        kind = check_kind(resource)
        return await self._write(self._update_sync, kind, str(resource.uid), resource.name, dump_resource(resource))

    @staticmethod
    def _update_sync(conn: sqlite3.Connection, kind: str, uid: str, name: str, doc: str) -> Resource:
        try:
            cursor = conn.execute(
                "UPDATE resources SET name = ?, doc = ? WHERE kind = ? AND uid = ?", (name, doc, kind, uid)
            )
        except sqlite3.IntegrityError:
            raise name_conflict(kind, name) from None
        if cursor.rowcount == 0:
            raise not_found(kind, uid)
        return load_resource(kind, doc)

    async def delete(self, kind: str, identifier: str) -> Resource | None:
        doc = await self._write(self._transaction, self._delete_sync, kind, str(identifier))
        return None if doc is None else load_resource(kind, doc)

    @classmethod
    def _delete_sync(cls, conn: sqlite3.Connection, kind: str, identifier: str) -> str | None:
        row = cls._find(conn, kind, identifier)
        if row is None:
            return None
        conn.execute("DELETE FROM resources WHERE seq = ?", (row[0],))
        return row[1]

    async def compare_and_set_annotation(
        self, kind: str, uid: str, key: str, expected: str | None, value: str
    ) -> bool:
        return await self._write(self._transaction, self._cas_sync, kind, str(uid), key, expected, value)

    @classmethod
    def _cas_sync(
        cls, conn: sqlite3.Connection, kind: str, uid: str, key: str, expected: str | None, value: str
    ) -> bool:
        # Runs inside BEGIN IMMEDIATE: no other connection (or process) can write between the
        # read and the write, so exactly one of several racing callers sees ``expected``.
        row = cls._find(conn, kind, uid)
        if row is None:
            return False
        seq, doc = row
        data = orjson.loads(doc)
        annotations = data.setdefault("metadata", {}).setdefault("annotations", {})
        if annotations.get(key) != expected:
            return False
        annotations[key] = str(value)
        conn.execute("UPDATE resources SET doc = ? WHERE seq = ?", (orjson.dumps(data).decode(), seq))
        return True

    # -- runs ----------------------------------------------------------------------------

    @staticmethod
    def _run_row(run: WorkflowRun) -> tuple[Any, ...]:
        return (str(run.uid), run.name, run.workflow, str(run.state), micros(run.started_at), dump_run(run))

    async def create_run(self, run: WorkflowRun) -> WorkflowRun:
        return await self._write(self._create_run_sync, self._run_row(run), run)

    @staticmethod
    def _create_run_sync(conn: sqlite3.Connection, row: tuple[Any, ...], run: WorkflowRun) -> WorkflowRun:
        try:
            conn.execute(
                "INSERT INTO runs (uid, name, workflow, state, started_at, doc) VALUES (?, ?, ?, ?, ?, ?)", row
            )
        except sqlite3.IntegrityError as exc:
            raise run_conflict(run, "uid" if "runs.uid" in str(exc) else "name") from None
        return load_run(row[-1])

    async def update_run(self, run: WorkflowRun) -> WorkflowRun:
        return await self._write(self._update_run_sync, self._run_row(run), run)

    @staticmethod
    def _update_run_sync(conn: sqlite3.Connection, row: tuple[Any, ...], run: WorkflowRun) -> WorkflowRun:
        try:
            conn.execute(
                "INSERT INTO runs (uid, name, workflow, state, started_at, doc) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (uid) DO UPDATE SET name = excluded.name, workflow = excluded.workflow, "
                "state = excluded.state, started_at = excluded.started_at, doc = excluded.doc",
                row,
            )
        except sqlite3.IntegrityError:
            raise run_conflict(run, "name") from None
        return load_run(row[-1])

    @staticmethod
    def _find_run(conn: sqlite3.Connection, identifier: str) -> tuple[int, str] | None:
        uid = as_uid(identifier)
        if uid is not None:
            row = conn.execute("SELECT seq, doc FROM runs WHERE uid = ?", (uid,)).fetchone()
            if row is not None:
                return row
        return conn.execute("SELECT seq, doc FROM runs WHERE name = ?", (identifier,)).fetchone()

    async def get_run(self, identifier: str) -> WorkflowRun | None:
        row = await self._read(self._find_run, str(identifier))
        return None if row is None else load_run(row[1])

    async def delete_run(self, identifier: str) -> WorkflowRun | None:
        doc = await self._write(self._transaction, self._delete_run_sync, str(identifier))
        return None if doc is None else load_run(doc)

    @classmethod
    def _delete_run_sync(cls, conn: sqlite3.Connection, identifier: str) -> str | None:
        row = cls._find_run(conn, identifier)
        if row is None:
            return None
        (uid,) = conn.execute("SELECT uid FROM runs WHERE seq = ?", (row[0],)).fetchone()
        conn.execute("DELETE FROM runs WHERE seq = ?", (row[0],))
        cls._delete_logs_sync(conn, uid)
        return row[1]

    @staticmethod
    def _run_filters(
        workflow: str | None, state: str | list[str] | None, since: datetime | None
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if workflow is not None:
            clauses.append("workflow = ?")
            params.append(str(workflow))
        states = state_values(state)
        if states is not None:
            clauses.append(f"state IN ({', '.join('?' * len(states))})")
            params.extend(states)
        if since is not None:
            clauses.append("started_at >= ?")
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
        sql = f"SELECT doc FROM runs{where} ORDER BY started_at DESC, seq DESC LIMIT ? OFFSET ?"
        params += [-1 if limit is None or limit < 0 else int(limit), max(0, int(offset or 0))]
        docs = await self._read(self._select_docs, sql, params)
        return [load_run(doc) for doc in docs]

    @staticmethod
    def _select_docs(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[str]:
        return [row[0] for row in conn.execute(sql, params)]

    async def count_runs(
        self, *, workflow: str | None = None, state: str | list[str] | None = None, since: datetime | None = None
    ) -> int:
        where, params = self._run_filters(workflow, state, since)
        return await self._read(self._scalar, f"SELECT count(*) FROM runs{where}", params)

    @staticmethod
    def _scalar(conn: sqlite3.Connection, sql: str, params: list[Any]) -> Any:
        return conn.execute(sql, params).fetchone()[0]

    async def delete_runs_before(self, before: datetime) -> int:
        return await self._write(self._transaction, self._delete_runs_before_sync, micros(before))

    @staticmethod
    def _delete_runs_before_sync(conn: sqlite3.Connection, before: int) -> int:
        placeholders = ", ".join("?" * len(FINAL_STATES))
        doomed = f"SELECT uid FROM runs WHERE started_at < ? AND state IN ({placeholders})"
        params = (before, *FINAL_STATES)
        conn.execute(f"DELETE FROM run_logs WHERE run_uid IN ({doomed})", params)
        conn.execute(f"DELETE FROM run_log_totals WHERE run_uid IN ({doomed})", params)
        cursor = conn.execute(
            f"DELETE FROM runs WHERE started_at < ? AND state IN ({placeholders})", params
        )
        return cursor.rowcount

    # -- run queue ---------------------------------------------------------------------------
    # Times are the store's clock: ``time.time()`` of the calling process, as microseconds.
    # Every read-then-write runs in BEGIN IMMEDIATE, so processes sharing the file never claim
    # the same run twice.

    async def claim_runs(
        self, owner: str, lease_seconds: float, limit: int = 1, *, uids: list[str] | None = None
    ) -> list[WorkflowRun]:
        among, args = "", ()
        if uids is not None:
            args = tuple(str(uid) for uid in uids)[:500]
            if not args:
                return []
            among = f" AND uid IN ({', '.join('?' * len(args))})"
        sql = (
            "SELECT seq, doc FROM runs WHERE state = 'pending' AND lease_owner IS NULL AND ? > 0"
            f"{among} ORDER BY seq LIMIT ?"
        )
        docs = await self._write(
            self._transaction, self._take_sync, sql, str(owner), float(lease_seconds), int(limit), args
        )
        return [load_run(doc) for doc in docs]

    async def claim_expired(self, owner: str, lease_seconds: float, limit: int = 10) -> list[WorkflowRun]:
        placeholders = ", ".join(f"'{state}'" for state in FINAL_STATES)
        sql = (
            f"SELECT seq, doc FROM runs WHERE lease_owner IS NOT NULL AND lease_expires < ? "
            f"AND state NOT IN ({placeholders}) ORDER BY lease_expires, seq LIMIT ?"
        )
        docs = await self._write(self._transaction, self._take_sync, sql, str(owner), float(lease_seconds), int(limit))
        return [load_run(doc) for doc in docs]

    @staticmethod
    def _take_sync(
        conn: sqlite3.Connection, sql: str, owner: str, lease_seconds: float, limit: int, among: tuple = ()
    ) -> list[str]:
        if limit <= 0:
            return []
        now = time.time()
        rows = conn.execute(sql, (micros_now(now), *among, limit)).fetchall()
        if rows:
            expires = micros_now(now + lease_seconds)
            conn.executemany(
                "UPDATE runs SET lease_owner = ?, lease_expires = ? WHERE seq = ?", [(owner, expires, seq) for seq, _ in rows]
            )
        return [doc for _, doc in rows]

    async def renew_leases(self, owner: str, uids: list[str], lease_seconds: float) -> set[str]:
        uids = [str(uid) for uid in uids]
        if not uids:
            return set()
        return await self._write(self._transaction, self._renew_sync, str(owner), uids, float(lease_seconds))

    @staticmethod
    def _renew_sync(conn: sqlite3.Connection, owner: str, uids: list[str], lease_seconds: float) -> set[str]:
        expires = micros_now(time.time() + lease_seconds)
        held: set[str] = set()
        for start in range(0, len(uids), 500):  # stay under SQLite's bound-parameter limit
            chunk = uids[start : start + 500]
            where = f"lease_owner = ? AND uid IN ({', '.join('?' * len(chunk))})"
            held.update(row[0] for row in conn.execute(f"SELECT uid FROM runs WHERE {where}", (owner, *chunk)))
            conn.execute(f"UPDATE runs SET lease_expires = ? WHERE {where}", (expires, owner, *chunk))
        return held

    async def release_lease(self, owner: str, uid: str) -> None:
        await self._write(
            self._execute_sync,
            "UPDATE runs SET lease_owner = NULL, lease_expires = NULL WHERE uid = ? AND lease_owner = ?",
            (str(uid), str(owner)),
        )

    @staticmethod
    def _execute_sync(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> int:
        return conn.execute(sql, params).rowcount

    async def get_lease(self, uid: str) -> tuple[str, datetime] | None:
        rows = await self._read(
            self._select_rows, "SELECT lease_owner, lease_expires FROM runs WHERE uid = ? AND lease_owner IS NOT NULL", [str(uid)]
        )
        if not rows:
            return None
        owner, expires = rows[0]
        return owner, from_epoch(expires / 1_000_000)

    @staticmethod
    def _select_rows(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return conn.execute(sql, params).fetchall()

    async def heartbeat_server(self, server_id: str, info: dict[str, Any], ttl_seconds: float) -> None:
        now = time.time()
        await self._write(
            self._execute_sync,
            "INSERT INTO servers (server_id, info, last_seen, expires) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (server_id) DO UPDATE SET info = excluded.info, last_seen = excluded.last_seen, "
            "expires = excluded.expires",
            (str(server_id), orjson.dumps(info).decode(), micros_now(now), micros_now(now + float(ttl_seconds))),
        )

    async def list_servers(self) -> list[dict[str, Any]]:
        rows = await self._read(
            self._select_rows,
            "SELECT server_id, info, last_seen FROM servers WHERE expires > ? ORDER BY server_id",
            [micros_now(time.time())],
        )
        return [server_record(sid, orjson.loads(info), from_epoch(seen / 1_000_000)) for sid, info, seen in rows]

    async def remove_server(self, server_id: str) -> None:
        await self._write(self._execute_sync, "DELETE FROM servers WHERE server_id = ?", (str(server_id),))


    # -- run logs ------------------------------------------------------------------------

    run_logs = True

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
        rows = [_log_row(str(run_uid), r) for r in records]
        await self._write(
            self._transaction, self._append_logs_sync, str(run_uid), rows, max_bytes, (int(dropped[0]), int(dropped[1]))
        )

    @classmethod
    def _append_logs_sync(
        cls, conn: sqlite3.Connection, run_uid: str, rows: list[tuple], max_bytes: int | None, dropped: tuple[int, int]
    ) -> None:
        sql = (
            "INSERT INTO run_logs (run_uid, seq, time, stage, item, stream, level, logger, message, size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        try:
            conn.executemany(sql, rows)
        except UnicodeEncodeError:  # text that is not UTF-8 (lone surrogates): stored replaced
            conn.executemany(sql, [(*row[:8], _utf8(row[8]), row[9]) for row in rows])
        added = sum(row[9] for row in rows)
        conn.execute(
            "INSERT INTO run_log_totals (run_uid, bytes, dropped_records, dropped_bytes) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (run_uid) DO UPDATE SET bytes = bytes + excluded.bytes, "
            "dropped_records = dropped_records + excluded.dropped_records, "
            "dropped_bytes = dropped_bytes + excluded.dropped_bytes",
            (run_uid, added, *dropped),
        )
        trimmed = cls._trim_logs_sync(conn, run_uid, max_bytes) if max_bytes is not None else 0
        if dropped[0] and not trimmed:
            when = rows[0][2] if rows else 0.0
            cls._write_marker(conn, run_uid, when, max_bytes)

    @staticmethod
    def _trim_logs_sync(conn: sqlite3.Connection, run_uid: str, max_bytes: int) -> int:
        row = conn.execute(
            "SELECT bytes, dropped_records, dropped_bytes FROM run_log_totals WHERE run_uid = ?", (run_uid,)
        ).fetchone()
        if row is None or row[0] <= max_bytes:
            return 0
        total, dropped, dropped_bytes = row
        excess = total - low_water(max_bytes)
        cut = conn.execute(
            "SELECT seq, cum, n, time FROM (SELECT seq, time, "
            "SUM(size) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS cum, "
            "COUNT(*) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS n "
            "FROM run_logs WHERE run_uid = ? AND seq > 0) WHERE cum >= ? ORDER BY seq LIMIT 1",
            (run_uid, excess),
        ).fetchone()
        if cut is None:  # every record together is less than the excess (totals off): drop all
            cut = conn.execute(
                "SELECT max(seq), coalesce(sum(size), 0), count(*), max(time) FROM run_logs "
                "WHERE run_uid = ? AND seq > 0",
                (run_uid,),
            ).fetchone()
            if not cut[2]:
                return 0
        seq, cut_bytes, count, when = cut
        conn.execute("DELETE FROM run_logs WHERE run_uid = ? AND seq > 0 AND seq <= ?", (run_uid, seq))
        dropped += count
        dropped_bytes += cut_bytes
        conn.execute(
            "UPDATE run_log_totals SET bytes = ?, dropped_records = ?, dropped_bytes = ? WHERE run_uid = ?",
            (max(0, total - cut_bytes), dropped, dropped_bytes, run_uid),
        )
        SQLiteStore._write_marker(conn, run_uid, when, max_bytes)
        return count

    @staticmethod
    def _write_marker(conn: sqlite3.Connection, run_uid: str, when: float, max_bytes: int | None) -> None:
        """The seq-0 record that says how much of the run's log was dropped (from the totals)."""
        dropped, dropped_bytes = conn.execute(
            "SELECT dropped_records, dropped_bytes FROM run_log_totals WHERE run_uid = ?", (run_uid,)
        ).fetchone()
        old = conn.execute("SELECT time FROM run_logs WHERE run_uid = ? AND seq = 0", (run_uid,)).fetchone()
        marker = RunLogRecord(
            0,
            max(when, old[0]) if old else when,
            None,
            None,
            "flowdapt",
            logging.WARNING,
            "",
            marker_message(dropped, dropped_bytes, max_bytes),
        )
        conn.execute(
            "INSERT OR REPLACE INTO run_logs (run_uid, seq, time, stage, item, stream, level, logger, message, size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _log_row(run_uid, marker),
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
        clauses = ["run_uid = ?"]
        params: list[Any] = [str(run_uid)]
        if stage is not None:
            clauses.append("(stage = ? OR seq = 0)")
            params.append(stage)
        if min_level is not None:
            clauses.append("level >= ?")
            params.append(int(min_level))
        if after_seq is not None:
            clauses.append("seq > ?")
            params.append(int(after_seq))
        if since is not None:
            clauses.append("time >= ?")
            params.append(float(since))
        sql = (
            "SELECT seq, time, stage, item, stream, level, logger, message FROM run_logs WHERE "
            + " AND ".join(clauses)
            + " ORDER BY seq LIMIT ?"
        )
        params.append(-1 if limit is None or limit < 0 else int(limit))
        rows = await self._read(self._select_rows, sql, params)
        return [RunLogRecord(*row) for row in rows]

    @staticmethod
    def _select_rows(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[tuple]:
        return conn.execute(sql, params).fetchall()

    async def trim_run_logs(self, run_uid: str, max_bytes: int) -> int:
        return await self._write(self._transaction, self._trim_logs_sync, str(run_uid), int(max_bytes))

    async def delete_run_logs(self, run_uid: str) -> int:
        return await self._write(self._transaction, self._delete_logs_sync, str(run_uid))

    @staticmethod
    def _delete_logs_sync(conn: sqlite3.Connection, run_uid: str) -> int:
        removed = conn.execute("DELETE FROM run_logs WHERE run_uid = ? AND seq > 0", (run_uid,)).rowcount
        conn.execute("DELETE FROM run_logs WHERE run_uid = ?", (run_uid,))
        conn.execute("DELETE FROM run_log_totals WHERE run_uid = ?", (run_uid,))
        return removed


def micros_now(seconds: float) -> int:
    """A ``time.time()`` value as the integer microseconds the lease and server columns hold."""
    return round(seconds * 1_000_000)


def _log_row(run_uid: str, r: RunLogRecord) -> tuple:
    return (run_uid, r.seq, r.time, r.stage, r.item, r.stream, r.level, r.logger, r.message, r.size)


def _utf8(text: str) -> str:
    return clean_text(text)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def resolve_path(path: str | None, settings: Any = None) -> Path:
    """``database.options.path``: absolute, or relative to the app dir (default ``flowdapt.db``)."""
    if path is not None and str(path).strip() == ":memory:":
        raise ConfigurationError(
            "database.options.path ':memory:' is not supported by the sqlite store; use database.backend: memory"
        )
    raw = Path(os.path.expanduser(path or DEFAULT_FILENAME))
    if raw.is_absolute():
        return raw
    app_dir = getattr(settings, "app_dir", None)
    if app_dir is None:
        from flowdapt.settings import ENV_PREFIX, default_app_dir

        app_dir = os.environ.get(f"{ENV_PREFIX}APP_DIR") or default_app_dir()
    return Path(app_dir).expanduser() / raw
