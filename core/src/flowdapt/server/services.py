"""The service contract: the long-running parts of a server, contributed by plugins.

A service is registered through ``flowdapt_register_services`` (``register(name, factory,
options_model=None)``; ``factory(options, server)`` returns a :class:`Service`), and a process runs
the ones ``flowdapt run --services a,b`` names (by default every registered service whose class says
``default = True``). The server starts them in ``order`` after it opened the database and the event
bus, and stops them in reverse; ``GET /status`` shows each one's :meth:`Service.health` under its
``status_name``. The server itself knows no service by name: the built-in ``api`` and ``compute``
services are registered by :mod:`flowdapt.builtin.services`, ``triggers`` by
:mod:`flowdapt.builtin.triggers`, and a plugin that registers the same name (with the built-in
one disabled) replaces it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import APIRouter
    from pydantic import BaseModel

    from flowdapt.server.core import FlowdaptServer

log = logging.getLogger("flowdapt.server")


class Service:
    """One long-running service of a server process. Subclass it and register the class.

    Lifecycle, in the server's event loop: :meth:`start` once (an exception aborts the server's
    start-up with its message); on a stop request :meth:`drain` (stop taking new work, let work in
    flight finish within ``timeout``), then :meth:`stop`. Long-running loops go in tasks made with
    ``self.server.spawn(coro, name)``, which the server cancels after every service stopped.
    """

    #: The ``--services`` name. Set by the registration (the name it was registered under).
    name: str = ""
    #: The key of this service in ``GET /status`` ``services`` (the original's names:
    #: ``ComputeService``, ``TriggerService``...).
    status_name: ClassVar[str] = ""
    #: Start order (lower first); stopped in reverse. The API is 0, compute 10, triggers 50.
    order: ClassVar[int] = 100
    #: Run by ``flowdapt run`` when ``--services`` is not given.
    default: ClassVar[bool] = True
    #: The process serves HTTP when a service it runs says so (only ``api`` does).
    serves_http: ClassVar[bool] = False

    def __init__(self, options: BaseModel, server: FlowdaptServer):
        self.options = options
        self.server = server

    @classmethod
    def routers(cls) -> list[APIRouter]:
        """Routers mounted on every API server where the plugin is installed, whether or not this
        process runs the service (a route answers 503 naming the service when it does not: find the
        running one with ``flowdapt.server.api.running_service(request, name)``)."""
        return []

    async def start(self) -> None:
        """Start serving. Called once."""

    async def drain(self, timeout: float) -> None:
        """Take no new work; let work in flight finish within ``timeout`` seconds."""

    async def stop(self) -> None:
        """Release what :meth:`start` took. Called once, after :meth:`drain`, even when it failed."""

    def health(self) -> dict[str, Any]:
        """The service's entry in ``GET /status``: ``{"status": "OK" | "NOT_OK", ...details}``.
        Called off the event loop (it may block briefly, e.g. to ask a cluster)."""
        return {"status": "OK"}


def default_services(registry: dict[str, Any]) -> tuple[str, ...]:
    """The names ``flowdapt run`` runs without ``--services``, in start order."""
    names = [name for name, reg in registry.items() if getattr(reg.factory, "default", True)]
    return tuple(sorted(names, key=lambda n: (getattr(registry[n].factory, "order", 100), n)))
