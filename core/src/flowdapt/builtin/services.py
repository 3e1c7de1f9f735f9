"""Built-in services of ``flowdapt run``: ``api`` (the REST API, its routes) and ``compute`` (the
executor, which runs the workflows). ``triggers`` comes from :mod:`flowdapt.builtin.triggers`."""

from __future__ import annotations

import logging
from typing import Any

from flowdapt.hookspecs import hookimpl
from flowdapt.server.services import Service

log = logging.getLogger("flowdapt.server")


class ApiService(Service):
    """The REST API: the process serves HTTP, with the resource, run, artifact and status routes.

    Its lifecycle is the HTTP server's (uvicorn, started by ``flowdapt run``); the draining of
    streams and requests is the server's."""

    status_name = ""  # the original lists no API service in /status (CoreService is the server)
    order = 0
    serves_http = True

    @classmethod
    def routers(cls) -> list[Any]:
        from flowdapt.server.routes import artifacts, resources, runs, system

        # runs before /workflows/{identifier}, so /workflows/run/... resolves to the run routes
        routers = [system.router, artifacts.router, runs.router]
        routers.extend(resources.resource_router(prefix, kind, tag) for prefix, kind, tag in resources.RESOURCE_ROUTES)
        return routers


class ComputeService(Service):
    """Runs workflows on the configured executor: starts it, recovers the runs of a server that
    stopped, expires old runs, and takes run requests from the event bus (``run_workflow``)."""

    status_name = "ComputeService"
    order = 10

    def __init__(self, options, server):
        super().__init__(options, server)
        self._requests = None

    async def start(self) -> None:
        from flowdapt.engine.prepare import create_executor
        from flowdapt.events import serve_run_requests

        server = self.server
        executor = create_executor(server.settings, server.plugins)
        await executor.start()
        server.executor = executor
        await server.runs.recover()
        server.spawn(server.runs.retention_loop(), "flowdapt-run-retention")
        self._requests = await serve_run_requests(server.event_bus, server.runs.start_requested)
        if server.runs.queue:
            from flowdapt.server.run_queue import RunQueueWorker

            worker = RunQueueWorker(server)
            server.runs.worker = worker
            await worker.start()

    async def drain(self, timeout: float) -> None:
        if self._requests is not None:
            requests, self._requests = self._requests, None
            try:
                await requests.close()
            except Exception:
                log.exception("closing the run-request consumer failed")
        worker = self.server.runs.worker
        if worker is not None:
            # Queued runs that do not finish in time go back to the queue for another server.
            await worker.hand_back(timeout)
        await self.server.runs.shutdown(timeout)

    async def stop(self) -> None:
        executor, self.server.executor = self.server.executor, None
        if executor is not None:
            await executor.stop()

    def health(self) -> dict[str, Any]:
        server = self.server
        executor = server.executor
        ok = executor is not None and executor.running
        env: dict[str, Any] = {}
        if executor is not None:
            try:
                env = executor.environment_info()
            except Exception as exc:  # a cluster that went away
                env = {"error": f"{type(exc).__name__}: {exc}"}
                ok = False
        return {
            "status": "OK" if ok else "NOT_OK",
            "run_queue": server.runs.queue,
            "executor": f"{type(executor).__module__}.{type(executor).__qualname__}" if executor else None,
            "environment": env,
            "active_runs": len(server.runs.active),
            "draining": server.draining,
        }


@hookimpl
def flowdapt_register_services(register):
    register("api", ApiService)
    register("compute", ComputeService)
