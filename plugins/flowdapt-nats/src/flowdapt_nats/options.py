"""What the ``nats`` plugin needs without the NATS client: its options, server URLs and names.

Kept apart from :mod:`flowdapt_nats.bus` so that loading the plugin (every Flowdapt process does,
a ``flowdapt exec`` or a Python API call included) does not import ``nats`` and ``aiohttp``; the bus
module is imported when a bus is made."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from flowdapt.errors import ConfigurationError, FlowdaptError

DEFAULT_URL = "nats://127.0.0.1:4222"


class EventBusUnavailableError(FlowdaptError):
    """The broker did not take an event in time (down, unreachable, or a work queue is full)."""

    status_code = 503


class NatsEventBusOptions(BaseModel):
    """``event_bus.options`` of the NATS bus. Credentials are never logged."""

    model_config = ConfigDict(extra="forbid")

    #: More servers of the same NATS cluster, besides those in ``event_bus.url``
    #: (``nats://a:4222,nats://b:4222`` works there too).
    servers: list[str] = Field(default_factory=list)
    #: Subject and stream prefix: servers with the same prefix share events; another prefix on the
    #: same broker is another cluster that sees none of them.
    prefix: str = Field("flowdapt", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    #: Connection name shown by the broker's monitoring (default ``flowdapt-<settings.name>``).
    connection_name: str | None = None
    #: Seconds start() waits for the broker before it fails with a ConfigurationError.
    connect_timeout: float = Field(5.0, gt=0)
    #: Seconds between reconnect attempts; -1 attempts: reconnect forever.
    reconnect_wait: float = Field(1.0, gt=0)
    max_reconnect_attempts: int = Field(-1, ge=-1)
    #: Bytes of publishes the client buffers while reconnecting (beyond: publish retries, then fails).
    reconnect_buffer_bytes: int = Field(8 * 1024 * 1024, ge=0)
    #: Seconds publish()/enqueue() keep retrying during an outage before EventBusUnavailableError.
    publish_timeout: float = Field(10.0, gt=0)
    #: Events publish_nowait() holds while the broker is away; more are dropped (and counted).
    outbox_size: int = Field(10_000, ge=1)
    #: Seconds an unacknowledged group event or work item waits before it is delivered again (a
    #: running handler extends it every ack_wait/3 seconds, so a long handler is not duplicated).
    ack_wait: float = Field(30.0, gt=0)
    #: Deliveries of one event to a group, or of one work item, at most (-1: no limit).
    max_deliver: int = Field(5, ge=-1)
    #: Stream limits: nothing is kept longer, and a stream never holds more than this.
    max_age: float = Field(86_400.0, gt=0)
    max_msgs: int = Field(1_000_000, ge=1)
    #: Bytes per stream (the broker reserves them against its JetStream storage at creation).
    max_bytes: int = Field(256 * 1024 * 1024, ge=1)
    #: ``file`` survives a broker restart; ``memory`` does not.
    storage: Literal["file", "memory"] = "file"
    replicas: int = Field(1, ge=1, le=5)
    #: Seconds in which a publish with the same event id is stored once (retries after a reconnect).
    duplicate_window: float = Field(120.0, gt=0)
    #: Seconds after which the broker deletes a group's or queue's consumer that nobody pulls from.
    consumer_inactive_threshold: float = Field(86_400.0, gt=0)
    #: Seconds one pull request waits on the broker (a pull loop notices a lost consumer this fast).
    fetch_timeout: float = Field(5.0, gt=0)


# -- names -------------------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9-]")


def token(name: str) -> str:
    """``name`` as one subject token and consumer name: other characters (``.`` ``_`` ``*``...) become
    ``_XX`` (hex of each UTF-8 byte), so different names never meet."""
    return _UNSAFE.sub(lambda m: "".join(f"_{b:02X}" for b in m.group().encode()), name) or "_"


def redact(url: str) -> str:
    """``url`` without its user info (``nats://***@host:4222``)."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def parse_servers(url: str, extra: Iterable[str] = ()) -> list[str]:
    """The servers of ``event_bus.url`` (comma-separated allowed; ``nats://`` alone is the local
    default) followed by ``extra``."""
    servers: list[str] = []
    for part in [*url.split(","), *extra]:
        part = part.strip()
        if not part:
            continue
        if "://" not in part:
            part = "nats://" + part
        scheme, _, rest = part.partition("://")
        if scheme.lower() not in ("nats", "tls"):
            raise ConfigurationError(f"event_bus: {redact(part)!r} is not a nats:// or tls:// server URL")
        if not rest.strip("/"):
            part = DEFAULT_URL
        servers.append(part)
    return servers or [DEFAULT_URL]
