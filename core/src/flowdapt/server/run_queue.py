"""The durable run queue: several servers on one database, no run lost when a process dies.

With the queue on (``compute.run_queue``: ``auto`` turns it on when the event bus crosses processes,
i.e. is not ``memory://``, and the document store has the run-queue capability), a run goes:

1. **Recorded.** Any API server checks the request, records the run ``pending`` (with its input) and
   answers; ``wait=true`` waits for the run's ``workflow_finished`` event from whichever server runs
   it (with a slow poll of the database in case an event is lost).
2. **Claimed.** Every compute server claims pending runs from the database (``claim_runs``: one
   owner per run, ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
   SQLite), as many as it has room for (``executor.max_concurrent_runs``), when told of a new run
   (a local submit or a ``run_queued`` event) and every ``compute.queue_poll_seconds``.
3. **Held.** The claim is a lease of ``compute.lease_seconds``, renewed by a heartbeat three times
   per lease. A server that loses a lease (it was cut off for longer than that) stops the run
   without recording it: another server has it now.
4. **Taken over.** Every compute server looks for expired leases (``claim_expired``): the holder
   died (``kill -9``, a lost host). The run is run again when its workflow allows (``spec.retries``,
   counted in the run's ``attempt``), else recorded ``failed`` with the reason: a claimed run may
   have started even when its record still says pending, so it is never run again silently. The time from a kill to the run running again is at most
   the lease plus one reaper interval (``lease_seconds / 2``). Two runs of this server look like a
   stopped server's and are not: one ended whose final state is not stored yet (the database is
   away; it stays in ``runs.active`` and its lease is renewed until written), and one claimed but
   not started when the database went away (``runs.unstarted``: its lease is given back, by the
   heartbeat or by this server's reaper, so it is queued again without counting an attempt). A
   third: a claim whose answer was lost (the UPDATE committed as the connection dropped) leased
   runs here that this server never heard of; the next claim or reaper pass finds them by their
   lease (``_adopt_lost_claims``) and starts them.
5. **Drained.** A compute server that stops (SIGTERM, a rolling restart) claims nothing more, lets
   its runs finish within ``api.shutdown_timeout`` and hands the rest back to the queue (pending
   again, not counted as a retry), so another server runs them.

Cancelling a run held by another server publishes ``run_cancel_requested``; the holder cancels it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

from flowdapt.errors import transient_storage_error
from flowdapt.events import CHANNEL_WORKFLOWS, Event
from flowdapt.resources.run import RunError, RunState, WorkflowRun

if TYPE_CHECKING:
    from flowdapt.server.core import FlowdaptServer

log = logging.getLogger("flowdapt.server.queue")

RUN_QUEUED = "com.event.workflow.run_queued"
RUN_CANCEL_REQUESTED = "com.event.workflow.run_cancel_requested"
#: Runs one claim takes when ``executor.max_concurrent_runs`` is 0 (no limit).
CLAIM_BATCH = 32
#: Pending runs looked at for claims whose answer was lost (the claim takes the oldest first).
ADOPT_SCAN_LIMIT = 5000


def queue_enabled(server: FlowdaptServer) -> bool:
    """Whether runs go through the database's run queue (see the module docstring)."""
    mode = server.settings.compute.run_queue
    capable = bool(getattr(server.store, "run_queue", False))
    if mode == "off":
        return False
    if mode == "on":
        if not capable:
            from flowdapt.errors import ConfigurationError

            raise ConfigurationError(
                f"compute.run_queue is on, but the document store {server.settings.database.backend!r} has no run "
                "queue; use sqlite (one machine) or postgres (several hosts)"
            )
        return True
    return capable and server.event_bus.name != "memory"


def reset_for_queue(run: WorkflowRun) -> None:
    """Make a run pending again, as if just recorded (its input, name and origin stay)."""
    run.state = RunState.pending
    run.stages = {}
    run.error = None
    run.result = None
    run.result_ref = None
    run.finished_at = None
    run.owner = None


def queued_event(run: WorkflowRun) -> Event:
    return Event(channel=CHANNEL_WORKFLOWS, source="api", type=RUN_QUEUED, data={"uid": str(run.uid), "workflow": run.workflow})


def cancel_event(uid: str) -> Event:
    return Event(channel=CHANNEL_WORKFLOWS, source="api", type=RUN_CANCEL_REQUESTED, data={"uid": uid})


