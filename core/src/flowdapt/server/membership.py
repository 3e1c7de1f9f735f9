"""The servers of a cluster: each server sharing a database with a run queue writes a heartbeat
record (name, services, address, pid) every few seconds; ``GET /status`` lists the live ones."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from flowdapt.resources.base import utcnow

if TYPE_CHECKING:
    from flowdapt.server.core import FlowdaptServer

log = logging.getLogger("flowdapt.server")

#: Seconds between heartbeats; a record lives three of them.
HEARTBEAT_SECONDS = 2.0


class Membership:
    def __init__(self, server: FlowdaptServer):
        self.server = server
        self.started_at = utcnow().isoformat()
        self._task: asyncio.Task | None = None
        #: Set by ``flowdapt run`` once it knows the address it serves on.
        self.url: str | None = None

    @property
    def active(self) -> bool:
        return self._task is not None

    def info(self) -> dict[str, Any]:
        server = self.server
        return {
            "name": server.settings.name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "services": list(server.services),
            "url": self.url,
            "started_at": self.started_at,
            "active_runs": len(server.runs.active),
            "draining": server.draining,
        }

    async def start(self) -> None:
        await self._beat()
        self._task = asyncio.create_task(self._loop(), name="flowdapt-membership")

    async def _beat(self) -> None:
        await self.server.store.heartbeat_server(self.server.identity, self.info(), 3 * HEARTBEAT_SECONDS)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("could not write this server's heartbeat: %s: %s", type(exc).__name__, exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await self.server.store.remove_server(self.server.identity)
        except Exception as exc:
            log.warning("could not remove this server from the cluster list: %s", exc)

    async def servers(self) -> list[dict[str, Any]]:
        if not self.active:
            return []
        return await self.server.store.list_servers()
