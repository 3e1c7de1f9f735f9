"""The server: its database, executor, run service and event hub, started and stopped together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from flowdapt.engine.executor import Executor
from flowdapt.engine.prepare import ensure_user_modules
from flowdapt.errors import ConfigurationError
from flowdapt.events import EventBus, create_event_bus
from flowdapt.plugins import PluginSystem
from flowdapt.server.events import EventHub
from flowdapt.server.identity import owner_alive, process_identity  # noqa: F401 - owner_alive re-exported
from flowdapt.server.membership import Membership
from flowdapt.server.metrics import Metrics
from flowdapt.server.services import Service, default_services
from flowdapt.settings import Settings
from flowdapt.storage import DocumentStore

log = logging.getLogger("flowdapt.server")

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def parse_services(value: str | Iterable[str] | None, registry: dict[str, Any]) -> tuple[str, ...]:
    """The services one process runs, in start order: those named (``api,compute``), or by default
    every registered service that is on by default. ``registry`` is the plugin system's
    ``services`` registry (name -> registration)."""
    if value is None:
        names = default_services(registry)
    else:
        items = value.split(",") if isinstance(value, str) else list(value)
        names = tuple(dict.fromkeys(s.strip().lower() for s in items if s.strip()))
    unknown = [n for n in names if n not in registry]
    if unknown or not names:
        available = ", ".join(default_services(registry) + tuple(sorted(set(registry) - set(default_services(registry)))))
        raise ConfigurationError(
            f"unknown service(s) {', '.join(unknown) or '(none given)'}; choose from {available or '(none installed)'} "
            "(e.g. --services api,compute; a service comes from an installed, enabled plugin)"
        )
    return tuple(sorted(names, key=lambda n: (getattr(registry[n].factory, "order", 100), n)))


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS or host.startswith("127."):
        return True
    return False


def check_bind_allowed(settings: Settings, host: str) -> None:
    """Refuse to serve on a non-loopback address without a token."""
    if is_loopback(host) or settings.api.all_tokens():
        return
    raise ConfigurationError(
        f"refusing to listen on {host} without an API token: anyone who can reach it could run code. "
        "Set one with FLOWDAPT__API__TOKEN=<secret> (or api.tokens in flowdapt.yaml); generate a secret with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`. Or bind to 127.0.0.1."
    )


class FlowdaptServer:
    """Everything one ``flowdapt run`` process holds. Routers reach it as ``request.app.state.server``."""

    def __init__(self, settings: Settings, plugins: PluginSystem, services: Iterable[str] | None = None):
        from flowdapt.server.resources import ResourceService
        from flowdapt.server.runs import RunService

        self.settings = settings
        self.plugins = plugins
        # Every registration hook runs now: a plugin broken in one shows in /plugins and the log.
        plugins.registries  # noqa: B018
        self.services = parse_services(services, plugins.registry("services"))
        self.identity = process_identity()
        self.store: DocumentStore = plugins.create(
            "document_stores", settings.database.backend, settings.database.options, settings
        )
        #: Set by the compute service while it runs (None on a server without one).
        self.executor: Executor | None = None
        self.events = EventHub()
        #: The event bus (``event_bus.url``): workflow, stage, resource and trigger events for the
        #: trigger service and other servers; run requests from ``run_workflow`` actions.
        self.event_bus: EventBus = create_event_bus(settings, plugins)
        #: Extension point: kind -> ``fn(resource) -> dict`` of extra top-level fields for
        #: ``GET /{kind}/`` responses (the trigger service adds ``status``: next and last fire).
        self.resource_extras: dict[str, Any] = {}
        self.metrics = Metrics()
        self.event_bus.observer = self.metrics
        self.draining = False
        self.resources = ResourceService(self)
        self.runs = RunService(self)
        self.membership = Membership(self)
        self._background: list[asyncio.Task] = []
        #: The running services by name, in start order (built at start).
        self.running_services: dict[str, Service] = {}
        self.started = False

    @property
    def serves_http(self) -> bool:
        registry = self.plugins.registry("services")
        return any(getattr(registry[name].factory, "serves_http", False) for name in self.services)

    def service(self, name: str) -> Service | None:
        """The running service registered as ``name`` in this process, or None."""
        return self.running_services.get(name)

    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._background.append(task)
        return task

    async def start(self) -> None:
        ensure_user_modules(self.settings)
        await self.store.open()
        try:
            await self.event_bus.start()
            from flowdapt.server.run_queue import queue_enabled

            if queue_enabled(self):
                await self.runs.start_queue()
                await self.membership.start()
            for name in self.services:
                service = self.plugins.create("services", name, None, self)
                service.name = name
                await service.start()
                self.running_services[name] = service
            self.spawn(self.metrics.run_sampler(), "flowdapt-metrics")
            self.plugins.hook.flowdapt_server_startup(server=self)
        except BaseException:
            await self._close()
            raise
        self.started = True
        log.info("flowdapt server %s started (services: %s)", self.settings.name, ", ".join(self.services))

    async def drain(self, timeout: float | None = None) -> None:
        """Refuse new work; each service (last started first) lets its work in flight finish
        within ``timeout`` (in-flight runs still going then are marked failed with the reason).
        Called again (a second signal stops at once: ``timeout=0``) it cuts the wait short."""
        self.draining = True
        self.events.close()
        timeout = self.settings.api.shutdown_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        for name, service in reversed(list(self.running_services.items())):
            try:
                await service.drain(max(0.0, deadline - loop.time()))
            except Exception:
                log.exception("draining the %s service failed", name)

    async def stop(self, timeout: float | None = None) -> None:
        """Drain (see :meth:`drain`), then stop every service, the event bus and the database."""
        if not self.started:
            return
        self.started = False
        await self.drain(timeout)
        try:
            self.plugins.hook.flowdapt_server_shutdown(server=self)
        except Exception:
            log.exception("a flowdapt_server_shutdown hook failed")
        await self._close()

    async def _close(self) -> None:
        for name, service in reversed(list(self.running_services.items())):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping the %s service failed", name)
        self.running_services.clear()
        await self.runs.stop_queue()
        await self.membership.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        try:
            await self.event_bus.stop()
        except Exception:
            log.exception("stopping the event bus failed")
        await self.store.close()

    def status_services(self) -> dict[str, Any]:
        services: dict[str, Any] = {"CoreService": {"status": "OK"}}
        for name in self.services:
            service = self.running_services.get(name)
            key = (service.status_name if service else getattr(self.plugins.registry("services")[name].factory, "status_name", "")) or ""
            if not key:
                continue
            if service is None:
                services[key] = {"status": "NOT_OK", "detail": f"the {name} service is not running"}
                continue
            try:
                services[key] = service.health()
            except Exception as exc:
                services[key] = {"status": "NOT_OK", "error": f"{type(exc).__name__}: {exc}"}
        return services
