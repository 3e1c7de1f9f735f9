"""Events: the envelope, the bus contract, and adapters between runs and the bus.

- :mod:`flowdapt.events.envelope`: the :class:`Event` model, type strings, event builders.
- :mod:`flowdapt.events.bus`: the :class:`EventBus` contract (fan-out events, one-consumer work).
- :func:`create_event_bus`: the bus the settings ask for (``event_bus.url`` scheme -> plugin).
- :func:`run_listener`: a run listener that publishes workflow started/finished and stage events.
- :func:`serve_run_requests`: start the runs that ``run_workflow`` actions request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from flowdapt.events import envelope
from flowdapt.events.bus import EventBus, Handler, Subscription
from flowdapt.events.envelope import (
    CHANNEL_RESOURCES,
    CHANNEL_TRIGGERS,
    CHANNEL_WORKFLOWS,
    DEFAULT_MAX_RESULT_BYTES,
    RESOURCE_APPLIED,
    RESOURCE_DELETED,
    RUN_QUEUE,
    RUN_WORKFLOW,
    STAGE_FINISHED,
    TRIGGER_CHAIN_HEADER,
    TRIGGER_FAILED,
    TRIGGER_FIRED,
    TRIGGER_RATE_LIMITED,
    WORKFLOW_FINISHED,
    WORKFLOW_STARTED,
    Event,
)

log = logging.getLogger(__name__)

__all__ = [
    "CHANNEL_RESOURCES",
    "CHANNEL_TRIGGERS",
    "CHANNEL_WORKFLOWS",
    "RESOURCE_APPLIED",
    "RESOURCE_DELETED",
    "RUN_QUEUE",
    "RUN_WORKFLOW",
    "STAGE_FINISHED",
    "TRIGGER_CHAIN_HEADER",
    "TRIGGER_FAILED",
    "TRIGGER_FIRED",
    "TRIGGER_RATE_LIMITED",
    "WORKFLOW_FINISHED",
    "WORKFLOW_STARTED",
    "Event",
    "EventBus",
    "Handler",
    "Subscription",
    "bus_scheme",
    "create_event_bus",
    "envelope",
    "run_listener",
    "run_request",
    "serve_run_requests",
]


def bus_scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        from flowdapt.errors import ConfigurationError

        raise ConfigurationError(f"event_bus.url {url!r} must look like 'scheme://...' (e.g. memory://)")
    return scheme.lower()


def create_event_bus(settings, plugins) -> EventBus:
    """The bus named by the scheme of ``settings.event_bus.url``, created by the plugin that registered
    it, with ``settings.event_bus.options`` validated by that plugin. Not started yet."""
    scheme = bus_scheme(settings.event_bus.url)
    return plugins.create("event_buses", scheme, dict(settings.event_bus.options), settings)


def run_listener(bus: EventBus, *, max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES, finished: bool = True):
    """A :data:`flowdapt.engine.runner.RunListener` that publishes ``workflow_started``,
    ``stage_finished`` and (unless ``finished=False``, for a caller that publishes it once the
    run's record is stored) ``workflow_finished`` events for a run. Cheap; never blocks."""

    def listener(kind: str, run, stage: str | None) -> None:
        if kind == "run_finished":
            if not finished:
                return
            bus.publish_nowait(envelope.workflow_finished(run, max_result_bytes=max_result_bytes))
        elif kind == "stage_finished" and stage is not None:
            bus.publish_nowait(envelope.stage_finished(run, stage))
        elif kind == "run_started":
            bus.publish_nowait(envelope.workflow_started(run, max_result_bytes=max_result_bytes))

    return listener


def run_request(
    workflow: str,
    input: dict[str, Any] | None = None,
    *,
    namespace: str | None = None,
    triggered_by: dict[str, Any] | None = None,
) -> Event:
    """The work item a ``run_workflow`` action enqueues. ``data`` keeps the original's field names
    (``identifier``, ``payload``)."""
    headers = {}
    if triggered_by and triggered_by.get("chain"):
        headers[TRIGGER_CHAIN_HEADER] = list(triggered_by["chain"])
    return Event(
        channel=CHANNEL_WORKFLOWS,
        source="trigger",
        type=RUN_WORKFLOW,
        headers=headers,
        data={
            "identifier": workflow,
            "payload": dict(input or {}),
            "namespace": namespace,
            "triggered_by": triggered_by,
        },
    )


#: ``start_run(workflow, input, *, namespace, source, triggered_by, request_id)``: create and start a
#: run without waiting for it to end; ``request_id`` (the request's event id) is the run's uid, so a
#: request delivered twice starts one run. Raise to report that the run could not start (unknown workflow, draining).
StartRun = Callable[..., Awaitable[Any]]


async def serve_run_requests(bus: EventBus, start_run: StartRun) -> Subscription:
    """Consume :data:`RUN_QUEUE` and start each requested run with ``start_run``.

    A request that cannot start is reported as a ``trigger_failed`` event (channel ``triggers``)
    naming the rule, so ``GET /triggers/{id}`` and the event stream show why."""

    async def handle(item: Event) -> None:
        data = item.data if isinstance(item.data, dict) else {}
        workflow = data.get("identifier")
        origin = data.get("triggered_by") or None
        try:
            if not isinstance(workflow, str) or not workflow:
                raise ValueError("run request without a workflow identifier")
            await start_run(
                workflow,
                data.get("payload") or {},
                namespace=data.get("namespace"),
                source="trigger",
                triggered_by=origin,
                request_id=str(item.id),
            )
        except Exception as exc:
            log.warning("run request for %r failed: %s: %s", workflow, type(exc).__name__, exc)
            await bus.publish(
                Event(
                    channel=CHANNEL_TRIGGERS,
                    source="compute",
                    type=TRIGGER_FAILED,
                    headers=dict(item.headers),
                    correlation_id=str(item.id),
                    data={
                        "rule": (origin or {}).get("rule"),
                        "workflow": workflow,
                        "error": [type(exc).__name__, str(exc)],
                    },
                )
            )

    return await bus.consume(RUN_QUEUE, handle)
