"""The ``workflow_run`` record: one execution of a workflow, with per-stage state and progress."""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowdapt.resources.base import NaiveDatetime, _naive, utcnow

_ADJECTIVES = (
    "amber brave calm daring eager fancy gentle happy icy jolly keen lively merry nimble "
    "olive proud quick rapid silent tidy upbeat vivid witty young zesty bold crisp dusty "
    "frosty golden hidden lucky misty noble polar rustic sunny swift"
).split()
_NOUNS = (
    "otter falcon badger heron lynx marten panda quokka raven salmon tapir walrus yak zebra "
    "bison cobra dingo egret ferret gecko ibis jackal koala lemur moose newt ocelot puffin "
    "robin stork toucan viper wombat"
).split()


def run_name() -> str:
    """``<adjective>-<animal>-<8 hex>``, like the original's coolname-based names."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.token_hex(4)}"


class RunState(StrEnum):
    pending = "pending"
    running = "running"
    finished = "finished"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (RunState.finished, RunState.failed, RunState.cancelled)


class StageState(StrEnum):
    pending = "pending"
    running = "running"
    finished = "finished"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"


class ItemFailure(BaseModel):
    index: int
    error: list[str]


class StageRun(BaseModel):
    model_config = ConfigDict(extra="ignore")

    state: StageState = StageState.pending
    started_at: NaiveDatetime | None = None
    finished_at: NaiveDatetime | None = None
    #: Map stages: items in the list, items done (succeeded or failed), items failed.
    items_total: int | None = None
    items_done: int = 0
    items_failed: int = 0
    #: The first failures of a map stage (capped), so they are never dropped silently.
    failures: list[ItemFailure] = Field(default_factory=list)
    attempts: int = 0
    error: list[str] | None = None


class RunError(BaseModel):
    type: str
    message: str
    stage: str | None = None
    traceback: str = ""


class WorkflowRun(BaseModel):
    model_config = ConfigDict(extra="ignore")

    uid: UUID = Field(default_factory=uuid4)
    name: str = Field(default_factory=run_name)
    workflow: str
    started_at: NaiveDatetime = Field(default_factory=utcnow)
    finished_at: NaiveDatetime | None = None
    result: Any = None
    state: RunState = RunState.pending
    source: str | None = "manual"
    # Our additions; the original's clients ignore extra fields.
    namespace: str = "default"
    executor: str | None = None
    stages: dict[str, StageRun] = Field(default_factory=dict)
    error: RunError | None = None
    #: Set when the result was too large for the database and lives in the artifact store.
    result_ref: str | None = None
    #: The server process driving the run (``host:pid:boot``); lets a restarted server find the
    #: runs a dead process left unfinished. None for runs outside a server.
    owner: str | None = None
    #: Set when a trigger rule started the run: ``{"rule": name, "event": id, "chain": [rule names]}``.
    #: The chain travels in the run's events, so a rule that re-triggers itself is detected.
    triggered_by: dict[str, Any] | None = None
    #: The run's input (the keyword arguments of its root stages), kept to run it on another
    #: server and to show what it was given.
    input: dict[str, Any] | None = None
    #: Set when the input was larger than ``compute.max_input_bytes``: where it is kept instead
    #: (``inputs/<uid>.json`` under the app dir); ``input`` is then None.
    input_ref: str | None = None
    #: The uid of the run this one runs again (``POST /runs/{id}/rerun``; ``source: rerun``).
    rerun_of: str | None = None
    #: Times the run was started again after the server running it died (``spec.retries``).
    attempt: int = 0

    @field_validator("started_at", "finished_at", mode="before")
    @classmethod
    def _naive_utc(cls, value: Any) -> Any:
        return _naive(value)

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
