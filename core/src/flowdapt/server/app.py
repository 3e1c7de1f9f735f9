"""The FastAPI application: routers at the original's root paths, error bodies, auth, CORS."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowdapt import __version__
from flowdapt.errors import FlowdaptError
from flowdapt.plugins import BUILTIN_PLUGINS, PluginSystem, get_plugin_system
from flowdapt.server.core import FlowdaptServer
from flowdapt.server.http import error_response
from flowdapt.server.middleware import GatewayMiddleware
from flowdapt.server.schemas import COMPONENTS
from flowdapt.settings import Settings, get_settings

log = logging.getLogger("flowdapt.server")


def _format_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FlowdaptError)
    async def flowdapt_error(request: Request, exc: FlowdaptError):
        status = exc.status_code
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return error_response(status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def request_validation_error(request: Request, exc: RequestValidationError):
        return error_response(422, _format_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"Not Found: no endpoint {request.method} {request.url.path} (see /docs)"
        return error_response(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception):
        log.exception("%s %s raised", request.method, request.url.path)
        return error_response(500, f"Internal Server Error: {type(exc).__name__}: {exc}")


def _install_openapi(app: FastAPI) -> None:
    def openapi():
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in COMPONENTS:
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in model_schema.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


def _router_sources(plugins: PluginSystem) -> list[tuple[str, Callable[[], Any]]]:
    """(plugin, routers callable): each registered service's routers in start order (the API's own
    routes first), then each plugin's ``flowdapt_api_routers``."""
    from flowdapt.server.services import default_services

    registry = plugins.registry("services")
    defaults = default_services(registry)
    sources: list[tuple[str, Callable[[], Any]]] = []
    for name in list(defaults) + sorted(set(registry) - set(defaults)):
        routers = getattr(registry[name].factory, "routers", None)
        if callable(routers):
            sources.append((registry[name].plugin, routers))
    for impl in plugins.hook.flowdapt_api_routers.get_hookimpls():
        sources.append((plugins.manager.get_name(impl.plugin) or repr(impl.plugin), impl.function))
    return sources


def _include_plugin_routers(app: FastAPI, plugins: PluginSystem) -> list[str]:
    """Mount the routers of every service and plugin. A third-party router whose schema cannot be
    generated is still served but left out of /openapi.json (with an error naming the plugin), so
    one plugin cannot break the API document for everyone. Returns the paths the routers declare
    public (``router.flowdapt_public_paths``, e.g. a web page's static files), for the token check."""
    builtin = {name for name, _ in BUILTIN_PLUGINS}
    public: list[str] = []
    for plugin, contribute in _router_sources(plugins):
        try:
            routers = contribute() or []
        except Exception:
            log.exception("plugin %s failed to give its API routers; its endpoints are not mounted", plugin)
            continue
        for router in routers:
            public.extend(getattr(router, "flowdapt_public_paths", ()))
            try:
                if plugin not in builtin:
                    get_openapi(title="check", version="0", routes=router.routes)
                app.include_router(router)
            except Exception as exc:
                log.error(
                    "plugin %s: its API router has a schema error (%s: %s); serving it without listing it in /openapi.json",
                    plugin,
                    type(exc).__name__,
                    exc,
                )
                app.include_router(router, include_in_schema=False)
    return public


def create_app(
    settings: Settings | None = None,
    plugins: PluginSystem | None = None,
    *,
    services: Iterable[str] | str | None = None,
    server: FlowdaptServer | None = None,
) -> FastAPI:
    """Build the API application. Its lifespan starts and stops the server (database, executor)."""
    settings = settings or get_settings()
    plugins = plugins or get_plugin_system(settings)
    server = server or FlowdaptServer(settings, plugins, services)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = FastAPI(
        title="Flowdapt",
        version=__version__,
        description="Flowdapt REST API: resources (workflows, configs, trigger rules), runs, status. "
        "Compatible with the original Flowdapt clients (flowctl 0.1.4, flowdapt-sdk 0.1.8).",
        lifespan=lifespan,
    )
    app.state.server = server
    _install_error_handlers(app)
    public_paths = _include_plugin_routers(app, plugins)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-API-Version"],
        )
    app.add_middleware(
        GatewayMiddleware,
        tokens=settings.api.all_tokens(),
        max_body_bytes=settings.api.max_body_bytes,
        observer=server.metrics,
        public_paths=public_paths,
    )
    _install_openapi(app)
    return app
