"""The ``nats`` plugin: registers the NATS JetStream event bus (``event_bus.url: nats://host:4222``)."""

from __future__ import annotations

from flowdapt.hookspecs import hookimpl
from flowdapt_nats.bus import DEFAULT_URL, NatsEventBus, NatsEventBusOptions, parse_servers


def create(options: NatsEventBusOptions, settings=None) -> NatsEventBus:
    url = settings.event_bus.url if settings is not None else DEFAULT_URL
    name = getattr(settings, "name", None) or "flowdapt"
    return NatsEventBus(parse_servers(url, options.servers), options, connection_name=f"flowdapt-{name}")


@hookimpl
def flowdapt_register_event_buses(register):
    register("nats", create, NatsEventBusOptions)
