"""Helpers every router uses: the server object, version negotiation, body schemas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request

from flowdapt.server.schemas import ErrorBody
from flowdapt.server.versioning import negotiate

if TYPE_CHECKING:
    from flowdapt.server.core import FlowdaptServer


def server_of(request: Request) -> FlowdaptServer:
    return request.app.state.server


def version_of(request: Request, resource_type: str, supported: tuple[str, ...] | None = None) -> str:
    headers = request.headers
    return negotiate(resource_type, headers.get("x-api-version"), headers.get("accept"), supported)


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad request: the detail names the field"},
    401: {"model": ErrorBody, "description": "Missing or invalid token (when tokens are configured)"},
    404: {"model": ErrorBody, "description": "Not found"},
    413: {"model": ErrorBody, "description": "Body over api.max_body_bytes"},
    422: {"model": ErrorBody, "description": "Invalid query parameter"},
}


def body_schema(component: str, *, required: bool = True, description: str | None = None) -> dict[str, Any]:
    """``openapi_extra`` for a JSON body parsed by hand (so any content type is accepted)."""
    body: dict[str, Any] = {
        "required": required,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
    }
    if description:
        body["description"] = description
    return {"requestBody": body}


def object_body(description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": False,
            "description": description,
            "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
        }
    }