class RunQueueWorker:
    """The compute side of the queue: claim loop, lease heartbeat, reaper of expired leases."""

    def __init__(self, server: FlowdaptServer):
        self.server = server
        self.store = server.store
        self.runs = server.runs
        self.owner = server.identity
        settings = server.settings
        self.lease = float(settings.compute.lease_seconds)
        self.poll = float(settings.compute.queue_poll_seconds)
        self.max_runs = int(settings.executor.max_concurrent_runs)
        self.wake = asyncio.Event()
        self.claiming = True
        self._subscription = None
        #: A claim failed on the way back (the database dropped the connection): its UPDATE may
        #: have committed, leasing runs to this server that it never heard of (see _adopt_lost_claims).
        self._claim_uncertain = False
        self._adopting = asyncio.Lock()
        #: uids claimed and being started (not in ``runs.active`` yet): not lost, not to adopt.
        self._starting: set[str] = set()

    async def start(self) -> None:
        self._subscription = await self.server.event_bus.subscribe(self._on_event, channels=[CHANNEL_WORKFLOWS])
        self.server.spawn(self._claim_loop(), "flowdapt-queue-claims")
        self.server.spawn(self._heartbeat_loop(), "flowdapt-queue-heartbeat")
        self.server.spawn(self._reaper_loop(), "flowdapt-queue-reaper")
        self.wake.set()

    async def stop_claiming(self) -> None:
        self.claiming = False
        self.wake.set()
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            try:
                await subscription.close()
            except Exception:
                log.exception("closing the run-queue subscription failed")

    async def _on_event(self, event: Event) -> None:
        if event.type == RUN_QUEUED:
            self.wake.set()
        elif event.type == RUN_CANCEL_REQUESTED:
            uid = (event.data or {}).get("uid") if isinstance(event.data, dict) else None
            active = self.runs.active.get(uid) if isinstance(uid, str) else None
            if active is not None and active.task is not None and not active.task.done():
                log.info("run %s: cancel requested through the event bus", active.run.name)
                active.task.cancel()

    def room(self) -> int:
        if self.max_runs <= 0:
            return CLAIM_BATCH
        return max(0, self.max_runs - len(self.runs.active))

    async def claim_now(self) -> int:
        """Claim and start what there is room for; returns how many runs started."""
        if not self.claiming or self.server.draining:
            return 0
        room = self.room()
        if room <= 0:
            return 0
        adopted = await self._adopt_lost_claims() if self._claim_uncertain else 0
        try:
            claimed = await self.store.claim_runs(self.owner, self.lease, room)
        except Exception as exc:
            if transient_storage_error(exc):
                self._claim_uncertain = True
            raise
        await self._start(claimed)
        return len(claimed) + adopted

    async def _start(self, claimed: list[WorkflowRun]) -> None:
        self._starting.update(str(run.uid) for run in claimed)
        try:
            for run in claimed:
                await self.runs.start_claimed(run)
        except BaseException:
            self._claim_uncertain = True  # the rest of the batch is leased here, not started
            raise
        finally:
            self._starting.difference_update(str(run.uid) for run in claimed)

    async def _adopt_lost_claims(self) -> int:
        """After a claim whose answer was lost: find the pending runs the database leased to this
        server that it never started (a lease held by this live server on a run not in its memory
        can only be such a claim) and start them, instead of letting their leases expire into a
        "server stopped" failure. Runs being given back (``runs.unstarted``) are left to that."""
        async with self._adopting:  # the claim loop and the reaper both call it
            if not self._claim_uncertain:
                return 0
            # Newest first: the oldest pending runs (the ones a claim takes) are the last page.
            count = await self.store.count_runs(state="pending")
            pending = await self.store.list_runs(state="pending", limit=ADOPT_SCAN_LIMIT, offset=max(0, count - ADOPT_SCAN_LIMIT))

            def ours_unknown(uid: str) -> bool:
                return uid not in self.runs.active and uid not in self.runs.unstarted and uid not in self._starting

            candidates = [run for run in pending if ours_unknown(str(run.uid))]
            held = await self.store.renew_leases(self.owner, [str(run.uid) for run in candidates], self.lease) if candidates else set()
            self._claim_uncertain = False
            lost = [run for run in candidates if str(run.uid) in held and ours_unknown(str(run.uid))]
            for run in lost:
                log.warning("run %s: leased to this server by a claim whose answer was lost; starting it", run.name)
            await self._start(lost)
            return len(lost)

    async def _claim_loop(self) -> None:
        while self.claiming:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=self.poll)
            except TimeoutError:
                pass
            self.wake.clear()
            try:
                while self.claiming and await self.claim_now() and self.room() > 0:
                    pass  # runs were claimed and there is room: there may be more
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("claiming runs failed (will retry): %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(min(self.poll, 1.0))

    async def _heartbeat_loop(self) -> None:
        interval = self.lease / 3
        while True:
            await asyncio.sleep(interval)
            for uid in list(self.runs.unstarted):  # claims that never started: give them back
                if not await self.runs.unclaim(uid):
                    break  # the database is still away: the next beat tries again
            # A run that ended but whose final state is not stored yet (the database is back
            # only now) is still held here: its lease is renewed until the record is written.
            held_here = [uid for uid, active in self.runs.active.items() if active.leased]
            if not held_here:
                continue
            try:
                held = await self.store.renew_leases(self.owner, held_here, self.lease)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("renewing the leases of %d run(s) failed: %s: %s", len(held_here), type(exc).__name__, exc)
                continue
            for uid in set(held_here) - set(held):
                active = self.runs.active.get(uid)
                if active is None or active.done:
                    continue
                log.error(
                    "run %s: this server lost its lease (cut off for more than %gs); another server has it now, "
                    "stopping it here without recording",
                    active.run.name,
                    self.lease,
                )
                active.lease_lost = True
                if active.task is not None:
                    active.task.cancel()

    async def _reaper_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 2 * (0.75 + random.random() / 2))
            if self.server.draining:
                continue
            try:
                if self._claim_uncertain:  # before its leases count as a stopped server's
                    await self._adopt_lost_claims()
                expired = await self.store.claim_expired(self.owner, self.lease, 10)
                for run in expired:
                    await self._take_over(run)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("looking for runs of stopped servers failed: %s: %s", type(exc).__name__, exc)

    async def _take_over(self, run: WorkflowRun) -> None:
        """A run whose holder's lease expired (now leased to us): queue it again or fail it."""
        holder = run.owner or "a server"
        uid = str(run.uid)
        active = self.runs.active.get(uid)
        if active is not None:
            # Our own run (running, or ended with its final state not stored yet), whose lease
            # ran out while the database was out of reach: it goes on here (the claim just
            # renewed the lease); running it again would run it twice.
            active.leased = True
            log.warning("run %s: its lease expired while the database was unreachable; renewed, it goes on here", run.name)
            return
        if uid in self.runs.unstarted:
            # Claimed here but never started (the database went away in between): queue it again.
            await self.runs.unclaim(uid)
            log.warning("run %s: claimed here but not started before the database went away; queued again", run.name)
            self.wake.set()
            return
        # A run's record may still say pending while it runs (progress is written every 0.5 s):
        # a lease is only taken to start the run at once, so an expired one counts as a started
        # run, whatever the record says; the workflow's retries decide.
        workflow = await self.store.get("workflow", run.workflow)
        retries = workflow.spec.retries if workflow is not None else 0
        if run.attempt < retries:
            run.attempt += 1
            reset_for_queue(run)
            await self.store.update_run(run)
            await self.store.release_lease(self.owner, uid)
            log.warning(
                "run %s: %s stopped while running it (its lease expired); running it again (attempt %d of %d)",
                run.name,
                holder,
                run.attempt + 1,
                retries + 1,
            )
            self.wake.set()
            return
        reason = (
            f"the compute server running it ({holder}) stopped: its lease expired after {self.lease:g}s without a "
            f"heartbeat; the workflow allows {retries} retr{'y' if retries == 1 else 'ies'} (spec.retries)"
            + (f" and {run.attempt} were used" if run.attempt else "")
        )
        self.runs.mark_stopped(run, reason)
        run.error = RunError(type="ServerStoppedError", message=reason)
        await self.store.update_run(run)
        await self.store.release_lease(self.owner, uid)
        log.error("run %s failed: %s", run.name, reason)
        self.runs.announce_finished(run)

    async def hand_back(self, timeout: float) -> None:
        """Drain: let local runs finish within ``timeout``; queue the rest again for other servers."""
        await self.stop_claiming()
        pending = [a.task for a in self.runs.active.values() if a.task is not None and not a.task.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=max(0.0, timeout))
            for active in list(self.runs.active.values()):
                if active.task in still and active.leased:
                    active.hand_back = True
                    active.task.cancel()
            if still:
                await asyncio.wait(still, timeout=10)

