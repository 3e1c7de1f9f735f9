"""The public API for API routers and services, built-in or from a plugin's
``flowdapt_api_routers()`` / ``flowdapt_register_services``.

A router reaches the running server through FastAPI dependencies rather than through
``request.app.state``::

    from fastapi import APIRouter
    from flowdapt.server import api

    router = APIRouter(prefix="/hello", tags=["hello"])

    @router.get("/{name}", responses=api.ERRORS)
    async def hello(name: str, store: api.StoreDep, settings: api.SettingsDep):
        workflow = await store.get("workflow", name)  # raises ResourceNotFoundError -> 404
        return api.json_response({"greeting": f"hello {workflow.metadata.name}", "server": settings.name})

Auth: when the server has API tokens (``api.token``/``api.tokens``) its gateway refuses every
request without one before any router sees it, so a route needs nothing to be protected. Paths
that hold no data (a web page, static files) can be served without a token with
:func:`mark_public`. A route that changes the server's environment or runs code should depend on
:func:`require_api_token` (``dependencies=[Depends(api.require_api_token)]``), which refuses with
403 when the server has no token at all, whatever address it listens on.

Errors: raise a :class:`flowdapt.errors.FlowdaptError` subclass (``ValidationError`` 400,
``ResourceNotFoundError`` 404, :class:`ServiceUnavailableError` 503, ...); the server answers with
the original's JSON error body ``{"status_code": ..., "detail": ...}``.

(No ``from __future__ import annotations`` here: FastAPI reads the dependency aliases at runtime.)
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from flowdapt.errors import FlowdaptError
from flowdapt.plugins import PluginSystem
from flowdapt.server.core import FlowdaptServer
from flowdapt.server.http import ServiceUnavailableError, json_response, read_body
from flowdapt.server.routes.common import ERRORS, object_body, server_of, version_of
from flowdapt.server.services import Service
from flowdapt.settings import Settings
from flowdapt.storage import DocumentStore


class ApiTokenRequiredError(FlowdaptError):
    """The route runs code or changes the environment, and the server has no API token."""

    status_code = 403


def get_server(request: Request) -> FlowdaptServer:
    """The running :class:`flowdapt.server.core.FlowdaptServer` (settings, store, executor,
    plugins, event bus, services)."""
    return server_of(request)


def get_store(request: Request) -> DocumentStore:
    """The server's document store (resources and runs), opened."""
    return server_of(request).store


def get_settings(request: Request) -> Settings:
    """The server's :class:`flowdapt.settings.Settings`."""
    return server_of(request).settings


def get_plugins(request: Request) -> PluginSystem:
    """The server's plugin system as it is now (installing a plugin replaces it)."""
    return server_of(request).plugins


def require_api_token(request: Request) -> None:
    """Refuse (403) unless the server has an API token configured. The gateway has already
    checked the caller's token by the time this runs."""
    if not server_of(request).settings.api.all_tokens():
        raise ApiTokenRequiredError(
            f"{request.method} {request.url.path} needs an API token on the server: start it with "
            "FLOWDAPT__API__TOKEN=<secret> and call it with --token/FLOWDAPT_TOKEN"
        )


def running_service(request: Request, name: str, kind: type | None = None) -> Service:
    """The service ``name`` this server process runs (of class ``kind`` when given, so a route
    finds its own plugin's service, not a replacement's); 503 naming it when it runs elsewhere."""
    service = server_of(request).service(name)
    if service is None or (kind is not None and not isinstance(service, kind)):
        raise ServiceUnavailableError(
            f"this server runs no {name} service; start one with `flowdapt run` (or --services ...,{name})"
        )
    return service


ServerDep = Annotated[FlowdaptServer, Depends(get_server)]
StoreDep = Annotated[DocumentStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PluginsDep = Annotated[PluginSystem, Depends(get_plugins)]


def mark_public(router: APIRouter, *paths: str) -> APIRouter:
    """Serve ``paths`` of ``router`` without a token (exact paths, or prefixes ending in ``*``).
    Only for pages and files that hold no data. Returns the router."""
    existing = list(getattr(router, "flowdapt_public_paths", ()))
    router.flowdapt_public_paths = [*existing, *paths]  # type: ignore[attr-defined]
    return router


__all__ = [
    "ERRORS",
    "ApiTokenRequiredError",
    "PluginsDep",
    "ServerDep",
    "Service",
    "ServiceUnavailableError",
    "SettingsDep",
    "StoreDep",
    "get_plugins",
    "get_server",
    "get_settings",
    "get_store",
    "json_response",
    "mark_public",
    "object_body",
    "read_body",
    "require_api_token",
    "running_service",
    "server_of",
    "version_of",
]
