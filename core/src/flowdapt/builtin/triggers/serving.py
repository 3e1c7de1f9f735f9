"""The ``triggers`` service of ``flowdapt run`` (``--services triggers``, on by default): it fires
the trigger rules of the database, forwards trigger events to the server's event stream (SSE) and
adds ``status`` (next and last fire) to ``GET /triggers/{id}``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from flowdapt.events import CHANNEL_TRIGGERS
from flowdapt.server.api import Service

log = logging.getLogger("flowdapt.triggers")

#: Trigger bus events -> the server's event-stream (SSE) type names.
SSE_TYPES = {
    "com.event.trigger.trigger_fired": "trigger_fired",
    "com.event.trigger.trigger_failed": "trigger_failed",
    "com.event.trigger.trigger_rate_limited": "trigger_rate_limited",
}


class TriggersService(Service):
    status_name = "TriggerService"
    order = 50

    def __init__(self, options, server):
        super().__init__(options, server)
        self.engine = None  # the TriggerService, while running
        self._bridge = None

    @classmethod
    def routers(cls) -> list[Any]:
        from flowdapt.builtin.triggers.api import router

        return [router]

    async def start(self) -> None:
        from flowdapt.builtin.triggers.service import TriggerService

        server = self.server
        engine = TriggerService(
            server.store, server.event_bus, server.plugins, server.settings, paused=lambda: server.draining,
            identity=server.identity,
        )
        if server.service("compute") is None and "compute" not in server.services and server.event_bus.name == "memory":
            log.warning(
                "this server runs triggers without compute on the in-memory event bus: run_workflow actions "
                "will wait for a compute service that never comes; run both here, or use a shared broker"
            )

        def forward(event) -> None:
            name = SSE_TYPES.get(event.type)
            if name is not None and server.events.listening:
                server.events.publish(name, dict(event.data or {}))

        self._bridge = await server.event_bus.subscribe(forward, channels=[CHANNEL_TRIGGERS])
        await engine.start()
        self.engine = engine
        server.resource_extras["trigger_rule"] = lambda rule: {"status": engine.status(str(rule.metadata.uid), rule)}

    async def stop(self) -> None:
        self.server.resource_extras.pop("trigger_rule", None)
        engine, self.engine = self.engine, None
        if engine is not None:
            await asyncio.shield(engine.stop())
        bridge, self._bridge = self._bridge, None
        if bridge is not None:
            await asyncio.shield(bridge.close())

    async def fire(self, identifier: str, *, event: dict[str, Any] | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Fire a rule's action now (``POST /triggers/{id}/fire``)."""
        if self.engine is None:
            from flowdapt.server.api import ServiceUnavailableError

            raise ServiceUnavailableError("the trigger service is not running (the server is stopping)")
        return await self.engine.fire(identifier, event=event, dry_run=dry_run)

    async def history(self, identifier: str, limit: int | None = None) -> dict[str, Any]:
        """A rule's recent fires (``GET /triggers/{id}/history``)."""
        if self.engine is None:
            from flowdapt.server.api import ServiceUnavailableError

            raise ServiceUnavailableError("the trigger service is not running (the server is stopping)")
        return await self.engine.history(identifier, limit)

    def health(self) -> dict[str, Any]:
        engine = self.engine
        if engine is None or not engine.running:
            return {"status": "NOT_OK", "detail": "the trigger service is not running"}
        return {"status": "OK", "events_seen": engine.events_seen}
