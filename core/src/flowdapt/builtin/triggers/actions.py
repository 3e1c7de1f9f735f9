"""Trigger actions: what a rule does when it fires.

An action is registered through ``flowdapt_register_actions`` as ``register(name, action, Params)``:
``async def action(params: Params, ctx: ActionContext) -> Any``. ``Params`` (a pydantic model)
validates ``spec.action.parameters`` when the rule is applied. Only registered names can be
targets: the original's "any import path" (a remote-code-execution hole) is refused.

Built in: ``run_workflow`` (the original's), ``webhook`` (HTTP call) and ``print_event`` (log, the
original's debugging action). Parameter values written ``{var: path}`` take their value from the
triggering event (``{var: data.result}``), anywhere inside the parameters.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowdapt.builtin.triggers.conditions import resolve_vars
from flowdapt.events import RUN_QUEUE, Event, EventBus, run_request
from flowdapt.resources.base import NAME_PATTERN

log = logging.getLogger(__name__)

#: The original's fully qualified names of its built-in actions, accepted as aliases.
ACTION_ALIASES = {
    "flowdapt.triggers.resources.triggers.actions.run_workflow": "run_workflow",
    "flowdapt.triggers.resources.triggers.actions.print_event": "print_event",
}


class ActionError(RuntimeError):
    """An action ran and failed (an HTTP error status, a refused request)."""


@dataclass
class ActionContext:
    """What an action gets besides its parameters."""

    rule: Any  # flowdapt.resources.TriggerRule
    bus: EventBus
    settings: Any
    #: The triggering event (condition rules, manual fires with an event), else None.
    event: Event | None = None
    #: The due time a schedule fired for (aware UTC), else None.
    due: datetime | None = None
    #: Names of the rules that led here, this one last (loop protection; travels with the run).
    chain: list[str] = field(default_factory=list)
    http: Any = None  # an httpx.AsyncClient shared by the service
    #: ``await workflow_exists(name_or_uid)``: run_workflow checks its workflow before asking for a
    #: run (the trigger service answers from a cache of workflow names; None: no check).
    workflow_exists: Any = None

    @property
    def event_data(self) -> dict[str, Any]:
        return self.event.as_dict() if self.event is not None else {}

    def resolve(self, value: Any) -> Any:
        """``value`` with every ``{var: path}`` replaced from the triggering event."""
        return resolve_vars(value, self.event_data)

    @property
    def origin(self) -> dict[str, Any]:
        return {
            "rule": self.rule.metadata.name,
            "rule_uid": str(self.rule.metadata.uid),
            "event": str(self.event.id) if self.event is not None else None,
            "due": self.due.replace(tzinfo=None).isoformat() if self.due is not None else None,
            "chain": list(self.chain),
        }


class RunWorkflowParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(min_length=1, description="name or uid of the workflow to run")
    input: dict[str, Any] = Field(default_factory=dict, description="run input; {var: path} takes it from the event")
    namespace: str | None = Field(default=None, pattern=NAME_PATTERN, max_length=253)


def request_key(ctx: ActionContext) -> str | None:
    """What makes a firing unique: the rule and its due time or triggering event (None for a
    manual fire, which is new each time)."""
    rule = f"flowdapt:trigger:{ctx.rule.metadata.uid}"
    if ctx.due is not None:
        return f"{rule}:due:{ctx.due.isoformat()}"
    if ctx.event is not None and ctx.event.channel != "manual":
        return f"{rule}:event:{ctx.event.id}"
    return None


async def run_workflow(params: RunWorkflowParams, ctx: ActionContext) -> dict[str, Any]:
    """Ask for a run of ``workflow``: one server takes the request from the run queue. A workflow
    that does not exist fails the fire here (the request would only fail later, on the server that
    takes it, and the fire would look fine)."""
    if ctx.workflow_exists is not None and not await ctx.workflow_exists(params.workflow):
        raise ActionError(
            f"no workflow with uid or name {params.workflow!r}: trigger rule {ctx.rule.metadata.name!r} cannot run it "
            "(apply the workflow, or fix spec.action.parameters.workflow)"
        )
    request = run_request(
        params.workflow, ctx.resolve(params.input), namespace=params.namespace, triggered_by=ctx.origin
    )
    key = request_key(ctx)
    if key is not None:
        # One firing is one request id, and the run started for it takes that id as its uid: a
        # firing delivered or retried twice (a broker redelivers after a crash) starts one run.
        request.id = uuid.uuid5(uuid.NAMESPACE_URL, key)
    await ctx.bus.enqueue(RUN_QUEUE, request)
    return {"workflow": params.workflow, "request": str(request.id)}


class WebhookParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    method: Literal["POST", "PUT", "PATCH", "GET", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    #: JSON body; {var: path} values come from the event. Left out: the triggering event (or, for a
    #: schedule, ``{rule, due}``).
    body: Any = None
    timeout: float = Field(default=10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


async def webhook(params: WebhookParams, ctx: ActionContext) -> dict[str, Any]:
    """Send an HTTP request; a status of 400 or more is an error. Only public addresses are
    reached (after DNS resolution, on every redirect) unless ``triggers.webhook_allowed_networks``
    lists the network; the target's response body is never reflected in results or errors."""
    import httpx

    from flowdapt.builtin.triggers.webhooks import WebhookRefusedError, parse_networks, send

    if params.body is not None:
        body = ctx.resolve(params.body)
    elif ctx.event is not None:
        body = ctx.event_data
    else:
        body = {"rule": ctx.rule.metadata.name, "due": ctx.origin["due"]}
    triggers = getattr(ctx.settings, "triggers", None)
    networks = parse_networks(getattr(triggers, "webhook_allowed_networks", None) or [])
    client = ctx.http
    owned = client is None
    if owned:
        client = httpx.AsyncClient()
    try:
        response = await send(
            client,
            params.method,
            params.url,
            headers={"content-type": "application/json", **params.headers},
            json=None if params.method in ("GET", "DELETE") else body,
            timeout=params.timeout,
            networks=networks,
        )
    except WebhookRefusedError as exc:
        raise ActionError(str(exc)) from None
    except httpx.HTTPError as exc:
        raise ActionError(f"webhook {params.method} {params.url} failed: {type(exc).__name__}: {exc}") from None
    finally:
        if owned:
            await client.aclose()
    if response.status_code >= 400:
        raise ActionError(f"webhook {params.method} {params.url} answered {response.status_code} {response.reason_phrase}")
    return {"status_code": response.status_code}


class PrintEventParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)


async def print_event(params: PrintEventParams, ctx: ActionContext) -> dict[str, Any]:
    """The original's debugging action: log that the rule fired (no side effects)."""
    log.info(
        "Trigger Executed! rule=%s workflow=%s input=%s event=%s",
        ctx.rule.metadata.name,
        params.workflow,
        ctx.resolve(params.input),
        ctx.event.type if ctx.event else None,
    )
    return {"workflow": params.workflow, "input": ctx.resolve(params.input)}
