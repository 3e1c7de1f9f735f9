"""NATS JetStream event bus for Flowdapt (``event_bus.url: nats://host:4222``): events fan out to
every server, grouped subscriptions and work queues give each item to exactly one consumer."""

from typing import Any

from flowdapt_nats.options import EventBusUnavailableError, NatsEventBusOptions

__all__ = ["EventBusUnavailableError", "NatsEventBus", "NatsEventBusOptions", "delete_streams"]


def __getattr__(name: str) -> Any:
    # The bus (and the NATS client it imports) only when asked for: the plugin loads without it.
    if name in ("NatsEventBus", "delete_streams"):
        from flowdapt_nats import bus

        return getattr(bus, name)
    raise AttributeError(f"module 'flowdapt_nats' has no attribute {name!r}")
