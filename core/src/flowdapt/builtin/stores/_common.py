"""Helpers shared by the built-in document stores: identifiers, timestamps, (de)serialization."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from pydantic import ValidationError as PydanticValidationError

from flowdapt.errors import ConflictError, ResourceNotFoundError
from flowdapt.resources import KINDS
from flowdapt.resources.base import Resource, to_naive_utc
from flowdapt.resources.run import RunState, WorkflowRun

log = logging.getLogger("flowdapt.storage")

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


def from_epoch(seconds: float) -> datetime:
    """A ``time.time()`` value as a naive UTC datetime (how stores report lease and heartbeat times)."""
    return _EPOCH + timedelta(microseconds=round(seconds * 1_000_000))


def server_record(server_id: str, info: dict[str, Any], last_seen: datetime) -> dict[str, Any]:
    """What ``list_servers`` returns for one server: its info plus ``server_id`` and ``last_seen``."""
    return {**info, "server_id": server_id, "last_seen": last_seen}


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
    try:
        return model.model_validate_json(doc)
    except PydanticValidationError as exc:
        # pydantic's own JSON parser stops at a fixed nesting depth that orjson (which wrote
        # the document) does not have: parse with orjson and validate the Python value instead.
        if not any(err.get("type") == "json_invalid" for err in exc.errors()):
            raise
        return model.model_validate(orjson.loads(doc))


def load_resources(kind: str, docs: Iterable[str | bytes]) -> list[Resource]:
    """Every readable document; one this version cannot read is logged and left out, so a single
    bad stored resource never breaks a listing (nor the services that load all of a kind)."""
    out = []
    for doc in docs:
        try:
            out.append(load_resource(kind, doc))
        except Exception as exc:  # noqa: BLE001 - isolated and reported, never fatal
            log.error("a stored %s cannot be read and is skipped: %s", kind, _short(exc))
    return out


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:300] + "..."


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
