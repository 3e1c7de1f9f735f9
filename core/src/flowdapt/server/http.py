"""Request and response helpers shared by the routers: JSON bodies, versioned responses, errors."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from flowdapt import __version__
from flowdapt.errors import FlowdaptError
from flowdapt.resources.parsing import DEFAULT_LIMITS, ParseLimits, load_json, load_yaml
from flowdapt.server.versioning import content_type

SERVER_HEADER = f"flowdapt-{__version__}-uvicorn".encode()
_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class PayloadTooLargeError(FlowdaptError):
    status_code = 413


class RunNotActiveError(FlowdaptError):
    """The run already ended, so it cannot be cancelled."""

    status_code = 409


class ServiceUnavailableError(FlowdaptError):
    status_code = 503


class UnauthorizedError(FlowdaptError):
    status_code = 401


def _default(obj: Any) -> Any:
    """JSON for the values a stage may return that JSON has no type for."""
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode()
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    for attr in ("tolist", "to_dict"):  # numpy scalars/arrays, pandas objects
        method = getattr(obj, attr, None)
        if callable(method):
            return method()
    return repr(obj)


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=_default, option=_OPTS)


def json_response(data: Any, resource_type: str | None = None, version: str | None = None, status: int = 200) -> Response:
    """An ORJSON response; versioned content type and ``X-API-Version`` when a type is given."""
    body = data if isinstance(data, bytes) else dumps(data)
    if resource_type and version:
        return Response(body, status, {"X-API-Version": version}, media_type=content_type(resource_type, version))
    return Response(body, status, media_type="application/json")


def error_body(status: int, detail: Any) -> bytes:
    return orjson.dumps({"detail": detail, "status_code": status})


def error_response(status: int, detail: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(error_body(status, detail), status, dict(headers or {}), media_type="application/json")


#: Bodies up to this size are parsed on the event loop (microseconds); larger ones in a thread,
#: so that a big document never stalls the other requests.
INLINE_PARSE_BYTES = 64 * 1024


def _limits_of(request: Request) -> ParseLimits:
    server = getattr(request.app.state, "server", None)
    api = getattr(getattr(server, "settings", None), "api", None)
    if api is None:
        return DEFAULT_LIMITS
    return ParseLimits(max_nodes=api.max_document_nodes, max_depth=api.max_document_depth)


def parse_body(raw: bytes, ctype: str, limits: ParseLimits, what: str) -> Any:
    if "yaml" in ctype:
        return load_yaml(raw, limits=limits, what=what)
    return load_json(raw, limits=limits, what=what)


async def read_body(request: Request, *, default: Any = None, what: str = "request body") -> Any:
    """Parse a JSON (or YAML, by content type) body whatever the declared content type, like the
    original server; an empty body gives ``default``. Bounded: alias expansion, nesting depth and
    duplicate keys are checked before anything is built (see flowdapt.resources.parsing)."""
    raw = await request.body()
    if not raw.strip():
        return default
    ctype = request.headers.get("content-type", "")
    limits = _limits_of(request)
    if len(raw) <= INLINE_PARSE_BYTES:
        return parse_body(raw, ctype, limits, what)
    return await asyncio.to_thread(parse_body, raw, ctype, limits, what)
