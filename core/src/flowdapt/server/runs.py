"""The run service: start runs in the background, wait for them, cancel them, keep their records.

A run costs the database one insert (pending) and one update (final); per-stage progress is
written at most every ``PROGRESS_FLUSH_SECONDS`` while a run is long enough to have any.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowdapt.engine.context import RunContext
from flowdapt.engine.plan import Plan
from flowdapt.engine.prepare import check_request, compile_checked, prepare_run
from flowdapt.engine.runner import execute_plan
from flowdapt.errors import (
    ConfigurationError,
    ConflictError,
    ResourceNotFoundError,
    ServiceDrainingError,
    transient_storage_error,
)
from flowdapt.events import envelope, run_listener
from flowdapt.resources.base import utcnow
from flowdapt.resources.run import RunError, RunState, StageState, WorkflowRun
from flowdapt.resources.workflow import Workflow
from flowdapt.server import results
from flowdapt.server.http import RunNotActiveError, ServiceUnavailableError
from flowdapt.server.run_logs import MemoryLogStore, RunLogWriter

if TYPE_CHECKING:
    from flowdapt.server.core import FlowdaptServer

log = logging.getLogger("flowdapt.server.runs")

PROGRESS_FLUSH_SECONDS = 0.5
PLAN_CACHE_SIZE = 256
#: Seconds between retries of a run's final write while storage is full (doubling up to the max).
FINAL_WRITE_FIRST_DELAY = 0.25
FINAL_WRITE_MAX_DELAY = 5.0


_retryable = transient_storage_error
FINAL_STATES = ("finished", "failed", "cancelled")
ACTIVE_STATES = ["pending", "running"]

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s|weeks?|days?|hours?|minutes?|mins?|seconds?|secs?)", re.I)
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


#: Idempotency keys longer than this are refused (400).
MAX_IDEMPOTENCY_KEY = 255


def idempotency_uid(key: str) -> str:
    """The run uid a client's ``Idempotency-Key`` stands for: the same key, the same run, on every
    server of the cluster (no table of keys: the runs table's uid is the record)."""
    import uuid

    from flowdapt.errors import ValidationError

    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ValidationError(
            f"the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters", field="Idempotency-Key"
        )
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"flowdapt:idempotency:{key}"))


