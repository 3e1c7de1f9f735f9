"""Run the API server under uvicorn, with a graceful stop on SIGTERM/SIGINT.

The first signal drains: no new runs, SSE streams end, in-flight runs get
``api.shutdown_timeout`` seconds to finish and are then marked failed with the reason; only then
does uvicorn stop serving (so ``wait=true`` callers get their final run). A second signal stops
at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Iterable

import uvicorn

from flowdapt.errors import ConfigurationError
from flowdapt.plugins import PluginSystem
from flowdapt.server.app import create_app
from flowdapt.server.core import FlowdaptServer, check_bind_allowed
from flowdapt.settings import Settings

log = logging.getLogger("flowdapt.server")


class _GracefulUvicorn(uvicorn.Server):
    """uvicorn with Flowdapt's two-step stop: the first SIGTERM/SIGINT drains, the second stops
    at once (in-flight runs are cancelled and recorded failed, open requests are not waited for)."""

    def __init__(self, config: uvicorn.Config, server: FlowdaptServer):
        super().__init__(config)
        self.flowdapt = server
        self._draining_task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signals = 0
        self._stopping_now = False

    async def serve(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)
        if self._stopping_now:
            # uvicorn skips the lifespan shutdown on a forced exit: stop the services here,
            # without the grace period (runs still in flight are cancelled and marked failed).
            await self.flowdapt.stop(timeout=0)

    def handle_exit(self, sig: int, frame) -> None:  # called in the signal handler
        self._signals += 1  # counted here, so two signals in quick succession are never one
        if self._loop is None or not self.flowdapt.started:
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True
            return
        if self._signals == 1:
            self._loop.call_soon_threadsafe(self._start_drain, sig)
        else:
            self._loop.call_soon_threadsafe(self._stop_now, sig)

    def _start_drain(self, sig: int) -> None:
        if self._draining_task is None and not self._stopping_now:
            log.warning(
                "received %s: draining (no new runs, up to %gs for runs in flight), then stopping; "
                "send it again to stop now",
                signal.Signals(sig).name,
                self.flowdapt.settings.api.shutdown_timeout,
            )
            self._draining_task = asyncio.ensure_future(self._drain())

    def _stop_now(self, sig: int) -> None:
        if self._stopping_now:
            return
        self._stopping_now = True
        log.warning("received %s again: stopping now; runs in flight are marked failed", signal.Signals(sig).name)
        self.flowdapt.draining = True
        if self._draining_task is not None:
            self._draining_task.cancel()
        self.force_exit = True
        self.should_exit = True

    async def _drain(self) -> None:
        try:
            await self.flowdapt.drain(self.flowdapt.settings.api.shutdown_timeout)
        finally:
            self.should_exit = True


def serve(
    settings: Settings,
    plugins: PluginSystem,
    *,
    host: str | None = None,
    port: int | None = None,
    services: Iterable[str] | str | None = None,
    log_level: str | None = None,
) -> None:
    """Serve until a signal; blocks. Raises ConfigurationError for a bind that needs a token."""
    host = host or settings.api.host
    port = settings.api.port if port is None else port
    check_bind_allowed(settings, host)
    asyncio.run(_check_store_opens(settings, plugins))
    asyncio.run(_check_event_bus_connects(settings, plugins))
    server = FlowdaptServer(settings, plugins, services)
    app = create_app(settings, plugins, server=server)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=(log_level or settings.logging.level).lower(),
        access_log=False,
        server_header=False,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    if not server.serves_http:
        # No HTTP: hold the services until a signal.
        asyncio.run(_headless(server))
        return
    # Listen before the services start: a port already in use fails at once instead of after the
    # executor started, and an executor that opens ports of its own (a local Ray instance starts
    # dozens of processes) can never take ours in between.
    sock = bind_listener(host, port)
    # uvicorn prints its "running on" line only for sockets it bound itself.
    logging.getLogger("uvicorn.error").info("Uvicorn running on http://%s:%s (Press CTRL+C to quit)", *sock.getsockname()[:2])
    _GracefulUvicorn(config, server).run(sockets=[sock])


def bind_listener(host: str, port: int) -> socket.socket:
    """A bound TCP socket for the API (uvicorn listens on it); a clear error when the address is taken."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = " (another server is running there: stop it or pass --port)" if exc.errno == 98 else ""
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    sock.set_inheritable(True)
    return sock


async def _check_store_opens(settings: Settings, plugins: PluginSystem) -> None:
    """Open (and close) the database before serving, so that an app dir it cannot use (read-only,
    missing, a newer schema) is one clear message, not a traceback from uvicorn's lifespan."""
    store = plugins.create("document_stores", settings.database.backend, settings.database.options, settings)
    await store.open()
    await store.close()


async def _check_event_bus_connects(settings: Settings, plugins: PluginSystem) -> None:
    """Connect to (and leave) the event bus before serving, so that an unreachable broker is one
    clear message (the bus's ConfigurationError naming its URL), not a traceback from the lifespan."""
    from flowdapt.events import create_event_bus

    bus = create_event_bus(settings, plugins)
    await bus.start()
    await bus.stop()


async def _headless(server: FlowdaptServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()
