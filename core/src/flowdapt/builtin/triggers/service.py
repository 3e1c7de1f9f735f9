"""The trigger service: fires schedule rules at their due times and condition rules on events.

- Rules live in an in-memory cache, loaded once at start and kept current by ``resource_applied`` /
  ``resource_deleted`` events (plus a slow resync, ``triggers.resync_interval``, for servers that
  share a database but not a bus). An event costs no database query.
- Schedules: the service computes each rule's next due time and sleeps until the earliest one
  (no polling). A due time fires on exactly one server: the firing server wins a compare-and-set
  of the rule's ``flowdapt.ai/last_run`` annotation from the previous due time to this one.
- Conditions: the service subscribes to every event in the bus group ``triggers`` (each event
  reaches one server's trigger service) and evaluates the compiled rules, short-circuiting.
- Loop protection: the names of the rules that led to a run travel in its events
  (``headers.trigger_chain``). A rule that fires from its own chain more than
  ``triggers.loop_max_fires`` times in ``triggers.loop_window`` seconds is held back and reported
  (a ``trigger_rate_limited`` event, a warning, and ``status.last_error``).

The pieces the service composes live beside it: :mod:`.rule_state` (one rule's state and the
annotation's time format), :mod:`.rule_cache` (the compiled rules by uid and name),
:mod:`.loop_guard` (the loop window); this module holds the lifecycle, the event and schedule
loops, firing and the compare-and-set persistence of fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flowdapt.builtin.triggers import history
from flowdapt.builtin.triggers.actions import ActionContext
from flowdapt.builtin.triggers.clock import Clock
from flowdapt.builtin.triggers.loop_guard import admit
from flowdapt.builtin.triggers.rule_cache import RuleCache
from flowdapt.builtin.triggers.rule_state import (  # noqa: F401 - LAST_RUN stays importable from here (tests, harness)
    KIND,
    LAST_RUN,
    RuleState,
    aware,
    format_time,
    parse_time,
)
from flowdapt.errors import ResourceNotFoundError, ValidationError
from flowdapt.events import (
    CHANNEL_RESOURCES,
    CHANNEL_TRIGGERS,
    RESOURCE_APPLIED,
    RESOURCE_DELETED,
    TRIGGER_CHAIN_HEADER,
    TRIGGER_FAILED,
    TRIGGER_FIRED,
    TRIGGER_RATE_LIMITED,
    Event,
    EventBus,
    Subscription,
)
from flowdapt.resources.trigger import TriggerRule

log = logging.getLogger("flowdapt.triggers")

#: Bus group of the condition evaluators: one per event across all servers.
CONDITION_GROUP = "triggers"
#: Condition rules write their last fire to the database at most this often (seconds), off the
#: event path; the in-memory status is current at once.
PERSIST_DELAY = 1.0
#: Compare-and-set attempts of one history write before it gives up (the records stay pending
#: and go with the next write).
HISTORY_ATTEMPTS = 20


class TriggerService:
    """Runs the trigger rules of one server. ``start()`` / ``stop()``, or ``run()`` as a task."""

    def __init__(
        self,
        store,
        bus: EventBus,
        plugins,
        settings,
        *,
        clock: Clock | None = None,
        paused: Callable[[], bool] | None = None,
        identity: str | None = None,
    ):
        """``paused()`` true (a draining server) holds firings back: condition events are not
        evaluated and due times are left unclaimed, so another server can fire them."""
        self.store = store
        #: This server (``host:pid:boot``), named in the fire records it writes.
        self.identity = identity
        self.paused = paused or (lambda: False)
        self.bus = bus
        self.plugins = plugins
        self.settings = settings
        self.options = settings.triggers
        self.clock = clock or Clock()
        self._cache = RuleCache(plugins)
        #: uid -> name of every workflow, kept by resource events like the rules (run_workflow
        #: checks its workflow exists without a query on the event path).
        self._workflows: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._subscriptions: list[Subscription] = []
        self._tasks: set[asyncio.Task] = set()
        self._loops: list[asyncio.Task] = []
        self._http = None
        self._parked = False
        self.running = False
        self.events_seen = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.running:
            return
        self.running = True
        # Resource and trigger-report events reach every server (no group): each keeps its cache.
        # Subscribed before loading, so a rule applied meanwhile is not missed.
        self._subscriptions.append(
            await self.bus.subscribe(self._on_control, channels=[CHANNEL_RESOURCES, CHANNEL_TRIGGERS])
        )
        await self.reload()
        self._subscriptions.append(await self.bus.subscribe(self._on_event, group=CONDITION_GROUP))
        self._loops.append(asyncio.create_task(self._schedule_loop(), name="flowdapt-trigger-schedules"))
        if self.options.resync_interval > 0:
            self._loops.append(asyncio.create_task(self._resync_loop(), name="flowdapt-trigger-resync"))
        log.info(
            "trigger service started: %d schedule and %d condition rule(s)",
            sum(1 for s in self._cache.rules.values() if s.family == "schedule"),
            len(self._cache.conditions),
        )

    async def stop(self, timeout: float = 5.0) -> None:
        if not self.running:
            return
        self.running = False
        for sub in self._subscriptions:
            with contextlib.suppress(Exception):
                await sub.close()
        self._subscriptions.clear()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def run(self) -> None:
        """Start, then hold until cancelled; stop on the way out (a server background task)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self.stop())

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Return once no firing is in flight and the scheduler sleeps (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for _ in range(3):
                await asyncio.sleep(0)
            busy = [t for t in self._tasks if not t.done() and not t.get_name().startswith("flowdapt-persist")]
            if busy:
                await asyncio.wait(busy, timeout=max(0.0, deadline - loop.time()))
                continue
            if self._parked and not self._wake.is_set():
                return
            await asyncio.sleep(0.001)
        raise TimeoutError("the trigger service did not settle")

    # -- the rule cache ----------------------------------------------------------------------

    async def reload(self) -> None:
        """Read every rule from the database and make the cache match it."""
        self._workflows = {str(w.metadata.uid): w.metadata.name for w in await self.store.list("workflow")}
        rules = await self.store.list(KIND)
        seen = set()
        for rule in rules:
            seen.add(str(rule.metadata.uid))
            self.upsert(rule)  # type: ignore[arg-type]
        for uid in [u for u in self._cache.rules if u not in seen]:
            self.remove(uid)

    def upsert(self, rule: TriggerRule) -> RuleState:
        """Add or replace a rule in the cache; a changed schedule rule gets its next due time."""
        state, changed = self._cache.upsert(rule)
        if changed:
            if state.family == "schedule":
                self._plan(state, self.clock.now())
            self._wake.set()
        return state

    def remove(self, uid: str) -> None:
        if self._cache.remove(uid):
            self._wake.set()

    def find(self, identifier: str) -> RuleState | None:
        return self._cache.find(identifier)

    # -- events ------------------------------------------------------------------------------

    async def _on_control(self, event: Event) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        if event.type in (RESOURCE_APPLIED, RESOURCE_DELETED):
            if data.get("kind") == "workflow" and isinstance(data.get("uid"), str):
                if event.type == RESOURCE_DELETED:
                    self._workflows.pop(data["uid"], None)
                else:
                    self._workflows[data["uid"]] = str(data.get("name"))
                return
            if data.get("kind") != KIND:
                return
            if event.type == RESOURCE_DELETED:
                self.remove(str(data.get("uid")))
                return
            doc = data.get("resource")
            if isinstance(doc, dict):
                try:
                    self.upsert(TriggerRule.model_validate(doc))
                except Exception as exc:  # a document this version cannot read
                    log.warning("ignoring trigger rule update %s: %s", data.get("name"), exc)
        elif event.type == TRIGGER_FAILED:
            state = self.find(str(data.get("rule") or ""))
            if state is not None:
                error = data.get("error")
                state.last_error = ": ".join(map(str, error)) if isinstance(error, list) else str(error)

    async def _on_event(self, event: Event) -> None:
        self.events_seen += 1
        conditions = self._cache.conditions
        if not conditions or self.paused():
            return
        data = event.as_dict()
        for state in conditions:
            try:
                matched = state.compiled.compiled(data)  # type: ignore[union-attr]
            except Exception as exc:  # a rule must not break the others
                log.warning("trigger rule %s failed on event %s: %s", state.name, event.type, exc)
                continue
            if matched:
                chain = event.trigger_chain
                if not self._admit(state, chain, event):
                    continue
                state.fires += 1
                state.last_fire = self.clock.now()
                self._persist_later(state)
                ctx = self._context(state, event=event, chain=chain)
                self._spawn(self._run_action(state, ctx), f"flowdapt-trigger-{state.name}")

    # -- loop protection ---------------------------------------------------------------------

    def _admit(self, state: RuleState, chain: list[str], event: Event | None) -> bool:
        window = self.options.loop_window
        admitted, message = admit(state, chain, self.clock.now().timestamp(), window, self.options.loop_max_fires)
        if message is not None:
            log.warning("%s", message)
            self.bus.publish_nowait(
                Event(
                    channel=CHANNEL_TRIGGERS,
                    source="trigger",
                    type=TRIGGER_RATE_LIMITED,
                    headers={TRIGGER_CHAIN_HEADER: list(chain)},
                    data={
                        "rule": state.name,
                        "uid": state.uid,
                        "chain": list(chain),
                        "fires": len(state.cyclic),
                        "window": window,
                        "event": str(event.id) if event is not None else None,
                        "message": message,
                    },
                )
            )
        return admitted

    # -- firing ------------------------------------------------------------------------------

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def http(self):
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient()
        return self._http

    def _context(
        self, state: RuleState, *, event: Event | None = None, due: datetime | None = None, chain: list[str] = ()
    ) -> ActionContext:
        chain = list(chain)
        if state.name not in chain:
            chain.append(state.name)
        return ActionContext(
            rule=state.rule,
            bus=self.bus,
            settings=self.settings,
            event=event,
            due=due,
            chain=chain,
            http=self.http if state.compiled is not None and state.compiled.action_name == "webhook" else None,
            workflow_exists=self.workflow_exists,
        )

    async def _run_action(self, state: RuleState, ctx: ActionContext, *, manual: bool = False) -> Any:
        compiled = state.compiled
        assert compiled is not None
        base = {
            "rule": state.name,
            "uid": state.uid,
            "type": compiled.rule.spec.type,
            "action": compiled.action_name,
            "event": str(ctx.event.id) if ctx.event is not None else None,
            "event_type": ctx.event.type if ctx.event is not None else None,
            "due": format_time(ctx.due),
            "manual": manual,
        }
        headers = {TRIGGER_CHAIN_HEADER: list(ctx.chain)}
        try:
            result = await compiled.action(compiled.params, ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state.last_error = f"{type(exc).__name__}: {exc}"
            self._note_fire(state, base, error=[type(exc).__name__, str(exc)])
            log.warning("trigger rule %s: action %s failed: %s", state.name, compiled.action_name, state.last_error)
            await self.bus.publish(
                Event(
                    channel=CHANNEL_TRIGGERS,
                    source="trigger",
                    type=TRIGGER_FAILED,
                    headers=headers,
                    data={**base, "error": [type(exc).__name__, str(exc)]},
                )
            )
            raise
        self._note_fire(state, base, result=result)
        await self.bus.publish(
            Event(channel=CHANNEL_TRIGGERS, source="trigger", type=TRIGGER_FIRED, headers=headers, data={**base, "result": result})
        )
        return result

    async def workflow_exists(self, identifier: str) -> bool:
        """Whether a workflow of this name or uid exists: from the cache, else (a workflow applied
        through a server this one shares no bus with) from the database."""
        if identifier in self._workflows or identifier in self._workflows.values():
            return True
        workflow = await self.store.get("workflow", identifier)
        if workflow is None:
            return False
        self._workflows[str(workflow.metadata.uid)] = workflow.metadata.name
        return True

    # -- fire history (history.py) ---------------------------------------------------------------

    def _note_fire(self, state: RuleState, base: dict[str, Any], *, result: Any = None, error: list[str] | None = None) -> None:
        size = self.options.history_size
        if size <= 0:
            return
        record = history.make_record(
            time=format_time(self.clock.now()) or "",
            rule=state.name,
            action=base.get("action"),
            manual=bool(base.get("manual")),
            due=base.get("due"),
            event=base.get("event"),
            server=self.identity,
            result=result,
            error=error,
        )
        state.pending_history.insert(0, record)
        del state.pending_history[size:]
        if not base.get("manual") and (state.history_task is None or state.history_task.done()):
            state.history_task = self._spawn(self._write_history_later(state), f"flowdapt-persist-history-{state.name}")

    async def _write_history_later(self, state: RuleState) -> None:
        await asyncio.sleep(PERSIST_DELAY)
        await self.write_history(state)

    async def write_history(self, state: RuleState) -> None:
        """Merge the rule's pending fire records into its stored history (compare-and-set, retried
        when another server wrote meanwhile). One write at a time per rule in this process; each
        takes every record pending, so concurrent fires share a write."""
        async with state.history_lock:
            if not state.pending_history:
                return
            pending = list(state.pending_history)
            size = self.options.history_size
            raw = state.history_raw if state.history_known else state.rule.metadata.annotations.get(history.HISTORY)
            try:
                for attempt in range(HISTORY_ATTEMPTS):
                    if attempt:  # lost the race (or our view was stale): read what is stored now
                        await asyncio.sleep(random.uniform(0, 0.005 * attempt))
                        current = await self.store.get(KIND, state.uid)
                        if current is None:
                            state.pending_history.clear()
                            return
                        raw = current.metadata.annotations.get(history.HISTORY)
                    value = history.encode(history.merge(pending, history.parse(raw), size))
                    if await self.store.compare_and_set_annotation(KIND, state.uid, history.HISTORY, raw, value):
                        state.history_raw, state.history_known = value, True
                        written = {r["id"] for r in pending}
                        state.pending_history[:] = [r for r in state.pending_history if r["id"] not in written]
                        return
                log.warning("trigger rule %s: could not record its fire history (too many concurrent writers)", state.name)
            except Exception:
                log.exception("trigger rule %s: could not record its fire history", state.name)

    async def history(self, identifier: str, limit: int | None = None) -> dict[str, Any]:
        """``{rule, uid, items}``: the rule's recent fires, newest first: the stored history (every
        server's) and this server's records not written yet."""
        rule = await self.store.get(KIND, identifier)
        if rule is None:
            raise ResourceNotFoundError(f"Resource not found: no trigger_rule with uid or name {identifier!r}")
        state = self.find(str(rule.metadata.uid))
        pending = list(state.pending_history) if state is not None else []
        size = max(self.options.history_size, 1)
        records = history.merge(pending, history.stored(rule), size)
        items = records[:limit] if limit is not None else records
        return {"rule": rule.metadata.name, "uid": str(rule.metadata.uid), "items": items}

    async def _run_action_logged(self, state: RuleState, ctx: ActionContext) -> None:
        with contextlib.suppress(Exception):
            await self._run_action(state, ctx)

    async def fire(self, identifier: str, *, event: dict[str, Any] | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Fire a rule's action now, whatever its schedule or condition (testing a rule).

        ``event`` (an envelope mapping; ``type`` and ``data`` are enough) is what ``{var: ...}``
        parameters read, and a condition rule reports whether it would have matched it. With
        ``dry_run`` nothing runs. Manual fires do not move a schedule's last fire time."""
        state = self.find(identifier)
        if state is None:
            rule = await self.store.get(KIND, identifier)
            if rule is None:
                raise ResourceNotFoundError(f"Resource not found: no trigger_rule with uid or name {identifier!r}")
            state = self.upsert(rule)  # type: ignore[arg-type]
        if state.compiled is None:
            raise ValidationError(state.error or f"trigger rule {state.name!r} is not active")
        envelope = None
        if event is not None:
            if not isinstance(event, dict):
                raise ValidationError("the event must be a JSON object (an event envelope)", field="event")
            try:
                envelope = Event.model_validate({"channel": "manual", "source": "manual", **event})
            except Exception as exc:
                raise ValidationError(f"not an event envelope: {exc}", field="event") from None
        matched = None
        if state.family == "condition" and envelope is not None:
            matched = bool(state.compiled.compiled(envelope.as_dict()))
        answer: dict[str, Any] = {"rule": state.name, "uid": state.uid, "type": state.rule.spec.type, "matched": matched}
        if dry_run:
            return {**answer, "fired": False, "dry_run": True}
        ctx = self._context(state, event=envelope, chain=envelope.trigger_chain if envelope is not None else [])
        try:
            result = await self._run_action(state, ctx, manual=True)
        except Exception as exc:
            await self.write_history(state)
            return {**answer, "fired": False, "error": [type(exc).__name__, str(exc)]}
        await self.write_history(state)
        return {**answer, "fired": True, "result": result}

    # -- schedules ---------------------------------------------------------------------------

    def _plan(self, state: RuleState, now: datetime) -> None:
        """Set the first due time of a (re)loaded schedule rule, applying its misfire policy."""
        schedule = state.compiled.compiled  # type: ignore[union-attr]
        meta = state.rule.metadata
        base = aware(meta.updated_at)
        if state.last_fire is not None and state.last_fire > base:
            base = state.last_fire
        missed = schedule.last_due(base, now) if base < now else None
        if missed is not None and (
            state.rule.spec.misfire == "fire_once" or (now - missed).total_seconds() <= self.options.misfire_grace
        ):
            state.next_fire = missed  # fires at once, as one firing for all the missed due times
        else:
            state.next_fire = schedule.next_after(now)

    async def _schedule_loop(self) -> None:
        clock = self.clock
        while True:
            self._wake.clear()
            now = clock.now()
            earliest: datetime | None = None
            for state in list(self._cache.rules.values()):
                due = state.next_fire
                if due is None or state.family != "schedule":
                    continue
                if due <= now:
                    schedule = state.compiled.compiled  # type: ignore[union-attr]
                    late = (now - due).total_seconds() > self.options.misfire_grace
                    # Late (the process stalled): the missed due times collapse into one firing,
                    # or none with misfire: skip.
                    state.next_fire = schedule.next_after(now if late else due)
                    if not (late and state.rule.spec.misfire == "skip"):
                        self._spawn(self._fire_due(state, due), f"flowdapt-trigger-{state.name}")
                    due = state.next_fire
                    if due is None:
                        continue
                if earliest is None or due < earliest:
                    earliest = due
            self._parked = True
            try:
                await clock.sleep_until(earliest, self._wake)
            finally:
                self._parked = False

    async def _claim(self, state: RuleState, due: datetime) -> bool:
        """Win the right to fire ``due``: compare-and-set the last-run annotation to it."""
        value = format_time(due)
        expected = state.last_raw
        for _ in range(5):
            if await self.store.compare_and_set_annotation(KIND, state.uid, LAST_RUN, expected, value):
                state.last_raw, state.last_fire = value, due
                return True
            current = await self.store.get(KIND, state.uid)
            if current is None:
                return False
            stored_raw = current.metadata.annotations.get(LAST_RUN)
            stored = parse_time(stored_raw)
            if stored is not None and stored >= due:
                state.last_raw, state.last_fire = stored_raw, stored
                return False  # another server fired it
            expected = stored_raw
        return False

    async def _fire_due(self, state: RuleState, due: datetime) -> None:
        if self.paused():
            log.info("trigger rule %s: due time %s not fired, the server is draining", state.name, format_time(due))
            return
        try:
            if not await self._claim(state, due):
                return
        except Exception:
            log.exception("trigger rule %s: could not record its firing; not fired", state.name)
            return
        state.fires += 1
        lateness = (self.clock.now() - due).total_seconds()
        log.info("trigger rule %s fired for %s (%.3fs after due)", state.name, format_time(due), lateness)
        await self._run_action_logged(state, self._context(state, due=due))

    # -- persistence of condition fires --------------------------------------------------------

    def _persist_later(self, state: RuleState) -> None:
        if state.persist_task is None or state.persist_task.done():
            state.persist_task = self._spawn(self._persist(state), f"flowdapt-persist-{state.name}")

    async def _persist(self, state: RuleState) -> None:
        await asyncio.sleep(PERSIST_DELAY)
        state.persist_task = None
        value = format_time(state.last_fire)
        if value is None:
            return
        expected = state.last_raw
        try:
            for _ in range(5):
                if await self.store.compare_and_set_annotation(KIND, state.uid, LAST_RUN, expected, value):
                    state.last_raw = value
                    return
                current = await self.store.get(KIND, state.uid)
                if current is None:
                    return
                stored_raw = current.metadata.annotations.get(LAST_RUN)
                stored = parse_time(stored_raw)
                if stored is not None and state.last_fire is not None and stored >= state.last_fire:
                    state.last_raw = stored_raw
                    return
                expected = stored_raw
        except Exception:
            log.exception("trigger rule %s: could not record its last fire", state.name)

    # -- resync --------------------------------------------------------------------------------

    async def _resync_loop(self) -> None:
        interval = self.options.resync_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reload()
            except Exception:
                log.exception("trigger rules could not be reloaded")

    # -- status --------------------------------------------------------------------------------

    def status(self, identifier: str, rule: TriggerRule | None = None) -> dict[str, Any] | None:
        """What ``GET /triggers/{id}`` adds as ``status``: next and last fire, counts, errors, and
        the last fire's outcome (from ``rule``'s stored history, as read from the database, and this
        server's records not written yet)."""
        state = self.find(identifier)
        if state is None:
            return None
        stored = history.stored(rule if rule is not None else state.rule)
        latest = history.merge(list(state.pending_history), stored, 1)
        return {
            "last_outcome": latest[0] if latest else None,
            "active": state.compiled is not None,
            "next_fire": format_time(state.next_fire) if state.family == "schedule" else None,
            "last_fire": format_time(state.last_fire),
            "fires": state.fires,
            "rate_limited": state.rate_limited,
            "last_error": state.last_error,
            "error": state.error,
        }

    def next_fire_in(self, identifier: str) -> timedelta | None:
        state = self.find(identifier)
        if state is None or state.next_fire is None:
            return None
        return state.next_fire - self.clock.now()