def retention_seconds(value: int | float | str) -> float:
    """``compute.run_retention_duration`` in seconds: -1 keep forever, 0 do not store runs,
    a number of seconds, or a string such as ``7d``, ``12h``, ``1d12h``, ``90s``."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip().lower()
    try:
        return float(text)
    except ValueError:
        pass
    total, pos = 0.0, 0
    for match in _DURATION_RE.finditer(text):
        if text[pos : match.start()].strip(" ,"):
            break
        unit = match.group(2)[0]
        if match.group(2).startswith("mi"):
            unit = "m"
        total += float(match.group(1)) * _UNIT_SECONDS[unit]
        pos = match.end()
    if pos == 0 or text[pos:].strip(" ,"):
        raise ConfigurationError(
            f"compute.run_retention_duration: cannot read {value!r}; use seconds (3600), -1 (forever), "
            "0 (do not store runs) or a duration such as 7d, 12h, 1d12h"
        )
    return total


@dataclass(eq=False)
class ActiveRun:
    plan: Plan
    context: RunContext
    task: asyncio.Task | None = None
    dirty: bool = False
    done: bool = False
    stop_reason: str | None = None
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: The background retry of the final write, while storage is full or unavailable.
    saving: asyncio.Task | None = None
    #: Claimed from the run queue: this server holds a lease on it (server/run_queue.py).
    leased: bool = False
    #: The lease was lost (another server has the run now): stop without recording anything.
    lease_lost: bool = False
    #: Draining: queue the run again for another server instead of recording it failed.
    hand_back: bool = False

    #: Collects and stores what the stages print and log (None when the run captures nothing).
    log_writer: RunLogWriter | None = None

    @property
    def run(self) -> WorkflowRun:
        return self.context.run


def run_event_data(run: WorkflowRun, stage: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "uid": str(run.uid),
        "name": run.name,
        "workflow": run.workflow,
        "state": run.state.value,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
    if stage is not None:
        data["stage"] = stage
        data["stage_record"] = run.stages[stage].model_dump(mode="json")
    elif run.state.is_final:
        data["stages"] = {name: s.model_dump(mode="json") for name, s in run.stages.items()}
        if run.error is not None:
            data["error"] = run.error.model_dump(mode="json")
    return data


class RunService:
    def __init__(self, server: FlowdaptServer):
        self.server = server
        self.active: dict[str, ActiveRun] = {}
        self._names: dict[str, str] = {}
        self._plans: OrderedDict[tuple[str, str], Plan] = OrderedDict()
        self.retention = retention_seconds(server.settings.compute.run_retention_duration)
        #: Runs go through the database's run queue (set at start: server/run_queue.py).
        self.queue = False
        #: The compute side of the queue, when this server runs compute with the queue on.
        self.worker: Any = None
        #: uids of runs claimed here that never started and whose lease is not yet given back.
        self.unstarted: set[str] = set()
        #: uid -> futures of callers waiting for a run that may end on another server.
        self._waiters: dict[str, list[asyncio.Future]] = {}
        self._finished_subscription: Any = None
        self._code_fingerprint: tuple | None = None
        #: Runs waiting for a slot (limits), in arrival order; runs started, uid -> workflow.
        self._queue: list[ActiveRun] = []
        self._started: dict[str, str] = {}
        self._slots = asyncio.Condition()

        self._memory_logs: MemoryLogStore | None = None

    async def refresh_code(self) -> bool:
        """An edited ``user_modules`` file is picked up by the next run, without a restart: when
        the files changed since the last look, this process forgets the old modules (and the plans
        compiled from them) and the executor replaces or refreshes its workers. True when it did."""
        from flowdapt.engine.prepare import user_modules_fingerprint
        from flowdapt.engine.worker import forget_modules

        fingerprint = user_modules_fingerprint(self.server.settings)
        previous, self._code_fingerprint = self._code_fingerprint, fingerprint
        if previous is None or previous == fingerprint:
            return False
        log.info("user_modules changed: the next runs import it afresh")
        forget_modules(["user_modules"])
        self._plans.clear()
        executor = self.server.executor
        if executor is not None:
            await executor.reload_code()
        return True

    @property
    def persist(self) -> bool:
        return self.retention != 0

    @property
    def store(self):
        return self.server.store

    @property
    def logs(self):
        """Where run logs are kept: the store, or this process's memory when the store keeps
        none (``run_logs`` capability) or runs are not stored."""
        store = self.store
        if self.persist and getattr(store, "run_logs", False):
            return store
        if self._memory_logs is None:
            self._memory_logs = MemoryLogStore()
        return self._memory_logs

    async def read_logs(self, identifier: str, **filters: Any) -> tuple[WorkflowRun, list]:
        """The run (ResourceNotFoundError when unknown or deleted) and its log records."""
        run = await self.get(identifier)
        return run, await self.logs.read_run_logs(str(run.uid), **filters)

    # -- lookups -------------------------------------------------------------------------

    def find_active(self, identifier: str) -> ActiveRun | None:
        active = self.active.get(identifier)
        if active is None:
            uid = self._names.get(identifier)
            active = self.active.get(uid) if uid else None
        return active

    async def get(self, identifier: str) -> WorkflowRun:
        active = self.find_active(identifier)
        if active is not None:
            return active.run
        run = await self.store.get_run(identifier) if self.persist else None
        if run is None:
            raise ResourceNotFoundError(f"Resource not found: no workflow run with uid or name {identifier!r}")
        return run

    async def full_result(self, run: WorkflowRun) -> Any:
        if not run.result_ref:
            return run.result
        return await asyncio.to_thread(results.load_result, self.server.settings, run)

    # -- starting ------------------------------------------------------------------------

    def plan_for(self, workflow: Workflow) -> Plan:
        """The compiled plan of a workflow (cached by uid and update time)."""
        return self._plan(workflow)

    def _plan(self, workflow: Workflow) -> Plan:
        key = (str(workflow.metadata.uid), workflow.metadata.updated_at.isoformat())
        plan = self._plans.get(key)
        if plan is None:
            plan = compile_checked(workflow, self.server.settings, self.server.plugins)
            self._plans[key] = plan
            if len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    async def submit(
        self,
        identifier: str,
        run_input: Any = None,
        *,
        namespace: str | None = None,
        wait: bool = True,
        source: str = "api",
        triggered_by: dict[str, Any] | None = None,
        uid: str | None = None,
        rerun_of: str | None = None,
        idempotency_key: str | None = None,
    ) -> WorkflowRun | dict[str, Any]:
        """Start a run. With ``wait`` the finished run; without, the pending run's JSON at once.
        ``uid`` makes the start idempotent (a run request delivered twice starts one run).
        ``idempotency_key`` (the ``Idempotency-Key`` header) does so for a client: the run's uid
        is derived from the key, and a request with a key already used answers with that run
        (waiting for it with ``wait``) instead of starting another."""
        if idempotency_key is not None:
            uid = idempotency_uid(idempotency_key)
            replayed = await self._replay(uid, identifier, wait)
            if replayed is not None:
                return replayed
            try:
                return await self._submit(identifier, run_input, namespace=namespace, wait=wait, source=source, triggered_by=triggered_by, uid=uid, rerun_of=rerun_of)
            except ConflictError as exc:  # the same key, at the same moment, on another server
                if getattr(exc, "field", None) != "uid" or (replayed := await self._replay(uid, identifier, wait)) is None:
                    raise
                return replayed
        return await self._submit(identifier, run_input, namespace=namespace, wait=wait, source=source, triggered_by=triggered_by, uid=uid, rerun_of=rerun_of)

    async def _replay(self, uid: str, identifier: str, wait: bool) -> WorkflowRun | dict[str, Any] | None:
        """The run an idempotency key already started (None when none did), as ``submit`` answers."""
        active = self.active.get(uid)
        run = active.run if active is not None else (await self.store.get_run(uid) if self.persist else None)
        if run is None:
            return None
        workflow = await self.store.get("workflow", identifier)
        if workflow is None:
            raise ResourceNotFoundError(f"Resource not found: no workflow with uid or name {identifier!r}")
        if workflow.metadata.name != run.workflow:
            raise ConflictError(
                f"this key started run {run.name} of workflow {run.workflow!r}, not of {identifier!r}; "
                "use a new key for a new run",
                field="Idempotency-Key",
            )
        log.info("run %s: a request with its idempotency key came again; answering with the run", run.name)
        if not wait:
            return run.model_dump(mode="json")
        if active is not None and active.task is not None and not self.persist:
            await asyncio.shield(active.task)
            return active.run
        return run if run.state.is_final else await self.wait_final(uid)

    async def _submit(
        self,
        identifier: str,
        run_input: Any,
        *,
        namespace: str | None,
        wait: bool,
        source: str,
        triggered_by: dict[str, Any] | None,
        uid: str | None,
        rerun_of: str | None,
    ) -> WorkflowRun | dict[str, Any]:
        server = self.server
        if server.draining:
            raise ServiceDrainingError()
        if self.queue:
            return await self._enqueue(
                identifier, run_input, namespace=namespace, wait=wait, source=source, triggered_by=triggered_by, uid=uid, rerun_of=rerun_of
            )
        if server.executor is None:
            raise ServiceUnavailableError(
                "this server runs no compute service, so it cannot run workflows; start one with "
                "`flowdapt run --services api,compute`"
            )
        run_input = check_request(run_input, namespace)  # before the lookup: a bad request is a 400 first
        await self.refresh_code()
        workflow = await self.store.get("workflow", identifier)
        if workflow is None:
            raise ResourceNotFoundError(f"Resource not found: no workflow with uid or name {identifier!r}")
        plan = self._plan(workflow)
        context = prepare_run(
            plan,
            run_input,
            settings=server.settings,
            executor=server.executor.name,
            config=await self.store.list("config"),
            namespace=namespace,
            source=source,
            owner=server.identity,
            triggered_by=triggered_by,
            rerun_of=rerun_of,
            **({"uid": uid} if uid else {}),
        )
        run = context.run
        await self._keep_input(run, context.input)
        if self.persist:
            await self.store.create_run(run)
        active = ActiveRun(plan=plan, context=context)
        uid = str(run.uid)
        self.active[uid] = active
        self._names[run.name] = uid
        if server.events.listening:
            server.events.publish("run_created", run_event_data(run))
        active.task = asyncio.create_task(self._admit_then_execute(active), name=f"flowdapt-run-{run.name}")
        if not wait:
            return run.model_dump(mode="json")
        # Shielded: a client that disconnects while waiting does not cancel the run.
        await asyncio.shield(active.task)
        return run

    async def start_requested(
        self, workflow: str, run_input: Any, *, namespace=None, source="trigger", triggered_by=None, request_id=None
    ):
        """Start a run a ``run_workflow`` trigger action asked for (from the bus's run queue). The
        run's uid is the request's id, so a request delivered twice starts one run."""
        try:
            return await self.submit(
                workflow, run_input, namespace=namespace, wait=False, source=source, triggered_by=triggered_by, uid=request_id
            )
        except ConflictError:
            if request_id is None:
                raise
            log.info("run request %s was delivered again; its run exists already", request_id)
            return None

    # -- the run queue (several servers, server/run_queue.py) ------------------------------

    async def start_queue(self) -> None:
        """Queue mode on: callers waiting here learn of runs that end on other servers."""
        from flowdapt.events import CHANNEL_WORKFLOWS

        self.queue = True
        self._finished_subscription = await self.server.event_bus.subscribe(self._on_bus_event, channels=[CHANNEL_WORKFLOWS])

    async def stop_queue(self) -> None:
        subscription, self._finished_subscription = self._finished_subscription, None
        if subscription is not None:
            try:
                await subscription.close()
            except Exception:
                log.exception("closing the run-event subscription failed")
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.cancel()
        self._waiters.clear()

    def _on_bus_event(self, event) -> None:
        """A run ended somewhere in the cluster: wake whoever waits for it here. (The broker
        plugin puts other servers' runs on this server's event stream, ``GET /events``: it can
        tell a server's own events from the others'.)"""
        from flowdapt.events import WORKFLOW_FINISHED

        if event.type != WORKFLOW_FINISHED:
            return
        data = event.data if isinstance(event.data, dict) else {}
        uid = data.get("uid")
        if isinstance(uid, str) and uid in self._waiters:
            self._wake_waiters(uid)

    def _wake_waiters(self, uid: str) -> None:
        for future in self._waiters.pop(uid, ()):
            if not future.done():
                future.set_result(None)

    async def _enqueue(self, identifier, run_input, *, namespace, wait, source, triggered_by, uid, rerun_of=None):
        """Queue mode: check the request, record the run pending, tell the compute servers."""
        from flowdapt.server.run_queue import queued_event

        server = self.server
        run_input = check_request(run_input, namespace)
        await self.refresh_code()
        workflow = await self.store.get("workflow", identifier)
        if workflow is None:
            raise ResourceNotFoundError(f"Resource not found: no workflow with uid or name {identifier!r}")
        plan = self._plan(workflow)
        # A server that runs compute and has room takes the run itself at once (one claim of this
        # very run, no queue round trip); otherwise any compute server claims it.
        local = self.worker is not None and self.worker.room() > 0 and not server.draining
        context = prepare_run(
            plan,
            run_input,
            settings=server.settings,
            executor=server.executor.name if local and server.executor is not None else server.settings.executor.backend,
            config=await self.store.list("config") if local else None,
            namespace=namespace,
            source=source,
            triggered_by=triggered_by,
            rerun_of=rerun_of,
            **({"uid": uid} if uid else {}),
        )
        run = context.run
        await self._keep_input(run, context.input)
        uid = str(run.uid)
        future = self._wait_future(uid) if wait else None
        try:
            await self.store.create_run(run)
        except BaseException:
            if future is not None:
                self._waiters.pop(uid, None)
            raise
        if server.events.listening:
            server.events.publish("run_created", run_event_data(run))
        claimed = False
        if local:
            try:
                claimed = bool(await self.store.claim_runs(server.identity, self.worker.lease, 1, uids=[uid]))
            except Exception as exc:
                if not _retryable(exc):
                    raise
                # The run is recorded; the claim may have been taken before the connection
                # dropped. Give it back (or let the reaper do so): any compute server runs it.
                log.warning("run %s: claiming it here failed (%s); it waits in the queue", run.name, exc)
                await self.unclaim(uid)
        if claimed:
            run.owner = server.identity
            active = ActiveRun(plan=plan, context=context, leased=True)
            self.active[uid] = active
            self._names[run.name] = uid
            active.task = asyncio.create_task(self._admit_then_execute(active), name=f"flowdapt-run-{run.name}")
        else:
            if self.worker is not None:
                self.worker.wake.set()
            server.event_bus.publish_nowait(queued_event(run))
        if future is None:
            return run.model_dump(mode="json")
        return await self.wait_final(uid, future)

    async def _keep_input(self, run: WorkflowRun, run_input: dict[str, Any] | None) -> None:
        """Keep the run's input on its record; one over ``compute.max_input_bytes`` by reference."""
        run.input = run_input or None
        if not self.persist:
            return
        encoded = results.input_is_large(self.server.settings, run.input)
        if encoded is not None:
            await asyncio.to_thread(results.store_input, self.server.settings, run, encoded)

    async def run_input(self, run: WorkflowRun) -> dict[str, Any]:
        """The full input of a run, read back from where it was kept when it was large."""
        if not run.input_ref:
            return dict(run.input or {})
        return await asyncio.to_thread(results.load_input, self.server.settings, run)

    async def rerun(
        self, identifier: str, overrides: Any = None, *, wait: bool = True
    ) -> WorkflowRun | dict[str, Any]:
        """Start ``identifier``'s workflow again with its input (``overrides`` merged over it, one
        level deep), in its namespace; the new run has ``source: rerun`` and ``rerun_of``."""
        from flowdapt.errors import ValidationError

        if overrides is not None and not isinstance(overrides, dict):
            raise ValidationError("the input overrides must be a JSON object", field="input")
        original = await self.get(identifier)
        run_input = {**(await self.run_input(original)), **(overrides or {})}
        return await self.submit(
            original.workflow,
            run_input,
            namespace=original.namespace,
            wait=wait,
            source="rerun",
            rerun_of=str(original.uid),
        )

    def _wait_future(self, uid: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(uid, []).append(future)
        return future

    async def wait_final(self, uid: str, future: asyncio.Future | None = None) -> WorkflowRun:
        """The run once it ended, wherever it runs: woken by its ``workflow_finished`` event, and
        checking the database every few seconds in case an event was lost."""
        future = future or self._wait_future(uid)
        poll = max(1.0, float(self.server.settings.compute.lease_seconds))
        try:
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(future), timeout=poll)
                except TimeoutError:
                    pass
                active = self.active.get(uid)
                if active is not None and not active.done:
                    future = self._wait_future(uid) if future.done() else future
                    continue
                run = await self.store.get_run(uid)
                if run is None:
                    raise ResourceNotFoundError(f"Resource not found: run {uid} was deleted while waiting for it")
                if run.state.is_final:
                    return run
                if future.done():
                    future = self._wait_future(uid)
        finally:
            waiting = self._waiters.get(uid)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    self._waiters.pop(uid, None)

    async def start_claimed(self, run: WorkflowRun) -> None:
        """Run a run this server claimed from the queue (it holds the lease)."""
        server = self.server
        uid = str(run.uid)
        try:
            await self.refresh_code()
            workflow = await self.store.get("workflow", run.workflow)
            if workflow is None:
                raise ResourceNotFoundError(f"the workflow {run.workflow!r} was deleted before the run started")
            plan = self._plan(workflow)
            run.owner = server.identity
            run.executor = server.executor.name if server.executor is not None else run.executor
            context = prepare_run(
                plan,
                await self.run_input(run),
                settings=server.settings,
                executor=run.executor or server.settings.executor.backend,
                config=await self.store.list("config"),
                namespace=run.namespace,
                run=run,
            )
        except Exception as exc:
            if _retryable(exc):
                # The database went away between the claim and the start: nothing of the run ran,
                # so it goes back to the queue (not recorded failed, not counted as an attempt).
                log.warning("run %s cannot start yet (%s: %s); back to the queue", run.name, type(exc).__name__, exc)
                await self.unclaim(uid)
                return
            log.warning("run %s cannot start: %s: %s", run.name, type(exc).__name__, exc)
            run.state = RunState.failed
            run.error = RunError(type=type(exc).__name__, message=str(exc))
            run.result = [type(exc).__name__, str(exc)]
            run.finished_at = utcnow()
            try:
                await self.store.update_run(run)
            except Exception as record_exc:
                if not _retryable(record_exc):
                    raise
                log.warning("run %s: its failure could not be recorded yet (%s); back to the queue", run.name, record_exc)
                await self.unclaim(uid)  # claimed again later, it fails again, and is recorded then
                return
            await self.unclaim(uid)  # a final run is never claimed again; this only frees the lease
            self.announce_finished(run)
            return
        active = ActiveRun(plan=plan, context=context, leased=True)
        self.active[uid] = active
        self._names[run.name] = uid
        active.task = asyncio.create_task(self._admit_then_execute(active), name=f"flowdapt-run-{run.name}")

    async def unclaim(self, uid: str) -> bool:
        """Give back the lease of a claimed run that never started here, so any server claims it
        again (a run recorded failed before it started is never claimed again). When the database cannot be reached, the uid is kept in :attr:`unstarted`: the
        queue's heartbeat retries the release, and when the lease expired first, this server's
        reaper queues the run again instead of failing it as a run of a stopped server."""
        self.unstarted.add(uid)
        try:
            await self.store.release_lease(self.server.identity, uid)
        except Exception as exc:
            log.warning("run %s: its lease could not be given back yet (%s); retrying", uid, exc)
            return False
        self.unstarted.discard(uid)
        return True

    def mark_stopped(self, run: WorkflowRun, reason: str | None, state: RunState | None = None) -> None:
        self._mark_stopped(run, reason, state)

    def announce_finished(self, run: WorkflowRun) -> None:
        """Tell waiters, the event stream and the other servers that a run ended."""
        server = self.server
        self._wake_waiters(str(run.uid))
        server.event_bus.publish_nowait(
            envelope.workflow_finished(run, max_result_bytes=server.settings.event_bus.max_result_bytes)
        )
        if server.events.listening:
            server.events.publish("run_finished", run_event_data(run))

    # -- limits: executor.max_concurrent_runs, spec.max_active_runs ----------------------------

    def _limits(self, active: ActiveRun) -> tuple[int, int]:
        return int(self.server.settings.executor.max_concurrent_runs), int(active.plan.workflow.spec.max_active_runs)

    def _may_start(self, active: ActiveRun) -> bool:
        """Room for this run, and no run queued before it that has room too (first come, first served)."""
        for queued in self._queue:
            overall, per_workflow = self._limits(queued)
            workflow = queued.run.workflow
            room = (not overall or len(self._started) < overall) and (
                not per_workflow or sum(1 for w in self._started.values() if w == workflow) < per_workflow
            )
            if room:
                return queued is active
            if queued is active:
                return False
        return False

    def queue_position(self, uid: str) -> int | None:
        """1 for the next run to start, None for a run not waiting for a slot on this server."""
        for index, queued in enumerate(self._queue, start=1):
            if str(queued.run.uid) == uid:
                return index
        return None

    def queue_positions(self) -> dict[str, int]:
        """uid -> position of every run waiting for a slot here: one pass for a page of runs."""
        return {str(queued.run.uid): index for index, queued in enumerate(self._queue, start=1)}

    async def _admit_then_execute(self, active: ActiveRun) -> None:
        """Wait (``pending``) while the limits are reached, then run; a run cancelled or stopped
        while it waits is recorded so, without having started."""
        uid = str(active.run.uid)
        if any(self._limits(active)):
            self._queue.append(active)
            try:
                async with self._slots:
                    await self._slots.wait_for(lambda: self._may_start(active))
                    self._queue.remove(active)
                    self._started[uid] = active.run.workflow
                    self._slots.notify_all()  # the next in line may fit too
            except asyncio.CancelledError:
                if active in self._queue:
                    self._queue.remove(active)
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                self._mark_stopped(active.run, active.stop_reason)
                active.done = True
                await self._finish(active)
                await self._free_slot(uid)
                return
        self._started[uid] = active.run.workflow
        try:
            await self._execute(active)
        finally:
            await self._free_slot(uid)

    async def _free_slot(self, uid: str) -> None:
        self._started.pop(uid, None)
        if self._queue:
            async with self._slots:
                self._slots.notify_all()

    async def _execute(self, active: ActiveRun) -> None:
        server = self.server
        run = active.run
        events = server.events

        def listener(event: str, run: WorkflowRun, stage: str | None) -> None:
            active.dirty = True
            if events.listening and event != "run_finished":
                events.publish(event, run_event_data(run, stage))

        flusher = asyncio.create_task(self._flush_progress(active)) if self.persist else None
        writer = log_flusher = None
        if active.context.capture is not None:
            writer = active.log_writer = RunLogWriter(
                self.logs, str(run.uid), server.settings.logs.max_bytes_per_run
            )
            log_flusher = asyncio.create_task(writer.run(), name=f"flowdapt-logs-{run.name}")
        try:
            bus_listener = run_listener(
                server.event_bus, max_result_bytes=server.settings.event_bus.max_result_bytes, finished=False
            )
            await execute_plan(
                active.plan,
                active.context,
                server.executor,
                listeners=[listener, bus_listener],
                hooks=server.plugins.hook,
                log_sink=writer.add if writer is not None else None,
            )
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            self._mark_stopped(run, active.stop_reason)
        except Exception as exc:  # execute_plan records failures itself; this is a bug guard
            log.exception("run %s crashed", run.name)
            self._mark_stopped(run, f"{type(exc).__name__}: {exc}", state=RunState.failed)
        finally:
            active.done = True
            if flusher is not None:
                flusher.cancel()
            if writer is not None:
                # Stored before the final state, so whoever sees the run ended reads its whole log.
                # close() waits for a periodic flush in progress (the writer's lock) rather than
                # cancelling it: a flush cancelled mid-write would lose the batch it holds.
                await writer.close()
                log_flusher.cancel()
            await self._finish(active)

    def _mark_stopped(self, run: WorkflowRun, reason: str | None, state: RunState | None = None) -> None:
        """After a cancel: a user cancel is ``cancelled``; a server stop is ``failed`` with why."""
        if reason is None and state is None:
            if not run.state.is_final:
                run.state = RunState.cancelled
                run.result = ["RunCancelledError", "run cancelled"]
                run.error = RunError(type="RunCancelledError", message="run cancelled")
        else:
            run.state = state or RunState.failed
            run.result = ["ServerStoppedError", reason]
            run.error = RunError(type="ServerStoppedError", message=reason or "")
        for record in run.stages.values():
            if record.state in (StageState.pending, StageState.running):
                record.state = StageState.cancelled if record.state is StageState.running else StageState.skipped
                record.finished_at = record.finished_at or utcnow()
        run.finished_at = run.finished_at or utcnow()

    async def _flush_progress(self, active: ActiveRun) -> None:
        while not active.done:
            await asyncio.sleep(PROGRESS_FLUSH_SECONDS)
            if not active.dirty or active.done:
                continue
            async with active.write_lock:
                if active.done:
                    return
                active.dirty = False
                snapshot = active.run.model_copy(update={"result": None}, deep=True)
                try:
                    await self.store.update_run(snapshot)
                except Exception as exc:
                    if _retryable(exc):  # the final write retries; progress can wait
                        log.warning("could not store progress of run %s: %s", active.run.name, exc)
                    else:
                        log.exception("could not store progress of run %s", active.run.name)

    async def _finish(self, active: ActiveRun) -> None:
        if active.lease_lost or active.hand_back:
            await self._let_go(active)
            return
        server = self.server
        run = active.run
        saved = True
        try:
            if self.persist:
                saved = await self._save_final(active)
            else:
                await self._record_or_explain(run)
        except Exception:
            log.exception("could not store the final state of run %s", run.name)
        finally:
            uid = str(run.uid)
            if saved:
                self.active.pop(uid, None)
                self._names.pop(run.name, None)
            # else: it stays in self.active (GET /runs/{id} answers from memory) until saved.
            if active.leased and saved:
                try:
                    await self.store.release_lease(server.identity, uid)
                except Exception as exc:  # it expires by itself; the reaper sees a final run and skips it
                    log.warning("could not release the lease of run %s: %s", run.name, exc)
            self._wake_waiters(uid)
            for stage, record in run.stages.items():  # stage durations (Prometheus exposition)
                if record.started_at is not None and record.finished_at is not None:
                    seconds = (record.finished_at - record.started_at).total_seconds()
                    server.metrics.stage_done(run.workflow, stage, record.state.value, seconds)
            server.metrics.run_done(
                run.state is not RunState.finished,
                run.duration,
                workflow=run.workflow,
                executor=run.executor,
                namespace=run.namespace,
                source=run.source,
            )
            server.event_bus.publish_nowait(
                envelope.workflow_finished(run, max_result_bytes=server.settings.event_bus.max_result_bytes)
            )
            if server.events.listening:
                server.events.publish("run_finished", run_event_data(run))

    async def _let_go(self, active: ActiveRun) -> None:
        """A queued run this server stops without ending it: its lease went to another server
        (record nothing), or the server drains (queue it again for another server)."""
        from flowdapt.server.run_queue import queued_event, reset_for_queue

        run = active.run
        uid = str(run.uid)
        self.active.pop(uid, None)
        self._names.pop(run.name, None)
        if active.lease_lost:
            return
        reset_for_queue(run)
        try:
            await self.store.update_run(run)
            await self.store.release_lease(self.server.identity, uid)
        except Exception:
            log.exception("could not hand run %s back to the queue; its lease will expire and another server takes it", run.name)
            return
        log.info("run %s handed back to the queue (this server is stopping)", run.name)
        self.server.event_bus.publish_nowait(queued_event(run))

    async def _record_or_explain(self, run: WorkflowRun) -> WorkflowRun:
        """The run ready to store; a result that cannot be stored (for a reason retrying will not
        fix) is dropped with the reason in ``error``, and the run keeps its state."""
        try:
            return await self._record(run)
        except Exception as exc:
            if _retryable(exc):
                raise
            log.exception("could not store the result of run %s", run.name)
            run.result = None
            run.error = RunError(type=type(exc).__name__, message=f"the result could not be stored: {exc}")
            return run

    async def _save_final(self, active: ActiveRun) -> bool:
        """Store the final state once; when storage is full or unavailable, keep retrying in the
        background (so a finished run is recorded as finished once space is back) and say False."""
        try:
            record = await self._record_or_explain(active.run)
            async with active.write_lock:
                await self.store.update_run(record)
            return True
        except Exception as exc:
            if not _retryable(exc):
                raise
            log.warning(
                "run %s ended (%s) but its final state cannot be stored yet: %s; retrying until it can",
                active.run.name,
                active.run.state.value,
                exc,
            )
            active.saving = asyncio.create_task(self._retry_save(active), name=f"flowdapt-save-{active.run.name}")
            return False

    async def _retry_save(self, active: ActiveRun) -> None:
        run = active.run
        delay = FINAL_WRITE_FIRST_DELAY
        attempts = 1
        try:
            while True:
                await asyncio.sleep(delay)
                attempts += 1
                try:
                    record = await self._record_or_explain(run)
                    async with active.write_lock:
                        await self.store.update_run(record)
                except Exception as exc:
                    if not _retryable(exc):
                        log.exception("giving up storing the final state of run %s", run.name)
                        return
                    delay = min(delay * 2, FINAL_WRITE_MAX_DELAY)
                    continue
                log.info("stored the final state of run %s after %d attempts", run.name, attempts)
                return
        finally:
            self.active.pop(str(run.uid), None)
            self._names.pop(run.name, None)

    async def _record(self, run: WorkflowRun) -> WorkflowRun:
        """Normalize the result to JSON data; offload it when it is too large for the database."""
        if run.result is None:
            return run
        value, encoded = results.normalize(run.result)
        run.result = value
        limit = self.server.settings.compute.max_result_bytes
        if not self.persist or limit < 0 or len(encoded) <= limit:
            return run
        return await asyncio.to_thread(results.offload_if_large, self.server.settings, run)

    # -- cancelling ----------------------------------------------------------------------

    async def cancel(self, identifier: str) -> WorkflowRun:
        active = self.find_active(identifier)
        if active is not None:
            if active.task is not None and not active.task.done():
                active.task.cancel()
                await asyncio.wait([active.task])
            return active.run
        run = await self.get(identifier)
        if run.state.value in FINAL_STATES:
            raise RunNotActiveError(f"run {run.name} already ended ({run.state.value}); there is nothing to cancel")
        if self.queue:
            return await self._cancel_queued(run)
        # Not running here: its process died or is another server. Record the cancel.
        self._mark_stopped(run, None)
        run.error = RunError(
            type="RunCancelledError", message=f"cancelled while not running in this server (owner: {run.owner})"
        )
        await self.store.update_run(run)
        return run

    async def _cancel_queued(self, run: WorkflowRun) -> WorkflowRun:
        """Cancel a run of the queue that this server does not run: take it while it waits, or ask
        the server that holds it (over the event bus) and wait for it to end."""
        from flowdapt.server.run_queue import cancel_event

        server = self.server
        uid = str(run.uid)
        lease = float(server.settings.compute.lease_seconds)
        taken = await self.store.claim_runs(server.identity, lease, 1, uids=[uid])
        if taken:
            run = taken[0]
            self._mark_stopped(run, None)
            await self.store.update_run(run)
            await self.store.release_lease(server.identity, uid)
            self.announce_finished(run)
            return run
        future = self._wait_future(uid)
        await server.event_bus.publish(cancel_event(uid))
        try:
            return await asyncio.wait_for(self.wait_final(uid, future), timeout=max(10.0, 3 * lease))
        except TimeoutError:
            raise ServiceUnavailableError(
                f"asked the server holding run {run.name} ({run.owner}) to cancel it, and it has not ended yet; "
                "if that server is gone the run is failed when its lease expires"
            ) from None

    async def delete(self, identifier: str) -> WorkflowRun:
        active = self.find_active(identifier)
        if active is not None:
            raise RunNotActiveError(
                f"run {active.run.name} is still {active.run.state.value}; cancel it before deleting it"
            )
        run = await self.store.delete_run(identifier) if self.persist else None
        if run is None:
            raise ResourceNotFoundError(f"Resource not found: no workflow run with uid or name {identifier!r}")
        if self.logs is not self.store:  # a store with run logs deletes them with the run
            await self.logs.delete_run_logs(str(run.uid))
        await asyncio.to_thread(results.delete_result, self.server.settings, run)
        await asyncio.to_thread(results.delete_input, self.server.settings, run)
        return run

    # -- lifecycle -----------------------------------------------------------------------

    async def recover(self) -> int:
        """Mark failed the unfinished runs whose server process is gone. Returns how many. (With
        the run queue on, expired leases tell instead: server/run_queue.py.)"""
        if not self.persist or self.queue:
            return 0
        marked = 0
        stale = await self.store.list_runs(state=ACTIVE_STATES)
        from flowdapt.server.identity import owner_alive

        for run in stale:
            if run.owner and run.owner != self.server.identity and owner_alive(run.owner):
                continue
            reason = (
                f"the server process that ran it ({run.owner or 'unknown'}) stopped before the run finished; "
                "start the workflow again"
            )
            self._mark_stopped(run, reason)
            await self.store.update_run(run)
            marked += 1
        if marked:
            log.warning("marked %d run(s) of a stopped server as failed", marked)
        return marked

    async def retention_loop(self) -> None:
        if self.retention <= 0:
            return
        interval = min(60.0, max(1.0, self.retention / 10))
        while True:
            await self.expire()
            await asyncio.sleep(interval)

    async def expire(self, now: datetime | None = None) -> int:
        """Delete runs (and their offloaded results) older than the retention window."""
        if self.retention <= 0:
            return 0
        cutoff = (now or utcnow()) - timedelta(seconds=self.retention)
        try:
            removed = await self.store.delete_runs_before(cutoff)
            await asyncio.to_thread(results.sweep_results, self.server.settings, self.retention)
            await asyncio.to_thread(results.sweep_inputs, self.server.settings, self.retention)
        except Exception:
            log.exception("run retention cleanup failed")
            return 0
        if removed:
            log.info("deleted %d run(s) older than %s", removed, cutoff.isoformat())
        return removed

    async def shutdown(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        pending = [a.task for a in self.active.values() if a.task is not None and not a.task.done()]
        if pending:
            log.info("waiting up to %.0fs for %d run(s) to finish", timeout, len(pending))
            _, still = await asyncio.wait(pending, timeout=max(0.0, timeout))
            if still:
                reason = f"the server stopped (shutdown timeout {timeout:g}s) before the run finished; start the workflow again"
                for active in list(self.active.values()):
                    if active.task in still:
                        active.stop_reason = reason
                        active.task.cancel()
                await asyncio.wait(still, timeout=10)
        saving = [a.saving for a in self.active.values() if a.saving is not None and not a.saving.done()]
        await self._stop_saving(saving, deadline - loop.time())

    async def _stop_saving(self, saving: list[asyncio.Task], timeout: float) -> None:
        """Final writes still retrying get until the shutdown timeout; then the run is left for
        recover() at the next start (which marks it failed with the reason)."""
        if not saving:
            return
        _, still = await asyncio.wait(saving, timeout=timeout) if timeout > 0 else (set(), set(saving))
        for task in still:
            task.cancel()
        if still:
            log.error("%d finished run(s) could not be stored before the server stopped (storage full?)", len(still))
            await asyncio.wait(still, timeout=5)
