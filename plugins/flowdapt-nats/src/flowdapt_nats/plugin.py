"""The ``nats`` plugin: registers the NATS JetStream event bus (``event_bus.url: nats://host:4222``),
and on a server with the ``api`` service forwards the run events of the *other* servers of the
cluster to its live stream (``GET /events``), so a client of any API server sees runs executed by
any compute server."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Any

from flowdapt.hookspecs import hookimpl
from flowdapt_nats.options import DEFAULT_URL, NatsEventBusOptions, parse_servers

if TYPE_CHECKING:
    from flowdapt_nats.bus import NatsEventBus

log = logging.getLogger(__name__)


def create(options: NatsEventBusOptions, settings=None) -> NatsEventBus:
    from flowdapt_nats.bus import NatsEventBus  # the NATS client only where a bus is made

    url = settings.event_bus.url if settings is not None else DEFAULT_URL
    name = getattr(settings, "name", None) or "flowdapt"
    return NatsEventBus(parse_servers(url, options.servers), options, connection_name=f"flowdapt-{name}")


@hookimpl
def flowdapt_register_event_buses(register):
    register("nats", create, NatsEventBusOptions)


# -- other servers' runs on this server's live stream ------------------------------------------------

_RUN_FIELDS = ("uid", "name", "workflow", "state", "started_at", "finished_at")


def live_event(event) -> tuple[str, dict[str, Any]] | None:
    """The ``GET /events`` form (type, data) of a bus run event from another server, or None."""
    from flowdapt.events import STAGE_FINISHED, WORKFLOW_FINISHED, WORKFLOW_STARTED

    data = event.data if isinstance(event.data, dict) else {}
    if event.type in (WORKFLOW_STARTED, WORKFLOW_FINISHED):
        out = {key: data.get(key) for key in _RUN_FIELDS}
        if event.type == WORKFLOW_FINISHED:
            if data.get("error") is not None:
                out["error"] = data["error"]
            if "result" in data:
                out["result"] = data["result"]
        kind = "run_started" if event.type == WORKFLOW_STARTED else "run_finished"
    elif event.type == STAGE_FINISHED:
        record = {k: v for k, v in data.items() if k not in ("run", "run_name", "workflow", "stage")}
        out = {"uid": data.get("run"), "name": data.get("run_name"), "workflow": data.get("workflow"),
               "state": "running", "stage": data.get("stage"), "stage_record": record}
        kind = "stage_finished"
    else:
        return None
    out["remote"] = True  # executed by another server of the cluster
    return kind, out


@hookimpl
def flowdapt_server_startup(server):
    bus = getattr(server, "event_bus", None)
    module = sys.modules.get("flowdapt_nats.bus")  # not imported: this server's bus is not NATS
    if module is None or not isinstance(bus, module.NatsEventBus) or "api" not in getattr(server, "services", ()):
        return
    server.spawn(_forward_remote_runs(server, bus), "flowdapt-nats-live-events")


async def _forward_remote_runs(server, bus: NatsEventBus) -> None:
    from flowdapt.events import CHANNEL_WORKFLOWS

    def forward(event) -> None:
        if not server.events.listening:
            return
        converted = live_event(event)
        if converted is not None:
            server.events.publish(*converted)

    subscription = await bus.subscribe_remote(forward, channels=[CHANNEL_WORKFLOWS])
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.shield(subscription.close())
