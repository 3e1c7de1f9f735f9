"""What the trigger service knows about one rule: the rule, its compiled form, its last and next
fire, its loop-protection window; and the timestamp convention of the ``last_run`` annotation."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flowdapt.builtin.triggers.rules import CompiledRule
from flowdapt.resources.trigger import TriggerRule

KIND = "trigger_rule"
#: The original's annotation: when the rule last fired (naive UTC ISO). For schedules, the due time.
LAST_RUN = "flowdapt.ai/last_run"


def parse_time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except (TypeError, ValueError):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_time(value: datetime | None) -> str | None:
    """Naive UTC ISO, the API's timestamp convention."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat()


def aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(eq=False)
class RuleState:
    """One cached rule and what the service knows about its firing."""

    rule: TriggerRule
    compiled: CompiledRule | None
    error: str | None = None
    last_raw: str | None = None
    last_fire: datetime | None = None
    next_fire: datetime | None = None
    fires: int = 0
    last_error: str | None = None
    cyclic: deque = field(default_factory=deque)
    rate_limited: bool = False
    persist_task: asyncio.Task | None = None
    #: Fire records not yet written to the rule's history annotation (newest first).
    pending_history: list = field(default_factory=list)
    history_task: asyncio.Task | None = None
    #: The history annotation as this server last wrote or read it (the compare-and-set's
    #: expected value, so a write needs no read unless another server wrote meanwhile).
    history_raw: str | None = None
    history_known: bool = False
    #: One history write at a time per rule in this process (a write takes every pending record).
    history_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def uid(self) -> str:
        return str(self.rule.metadata.uid)

    @property
    def name(self) -> str:
        return self.rule.metadata.name

    @property
    def family(self) -> str | None:
        return self.compiled.family if self.compiled is not None else None

    def note_stored_last_run(self, raw: str | None) -> None:
        """Take the stored annotation if it is newer than what we know."""
        stored = parse_time(raw)
        if stored is not None and (self.last_fire is None or stored >= self.last_fire):
            self.last_fire = stored
            self.last_raw = raw
        elif self.last_raw is None:
            self.last_raw = raw
