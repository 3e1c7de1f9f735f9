"""``POST /triggers/{identifier}/fire``: fire a rule's action now, to test it.

(No ``from __future__ import annotations`` here: FastAPI reads these signatures at runtime.)
"""

from typing import Any

from fastapi import APIRouter, Query, Request

from flowdapt.errors import ValidationError
from flowdapt.server.api import ERRORS, json_response, object_body, read_body, running_service

router = APIRouter(prefix="/triggers", tags=["triggers"])


@router.get(
    "/{identifier}/history",
    summary="A trigger rule's recent fires, newest first",
    description=(
        "`{rule, uid, items: [{id, time, rule, outcome: fired|failed, manual, action, due, event, server, "
        "run | result | error}]}`: the last `triggers.history_size` fires of the rule, recorded by any "
        "server on this database (`run` is the uid of the run a run_workflow action started)."
    ),
    responses=ERRORS,
    operation_id="trigger_rule_history",
)
async def trigger_history(
    request: Request, identifier: str, limit: int | None = Query(None, ge=1, le=1000, description="at most this many")
) -> Any:
    service = running_service(request, "triggers")
    return json_response(await service.history(identifier, limit))


@router.post(
    "/{identifier}/fire",
    summary="Fire a trigger rule's action now (testing a rule)",
    description=(
        "Runs the rule's action at once, whatever its schedule or condition, and answers "
        "`{rule, uid, type, fired, matched, result | error}`. The optional body "
        '`{"event": {...}, "dry_run": false}` gives the event that `{var: ...}` parameters read; a '
        "condition rule reports whether it matches it (`matched`). With dry_run nothing runs. "
        "A manual fire does not move a schedule's last fire time."
    ),
    responses=ERRORS,
    openapi_extra=object_body("{event: an event envelope (type, data, ...), dry_run: bool}"),
    operation_id="fire_trigger_rule",
)
async def fire_trigger(
    request: Request, identifier: str, dry_run: bool = Query(False, description="only evaluate; run nothing")
) -> Any:
    service = running_service(request, "triggers")
    body = await read_body(request, default={}, what="the fire request")
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object: {event: {...}, dry_run: bool}", field="body")
    answer = await service.fire(
        identifier, event=body.get("event"), dry_run=bool(body.get("dry_run", False)) or dry_run
    )
    return json_response(answer)
