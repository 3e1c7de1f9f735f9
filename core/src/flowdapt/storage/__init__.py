"""The document store contract: resources (workflow, config, trigger_rule) and workflow runs.

Implementations register through ``flowdapt_register_document_stores``; the built-ins are SQLite
(the default) and in-memory. ``flowdapt.testing.conformance.document_stores`` is the contract
every store passes (``pytest --pyargs flowdapt.testing.conformance --flowdapt-store NAME``).
All methods are async; a store backed by a blocking driver runs it off the loop.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flowdapt.engine.logs import RunLogRecord
from flowdapt.resources.base import Resource
from flowdapt.resources.run import WorkflowRun

__all__ = ["DocumentStore", "RunLogRecord"]


class DocumentStore(abc.ABC):
    """Stores resources by kind with unique names, and runs listed newest first."""

    #: Schema version this code writes; ``open`` migrates older stored data forward to it.
    schema_version: int = 1

    # What the store can do; the conformance suite (flowdapt.testing.conformance) skips the
    # cases a store declares it cannot pass.
    #: A new store built from the same options sees what an earlier one wrote (close/reopen).
    persistent: bool = True
    #: Several store objects built from the same options (threads, processes) share the data.
    shared: bool = True
    #: Implements the durable run queue and cluster membership (the "run queue" section below).
    run_queue: bool = False

    async def __aenter__(self) -> DocumentStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending schema migrations."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # -- resources -----------------------------------------------------------------------

    @abc.abstractmethod
    async def create(self, resource: Resource) -> Resource:
        """Insert a new resource. Raises ConflictError when its kind already has that name."""

    @abc.abstractmethod
    async def get(self, kind: str, identifier: str) -> Resource | None:
        """By uid (string form) or by ``metadata.name``; None when absent."""

    @abc.abstractmethod
    async def list(self, kind: str) -> list[Resource]:
        """Every resource of a kind, oldest first (creation order)."""

    @abc.abstractmethod
    async def update(self, resource: Resource) -> Resource:
        """Replace the stored resource with the same kind and uid. Raises ResourceNotFoundError
        when absent and ConflictError when a rename collides with another resource's name."""

    @abc.abstractmethod
    async def delete(self, kind: str, identifier: str) -> Resource | None:
        """Remove by uid or name; returns what was deleted, or None."""

    @abc.abstractmethod
    async def compare_and_set_annotation(
        self, kind: str, uid: str, key: str, expected: str | None, value: str
    ) -> bool:
        """Atomically set ``metadata.annotations[key]`` to ``value`` if it currently equals
        ``expected`` (None: absent). True when this caller won. Used for exactly-once triggers."""

    # -- runs ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def create_run(self, run: WorkflowRun) -> WorkflowRun: ...

    @abc.abstractmethod
    async def update_run(self, run: WorkflowRun) -> WorkflowRun:
        """Replace the stored run with the same uid (insert if absent)."""

    @abc.abstractmethod
    async def get_run(self, identifier: str) -> WorkflowRun | None:
        """By uid or run name."""

    @abc.abstractmethod
    async def delete_run(self, identifier: str) -> WorkflowRun | None: ...

    @abc.abstractmethod
    async def list_runs(
        self,
        *,
        workflow: str | None = None,
        state: str | list[str] | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[WorkflowRun]:
        """Runs newest ``started_at`` first, filtered, paginated."""

    @abc.abstractmethod
    async def count_runs(
        self, *, workflow: str | None = None, state: str | list[str] | None = None, since: datetime | None = None
    ) -> int: ...

    @abc.abstractmethod
    async def delete_runs_before(self, before: datetime) -> int:
        """Delete finished runs that started before ``before``; returns how many."""

    # -- run queue: leases on runs, cluster membership ---------------------------------------
    #
    # For several servers on one store: an API server records a run as ``pending``; compute
    # servers take pending runs with a lease (owner, expiry) that they renew while the run goes
    # on; when a holder dies its leases expire and another server takes the runs over. The
    # lease lives beside the run document (never in its JSON): ``update_run`` keeps it and
    # ``delete_run`` drops it. Expiry is judged by the store's own clock (PostgreSQL's ``now()``,
    # so hosts with skewed clocks agree). Stores that implement this set ``run_queue = True``;
    # the defaults here raise NotImplementedError naming the store.

    def _no_run_queue(self, method: str) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__} has no run queue ({method}): use a store with run_queue = True "
            "(sqlite, memory, postgres)"
        )

    async def claim_runs(
        self, owner: str, lease_seconds: float, limit: int = 1, *, uids: list[str] | None = None
    ) -> list[WorkflowRun]:
        """Atomically take up to ``limit`` runs in state ``pending`` that hold no lease, oldest
        created first (a run whose lease expired is :meth:`claim_expired`'s: its holder may have
        started it even though its record still says pending); each gets the lease (owner, expires = now + lease_seconds).
        Concurrent callers in other processes or hosts never get the same run. ``uids``: only
        among these runs (a server cancelling a waiting run takes that one)."""
        raise self._no_run_queue("claim_runs")

    async def renew_leases(self, owner: str, uids: list[str], lease_seconds: float) -> set[str]:
        """Extend the leases ``owner`` holds on ``uids`` to now + lease_seconds; returns the uids
        it still holds (one whose lease expired and was taken over by another owner is not)."""
        raise self._no_run_queue("renew_leases")

    async def release_lease(self, owner: str, uid: str) -> None:
        """Drop ``owner``'s lease on ``uid`` (the run ended or was handed back); no-op otherwise."""
        raise self._no_run_queue("release_lease")

    async def claim_expired(self, owner: str, lease_seconds: float, limit: int = 10) -> list[WorkflowRun]:
        """Take over runs not in a final state (pending/running) whose lease has expired (their
        holder died): each is now leased to ``owner``, oldest expiry first. Atomic like
        ``claim_runs``. The caller decides whether to retry or fail them."""
        raise self._no_run_queue("claim_expired")

    async def get_lease(self, uid: str) -> tuple[str, datetime] | None:
        """``(owner, expires_at)`` (naive UTC) of the live or expired lease on a run; None when
        it has none."""
        raise self._no_run_queue("get_lease")

    async def heartbeat_server(self, server_id: str, info: dict[str, Any], ttl_seconds: float) -> None:
        """Upsert this server's record (info: name, host, pid, services, url, started_at),
        valid for ``ttl_seconds`` from now."""
        raise self._no_run_queue("heartbeat_server")

    async def list_servers(self) -> list[dict[str, Any]]:
        """Live server records (expired ones left out), ordered by ``server_id``, each its info
        plus ``server_id`` and ``last_seen`` (naive UTC)."""
        raise self._no_run_queue("list_servers")

    async def remove_server(self, server_id: str) -> None:
        """Forget a server's record (a clean shutdown); no-op when absent."""
        raise self._no_run_queue("remove_server")

    # -- run logs (capability ``run_logs``) ----------------------------------------------
    #
    # What a run's stages printed and logged, kept with the run: ``delete_run`` and
    # ``delete_runs_before`` remove a run's log with it. Records carry a ``seq`` the caller
    # assigns (increasing per run, from 1); seq 0 is reserved for the marker the store keeps when
    # ``max_bytes`` made it drop a run's oldest records. A store without this capability keeps the
    # defaults below (the server then keeps logs in memory, see docs/logs.md).

    #: The store implements the run-log methods below.
    run_logs: bool = False

    async def append_run_logs(
        self,
        run_uid: str,
        records: Sequence[RunLogRecord],
        *,
        max_bytes: int | None = None,
        dropped: tuple[int, int] = (0, 0),
    ) -> None:
        """Add records to a run's log. With ``max_bytes``, then drop the run's oldest records until
        its log (sum of :attr:`RunLogRecord.size`) is within it, and keep one marker record (seq 0,
        stream ``flowdapt``) that says how many records and bytes were dropped so far, counting
        ``dropped`` (records, bytes): what the caller dropped before these, for the same bound."""
        raise NotImplementedError(f"{type(self).__name__} does not store run logs")

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
        """A run's records in ``seq`` order (the marker first), filtered: one stage, ``level >=
        min_level``, ``seq > after_seq``, ``time >= since`` (epoch seconds); at most ``limit``.
        An unknown run has no records."""
        raise NotImplementedError(f"{type(self).__name__} does not store run logs")

    async def trim_run_logs(self, run_uid: str, max_bytes: int) -> int:
        """Drop the run's oldest records until its log is within ``max_bytes`` (updating the
        marker); returns how many were dropped."""
        raise NotImplementedError(f"{type(self).__name__} does not store run logs")

    async def delete_run_logs(self, run_uid: str) -> int:
        """Remove a run's log; returns how many records were removed."""
        raise NotImplementedError(f"{type(self).__name__} does not store run logs")
