"""NATS JetStream event bus for Flowdapt (``event_bus.url: nats://host:4222``): events fan out to
every server, grouped subscriptions and work queues give each item to exactly one consumer."""

from flowdapt_nats.bus import EventBusUnavailableError, NatsEventBus, NatsEventBusOptions, delete_streams

__all__ = ["EventBusUnavailableError", "NatsEventBus", "NatsEventBusOptions", "delete_streams"]
