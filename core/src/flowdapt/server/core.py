"""The server: its database, executor, run service and event hub, started and stopped together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from flowdapt.engine.executor import Executor
from flowdapt.engine.prepare import create_executor, ensure_user_modules
from flowdapt.errors import ConfigurationError
from flowdapt.events import EventBus, create_event_bus, serve_run_requests
from flowdapt.plugins import PluginSystem
from flowdapt.server.events import EventHub
from flowdapt.server.identity import owner_alive, process_identity  # noqa: F401 - owner_alive re-exported
from flowdapt.server.metrics import Metrics
from flowdapt.settings import Settings
from flowdapt.storage import DocumentStore

log = logging.getLogger("flowdapt.server")

#: Services one process can run; ``triggers`` is started by the plugin that provides it,
#: through the ``flowdapt_server_startup`` hook (it checks ``"triggers" in server.services``).
KNOWN_SERVICES = ("api", "compute", "triggers")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def parse_services(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return KNOWN_SERVICES
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(s.strip().lower() for s in items if s.strip()))
    unknown = [n for n in names if n not in KNOWN_SERVICES]
    if unknown or not names:
        raise ConfigurationError(
            f"unknown service(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(KNOWN_SERVICES)} "
            "(e.g. --services api,compute)"
        )
    return names


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
        self.services = parse_services(services)
        self.identity = process_identity()
        self.store: DocumentStore = plugins.create(
            "document_stores", settings.database.backend, settings.database.options, settings
        )
        self.executor: Executor | None = None
        self.events = EventHub()
        #: The event bus (``event_bus.url``): workflow, stage, resource and trigger events for the
        #: trigger service and other servers; run requests from ``run_workflow`` actions.
        self.event_bus: EventBus = create_event_bus(settings, plugins)
        #: Extension point: kind -> ``fn(resource) -> dict`` of extra top-level fields for
        #: ``GET /{kind}/`` responses (the trigger service adds ``status``: next and last fire).
        self.resource_extras: dict[str, Any] = {}
        #: The trigger service, when this process runs one (set by the plugin that provides it).
        self.triggers: Any = None
        self.metrics = Metrics()
        self.event_bus.observer = self.metrics
        self.draining = False
        self.resources = ResourceService(self)
        self.runs = RunService(self)
        self._background: list[asyncio.Task] = []
        self.started = False

    @property
    def compute(self) -> bool:
        return "compute" in self.services

    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._background.append(task)
        return task

    async def start(self) -> None:
        ensure_user_modules(self.settings)
        await self.store.open()
        try:
            await self.event_bus.start()
            if self.compute:
                self.executor = create_executor(self.settings, self.plugins)
                await self.executor.start()
                await self.runs.recover()
                self.spawn(self.runs.retention_loop(), "flowdapt-run-retention")
                await serve_run_requests(self.event_bus, self.runs.start_requested)
            self.spawn(self.metrics.run_sampler(), "flowdapt-metrics")
            self.plugins.hook.flowdapt_server_startup(server=self)
        except BaseException:
            await self._close()
            raise
        self.started = True
        log.info("flowdapt server %s started (services: %s)", self.settings.name, ", ".join(self.services))

    async def stop(self, timeout: float | None = None) -> None:
        """Refuse new runs, let in-flight runs finish within ``timeout``, mark the rest failed."""
        if not self.started:
            return
        self.started = False
        self.draining = True
        self.events.close()
        timeout = self.settings.api.shutdown_timeout if timeout is None else timeout
        await self.runs.shutdown(timeout)
        try:
            self.plugins.hook.flowdapt_server_shutdown(server=self)
        except Exception:
            log.exception("a flowdapt_server_shutdown hook failed")
        await self._close()

    async def _close(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        try:
            await self.event_bus.stop()
        except Exception:
            log.exception("stopping the event bus failed")
        if self.executor is not None:
            try:
                await self.executor.stop()
            except Exception:
                log.exception("stopping the executor failed")
        await self.store.close()

    def status_services(self) -> dict[str, Any]:
        services: dict[str, Any] = {"CoreService": {"status": "OK"}}
        if self.compute:
            ok = self.executor is not None and self.executor.running
            env: dict[str, Any] = {}
            if self.executor is not None:
                try:
                    env = self.executor.environment_info()
                except Exception as exc:  # a cluster that went away
                    env = {"error": f"{type(exc).__name__}: {exc}"}
                    ok = False
            services["ComputeService"] = {
                "status": "OK" if ok else "NOT_OK",
                "executor": f"{type(self.executor).__module__}.{type(self.executor).__qualname__}" if self.executor else None,
                "environment": env,
                "active_runs": len(self.runs.active),
                "draining": self.draining,
            }
        if "triggers" in self.services:
            running = self.triggers is not None
            services["TriggerService"] = {
                "status": "OK" if running else "NOT_OK",
                **({} if running else {"detail": "no trigger service started (is the triggers plugin installed and enabled?)"}),
            }
        return services
