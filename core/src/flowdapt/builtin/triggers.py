"""Built-in trigger types (``schedule``, ``condition``), actions (``run_workflow``, ``webhook``,
``print_event``), and the trigger service of ``flowdapt run`` (``--services triggers``, on by
default): ``POST /triggers/{id}/fire``, ``status`` in ``GET /triggers/{id}``, trigger events on the
server's event stream, and ``flowdapt trigger fire NAME``."""

from __future__ import annotations

import logging

from flowdapt.hookspecs import hookimpl

log = logging.getLogger("flowdapt.triggers")

#: Trigger bus events -> the server's event-stream (SSE) type names.
SSE_TYPES = {
    "com.event.trigger.trigger_fired": "trigger_fired",
    "com.event.trigger.trigger_failed": "trigger_failed",
    "com.event.trigger.trigger_rate_limited": "trigger_rate_limited",
}


@hookimpl
def flowdapt_register_trigger_types(register):
    from flowdapt.triggers.types import CronTriggerType, DslConditionTriggerType

    register("schedule", CronTriggerType)
    register("condition", DslConditionTriggerType)


@hookimpl
def flowdapt_register_actions(register):
    from flowdapt.triggers import actions

    register("run_workflow", actions.run_workflow, actions.RunWorkflowParams)
    register("webhook", actions.webhook, actions.WebhookParams)
    register("print_event", actions.print_event, actions.PrintEventParams)


@hookimpl
def flowdapt_validate_resource(resource, plugins):
    from flowdapt.resources.trigger import TriggerRule

    if not isinstance(resource, TriggerRule):
        return None
    from flowdapt.triggers.rules import validate_trigger_rule

    validate_trigger_rule(resource, plugins)
    return True


# -- the server's trigger service -------------------------------------------------------------


@hookimpl
def flowdapt_server_startup(server):
    if "triggers" not in server.services or getattr(server, "event_bus", None) is None:
        return
    from flowdapt.triggers.service import TriggerService

    service = TriggerService(
        server.store, server.event_bus, server.plugins, server.settings, paused=lambda: server.draining
    )
    if "compute" not in server.services and server.event_bus.name == "memory":
        log.warning(
            "this server runs triggers without compute on the in-memory event bus: run_workflow actions "
            "will wait for a compute service that never comes; run both here, or use a shared broker"
        )
    server.triggers = service
    server.resource_extras["trigger_rule"] = lambda rule: {"status": service.status(str(rule.metadata.uid))}
    server.spawn(_serve(server, service), "flowdapt-triggers")


async def _serve(server, service) -> None:
    """Forward trigger events to the server's event stream, then run the service until cancelled."""
    import asyncio

    from flowdapt.events import CHANNEL_TRIGGERS

    def forward(event) -> None:
        name = SSE_TYPES.get(event.type)
        if name is not None and server.events.listening:
            server.events.publish(name, dict(event.data or {}))

    bridge = await server.event_bus.subscribe(forward, channels=[CHANNEL_TRIGGERS])
    try:
        await service.run()
    finally:
        await asyncio.shield(bridge.close())


@hookimpl
def flowdapt_api_routers():
    from flowdapt.triggers.api import router

    return [router]


# -- CLI ----------------------------------------------------------------------------------------


@hookimpl
def flowdapt_cli_commands(app):
    from flowdapt.triggers.cli import trigger_app

    app.add_typer(trigger_app, name="trigger")
