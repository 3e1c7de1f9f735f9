"""``/workflows/``, ``/configs/``, ``/triggers/``: the same CRUD shape for each resource kind."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request

from flowdapt.server.http import dumps, json_response, read_body
from flowdapt.server.routes.common import ERRORS, body_schema, server_of, version_of
from flowdapt.server.schemas import RESOURCE_SCHEMAS
from flowdapt.server.versioning import has_downgrade, render

#: (path prefix, kind, tag)
RESOURCE_ROUTES = (("/workflows", "workflow", "workflows"), ("/configs", "config", "configs"), ("/triggers", "trigger_rule", "triggers"))

DRY_RUN = Query(False, description="validate only; nothing is written")


def _shown(kind: str, version: str, body: bytes | dict | list) -> Any:
    """The body as ``version`` shows it; JSON bytes are parsed only when that version needs it."""
    if not has_downgrade(kind, version):
        return body
    return render(kind, version, orjson.loads(body) if isinstance(body, bytes) else body)


def resource_router(prefix: str, kind: str, tag: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[tag])
    schema = RESOURCE_SCHEMAS[kind]
    component = schema.__name__
    responses = {200: {"model": schema}, **ERRORS}

    def with_extras(request: Request, resource) -> bytes | dict:
        # Extra fields a service adds to this kind (server.resource_extras), e.g. a trigger's status.
        extras = server_of(request).resource_extras.get(kind)
        if extras is None:
            return resource.__pydantic_serializer__.to_json(resource)
        return {**resource.to_document(), **(extras(resource) or {})}

    @router.get("/", summary=f"List {tag}", responses={200: {"model": list[schema]}, **ERRORS}, operation_id=f"list_{kind}s")
    async def list_resources(request: Request):
        version = version_of(request, kind)
        if kind in server_of(request).resource_extras:
            items = await server_of(request).resources.list(kind)
            return json_response(_shown(kind, version, [with_extras(request, item) for item in items]), kind, version)
        return json_response(_shown(kind, version, await server_of(request).resources.list_json(kind)), kind, version)

    @router.post(
        "/",
        summary=f"Create a {kind}",
        responses=responses,
        openapi_extra=body_schema(component),
        operation_id=f"create_{kind}",
    )
    async def create_resource(request: Request, dry_run: bool = DRY_RUN):
        # config.v1alpha2 is also what the SDK's create_config names: v1alpha1 plus an ignored spec.new.
        version = version_of(request, kind)
        body = await read_body(request, what=f"the {kind} body")
        created = await server_of(request).resources.create(kind, body, dry_run=dry_run)
        return json_response(_shown(kind, version, created.to_document()), kind, version)

    @router.get("/{identifier}", summary=f"Get a {kind} by uid or name", responses=responses, operation_id=f"get_{kind}")
    async def get_resource(request: Request, identifier: str):
        version = version_of(request, kind)
        resource = await server_of(request).resources.get(kind, identifier)
        return json_response(_shown(kind, version, with_extras(request, resource)), kind, version)

    @router.put(
        "/{identifier}",
        summary=f"Update a {kind}",
        description="Fields of metadata and spec present in the body replace the stored ones.",
        responses=responses,
        openapi_extra=body_schema(component),
        operation_id=f"update_{kind}",
    )
    async def update_resource(request: Request, identifier: str, dry_run: bool = DRY_RUN):
        version = version_of(request, kind)
        body = await read_body(request, what=f"the {kind} body")
        updated = await server_of(request).resources.update(kind, identifier, body, dry_run=dry_run)
        return json_response(_shown(kind, version, updated.to_document()), kind, version)

    @router.delete("/{identifier}", summary=f"Delete a {kind}", responses=responses, operation_id=f"delete_{kind}")
    async def delete_resource(request: Request, identifier: str):
        version = version_of(request, kind)
        deleted = await server_of(request).resources.delete(kind, identifier)
        return json_response(dumps(_shown(kind, version, deleted.to_document())), kind, version)

    return router
