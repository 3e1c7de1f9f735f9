"""The event envelope and the event types Flowdapt publishes.

The envelope and the type strings are the original Flowdapt's (reference section 5.4), so trigger
rules written for it match unchanged. Differences, on purpose: ``time`` is naive UTC (the API's
convention) instead of local time, and finished events carry the run's result (capped in size) and
its error, so a condition on ``data.result`` can match.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from flowdapt.resources.base import NaiveDatetime, utcnow

# -- channels ---------------------------------------------------------------------------------
CHANNEL_WORKFLOWS = "workflows"
CHANNEL_RESOURCES = "resources"
CHANNEL_TRIGGERS = "triggers"

# -- types (the first three are the original's) ----------------------------------------------
RUN_WORKFLOW = "com.event.workflow.run_workflow"
WORKFLOW_STARTED = "com.event.workflow.workflow_started"
WORKFLOW_FINISHED = "com.event.workflow.workflow_finished"
STAGE_FINISHED = "com.event.workflow.stage_finished"
RESOURCE_APPLIED = "com.event.resource.resource_applied"
RESOURCE_DELETED = "com.event.resource.resource_deleted"
TRIGGER_FIRED = "com.event.trigger.trigger_fired"
TRIGGER_FAILED = "com.event.trigger.trigger_failed"
TRIGGER_RATE_LIMITED = "com.event.trigger.trigger_rate_limited"
BASE_EVENT = "internal.base.event"

#: Work queue that run requests (``run_workflow`` actions) go to; one server takes each request.
RUN_QUEUE = "workflows.run"

#: Header carrying the names of the trigger rules that led to an event (loop protection).
TRIGGER_CHAIN_HEADER = "trigger_chain"

#: Default cap on a run's result inside an event; larger results are left out (``result_truncated``).
DEFAULT_MAX_RESULT_BYTES = 64 * 1024


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def dumps(value: Any) -> bytes:
    """JSON bytes; values JSON cannot hold are written as their ``str``."""
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


class Event(BaseModel):
    """One event: ``{id, time, headers, correlation_id, reply_channel, trace_parent, channel, source,
    type, data}``. Extra top-level keys are kept, as in the original."""

    model_config = ConfigDict(extra="allow")

    id: UUID = Field(default_factory=uuid4)
    time: NaiveDatetime = Field(default_factory=utcnow)
    headers: dict[str, Any] = Field(default_factory=dict)
    correlation_id: str | None = None
    reply_channel: str | None = None
    trace_parent: str | None = None
    channel: str
    source: str
    type: str = BASE_EVENT
    data: Any = None

    _as_dict: dict[str, Any] | None = PrivateAttr(default=None)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form as a dict (``id`` and ``time`` as strings), computed once per event.

        This is what condition rules see. Treat it as read-only: it is shared by every rule.
        """
        if self._as_dict is None:
            self._as_dict = orjson.loads(self.to_json())
        return self._as_dict

    def to_json(self) -> bytes:
        return dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        return cls.model_validate(orjson.loads(raw))

    @property
    def trigger_chain(self) -> list[str]:
        chain = self.headers.get(TRIGGER_CHAIN_HEADER)
        return list(chain) if isinstance(chain, list) else []


# -- builders ---------------------------------------------------------------------------------


def capped(value: Any, max_bytes: int) -> tuple[Any, bool, int]:
    """``(value or None, truncated, size)``: a value whose JSON exceeds ``max_bytes`` is dropped."""
    if value is None:
        return None, False, 0
    try:
        size = len(dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return None, True, -1
    if max_bytes >= 0 and size > max_bytes:
        return None, True, size
    return value, False, size


def _run_headers(run) -> dict[str, Any]:
    origin = getattr(run, "triggered_by", None)
    if origin and origin.get("chain"):
        return {TRIGGER_CHAIN_HEADER: list(origin["chain"])}
    return {}


def run_event_data(run, *, max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES) -> dict[str, Any]:
    """A WorkflowRun as event data: the original's fields plus error, namespace and trigger origin.

    Per-stage records are left out (``stage_finished`` events carry them one by one)."""
    data = run.model_dump(mode="json", exclude={"stages", "result", "owner"})
    result, truncated, size = capped(run.result, max_result_bytes)
    data["result"] = result
    if truncated:
        data["result_truncated"] = True
        data["result_bytes"] = size
    error = data.get("error")
    if error and len(error.get("traceback") or "") > 8192:
        error["traceback"] = "..." + error["traceback"][-8192:]
    return data


def workflow_started(run, *, max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES) -> Event:
    return Event(
        channel=CHANNEL_WORKFLOWS,
        source="compute",
        type=WORKFLOW_STARTED,
        headers=_run_headers(run),
        data=run_event_data(run, max_result_bytes=max_result_bytes),
    )


def workflow_finished(run, *, max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES) -> Event:
    return Event(
        channel=CHANNEL_WORKFLOWS,
        source="compute",
        type=WORKFLOW_FINISHED,
        headers=_run_headers(run),
        data=run_event_data(run, max_result_bytes=max_result_bytes),
    )


def stage_finished(run, stage: str) -> Event:
    record = run.stages.get(stage)
    data: dict[str, Any] = {
        "run": str(run.uid),
        "run_name": run.name,
        "workflow": run.workflow,
        "stage": stage,
    }
    if record is not None:
        data.update(record.model_dump(mode="json"))
    return Event(
        channel=CHANNEL_WORKFLOWS, source="compute", type=STAGE_FINISHED, headers=_run_headers(run), data=data
    )


def resource_applied(resource, *, created: bool, source: str = "core") -> Event:
    """A resource was created or updated. ``data.resource`` is the stored document, so caches
    (the trigger service's rule cache) update without reading the database."""
    doc = resource.to_document()
    return Event(
        channel=CHANNEL_RESOURCES,
        source=source,
        type=RESOURCE_APPLIED,
        data={
            "kind": doc["kind"],
            "name": doc["metadata"]["name"],
            "uid": doc["metadata"]["uid"],
            "action": "created" if created else "updated",
            "resource": doc,
        },
    )


def resource_deleted(resource, *, source: str = "core") -> Event:
    doc = resource.to_document()
    return Event(
        channel=CHANNEL_RESOURCES,
        source=source,
        type=RESOURCE_DELETED,
        data={"kind": doc["kind"], "name": doc["metadata"]["name"], "uid": doc["metadata"]["uid"], "resource": doc},
    )
