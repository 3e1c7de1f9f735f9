"""A third-party trigger plugin that replaces the built-in one (docs/hooks.md,
``flowdapt_register_services``): with ``plugins.disabled: [triggers]`` it brings its own trigger
type (``every``: run a workflow every N seconds), the check of trigger rules, the ``triggers``
service of ``flowdapt run`` with its ``/status`` entry, a route and a CLI command. It uses only
the public plugin API (hook specs, ``flowdapt.server.api``, ``flowdapt.cli.api``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import typer
from fastapi import APIRouter, Request

from flowdapt.cli import api as cli
from flowdapt.errors import ResourceNotFoundError, ValidationError
from flowdapt.hookspecs import hookimpl
from flowdapt.server import api

router = APIRouter(prefix="/triggers", tags=["triggers"])


@router.post("/{identifier}/fire", responses=api.ERRORS)
async def fire(request: Request, identifier: str) -> Any:
    service = api.running_service(request, "triggers")
    return api.json_response(await service.fire(identifier))


class IntervalTriggers(api.Service):
    """Fires every ``type: every`` rule (``rule: "<seconds>"``, action ``run_workflow``) on time."""

    status_name = "TriggerService"
    order = 50

    @classmethod
    def routers(cls) -> list[APIRouter]:
        return [router]

    async def start(self) -> None:
        self.fired: list[str] = []
        self.last_error: str | None = None
        self.last_fire: dict[str, float] = {}
        self.server.spawn(self._loop(), "interval-triggers")

    async def _loop(self) -> None:
        while True:
            now = time.monotonic()
            for rule in await self.server.store.list("trigger_rule"):
                due = self.last_fire.get(rule.metadata.name, 0.0) + float(rule.spec.rule)
                if rule.spec.type == "every" and now >= due and not self.server.draining:
                    try:
                        await self.fire(rule.metadata.name)
                    except Exception as exc:  # reported in /status, the loop goes on
                        self.last_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.05)

    async def fire(self, identifier: str) -> dict[str, Any]:
        rule = await self.server.store.get("trigger_rule", identifier)
        if rule is None:
            raise ResourceNotFoundError(f"no trigger rule {identifier!r}")
        self.last_fire[rule.metadata.name] = time.monotonic()
        run = await self.server.runs.submit(
            rule.spec.action.parameters["workflow"], {}, wait=False, source="trigger",
            triggered_by={"rule": rule.metadata.name, "by": "replacement"},
        )
        self.fired.append(rule.metadata.name)
        return {"rule": rule.metadata.name, "fired": True, "run": run["name"], "by": "replacement"}

    def health(self) -> dict[str, Any]:
        return {"status": "OK", "implementation": "interval", "fired": len(self.fired), "last_error": self.last_error}


@hookimpl
def flowdapt_register_services(register):
    register("triggers", IntervalTriggers)


@hookimpl
def flowdapt_validate_resource(resource, plugins):
    if resource.kind != "trigger_rule":
        return None
    label = f"trigger_rule/{resource.metadata.name}"
    if resource.spec.type != "every":
        raise ValidationError(f"this server's triggers know only type 'every', not {resource.spec.type!r}", resource=label, field="spec.type")
    try:
        seconds = float(resource.spec.rule)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = 0.0
    if seconds <= 0:
        raise ValidationError("an 'every' rule is a number of seconds > 0", resource=label, field="spec.rule")
    if resource.spec.action.target != "run_workflow" or "workflow" not in (resource.spec.action.parameters or {}):
        raise ValidationError("the action is run_workflow with a workflow parameter", resource=label, field="spec.action")
    return True


@hookimpl
def flowdapt_cli_commands(app):
    every = typer.Typer(help="Interval triggers (replacement plugin).")

    @every.command("fire")
    def fire_command(name: str, server: cli.ServerOption = None, token: cli.TokenOption = None) -> None:
        with cli.client(server, token) as client:
            answer = cli.call(client.fire_trigger, name)
        typer.echo(f"fired {answer['rule']} -> {answer['run']} ({answer['by']})")

    app.add_typer(every, name="trigger")
