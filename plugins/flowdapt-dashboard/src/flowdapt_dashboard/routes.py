"""The dashboard's routes: the single-page app at ``/ui``, its assets, and two aggregate endpoints.

The page and its assets hold no data and are public, so a browser can load the login form when
the server has tokens (``PUBLIC_PATHS``, read by the API server). Everything with data goes
through the token check: the public REST API, and ``/ui/api/...`` here.
"""

from __future__ import annotations

import hashlib
import mimetypes
from functools import lru_cache
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from flowdapt.server import api
from flowdapt_dashboard import summary

PREFIX = "/ui"
ASSETS = f"{PREFIX}/assets"
#: Paths the API server lets through without a token (``flowdapt_public_paths``): the page shell
#: and its static files. ``/ui/api/...`` is not among them.
PUBLIC_PATHS = (PREFIX, f"{PREFIX}/", f"{ASSETS}/*")

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}


def static_root() -> Path:
    return Path(str(resources.files("flowdapt_dashboard") / "static"))


@lru_cache(maxsize=256)
def _load(path: Path, mtime_ns: int, size: int) -> tuple[bytes, str]:
    data = path.read_bytes()
    return data, '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'


def _file_response(request: Request, path: Path) -> Response:
    stat = path.stat()
    data, etag = _load(path, stat.st_mtime_ns, stat.st_size)
    # Revalidate every time (cheap 304s): a plugin upgrade must never leave a stale script.
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(data, media_type=media, headers=headers)


def _not_found(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "status_code": 404}, status_code=404)


def create_router() -> APIRouter:
    router = api.mark_public(APIRouter(tags=["dashboard"]), *PUBLIC_PATHS)
    root = static_root().resolve()

    @router.get(PREFIX, include_in_schema=False)
    async def index(request: Request) -> Response:
        return _file_response(request, root / "index.html")

    @router.get(f"{PREFIX}/", include_in_schema=False)
    async def index_slash() -> Response:
        return RedirectResponse(PREFIX, status_code=308)

    @router.get(f"{ASSETS}/{{asset:path}}", include_in_schema=False)
    async def asset(request: Request, asset: str) -> Response:
        path = (root / asset).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return _not_found(f"no dashboard asset {asset!r}")
        return _file_response(request, path)

    @router.get(
        f"{PREFIX}/api/workflows",
        summary="Workflows with their last run (dashboard)",
        description="Every workflow with its stage count, map stages, last run and number of runs in the last 24 h.",
    )
    async def workflows(server: api.ServerDep) -> JSONResponse:
        return JSONResponse(await summary.workflow_summaries(server.store, server.runs.persist))

    @router.get(
        f"{PREFIX}/api/overview",
        summary="Run statistics for the overview page (dashboard)",
        description="Run counts per state over the last 24 h, runs started and failed per hour, recent run durations.",
    )
    async def overview(server: api.ServerDep) -> JSONResponse:
        return JSONResponse(await summary.overview(server.store, server.runs.persist))

    return router
