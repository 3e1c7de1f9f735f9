"""Helpers shared by the built-in document stores: identifiers, timestamps, (de)serialization."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson

from flowdapt.errors import ConflictError, ResourceNotFoundError
from flowdapt.resources import KINDS
from flowdapt.resources.base import Resource, to_naive_utc
from flowdapt.resources.run import RunState, WorkflowRun

#: Run states ``delete_runs_before`` may remove: a run still pending or running is never deleted.
FINAL_STATES: tuple[str, ...] = tuple(s.value for s in RunState if s.is_final)

#: Names the original API used in its duplicate-name message ("Workflow with name `x` already exists").
_COLLECTIONS = {"workflow": "Workflow", "config": "Config", "trigger_rule": "TriggerRule"}

_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def as_uid(identifier: Any) -> str | None:
    """The canonical string form of ``identifier`` when it is a UUID, else None."""
    if isinstance(identifier, UUID):
        return str(identifier)
    try:
        return str(UUID(str(identifier)))
    except (ValueError, TypeError, AttributeError):
        return None


def micros(value: datetime) -> int:
    """Microseconds since 1970-01-01 of a datetime taken as naive UTC (aware ones are converted)."""
    return (to_naive_utc(value) - _EPOCH) // _MICROSECOND


def state_values(state: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    """Normalize a state filter: None (or an empty list) means any state."""
    if state is None:
        return None
    if isinstance(state, str):
        return [str(state)]
    values = [str(s) for s in state]
    return values or None


def dump_resource(resource: Resource) -> str:
    return orjson.dumps(resource.to_document()).decode()


def load_resource(kind: str, doc: str | bytes) -> Resource:
    model = KINDS.get(kind, Resource)
    return model.model_validate_json(doc)


def dump_run(run: WorkflowRun) -> str:
    return run.model_dump_json()


def load_run(doc: str | bytes) -> WorkflowRun:
    return WorkflowRun.model_validate_json(doc)


def name_conflict(kind: str, name: str) -> ConflictError:
    return ConflictError(
        f"{_COLLECTIONS.get(kind, kind)} with name `{name}` already exists",
        resource=f"{kind}/{name}",
        field="metadata.name",
    )


def uid_conflict(kind: str, uid: str) -> ConflictError:
    return ConflictError(f"{kind} with uid {uid} already exists", resource=f"{kind}/{uid}", field="metadata.uid")


def run_conflict(run: WorkflowRun, field: str) -> ConflictError:
    value = run.name if field == "name" else str(run.uid)
    return ConflictError(f"a workflow run with {field} `{value}` already exists", resource=f"workflow_run/{value}", field=field)


def not_found(kind: str, identifier: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"{kind} '{identifier}' not found")


def check_kind(resource: Resource) -> str:
    kind = resource.kind
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"resource {resource!r} has no kind")
    return kind
