"""Read-only artifacts: a namespace's artifacts, one artifact's metadata and files, one file.

Stage code writes artifacts (``flowdapt.compute.artifacts``); these routes let a client (the
dashboard, a script) read what a run wrote, e.g. the PNG plots a run's result links to by
``/artifacts/{namespace}/{name}/files/{file}``. Nothing here writes.

Paths: the namespace and the name follow the resource name pattern (400 otherwise), and a file is
a plain file name of the artifact folder: never ``..``, a separator, an absolute path or a hidden
file (the metadata file and writes in progress). On the local filesystem the file's real path must
be exactly ``<artifacts root>/<namespace>/<name>/<file>``, so a symlink anywhere below the artifacts
root (the namespace, the artifact folder or the file) is refused, and the file is opened without
following links and checked again once open. Files that a browser could run as a page (HTML, SVG,
anything not on a short list of data types) are sent as ``application/octet-stream`` attachments,
and every file response carries ``Content-Security-Policy: sandbox``, so an artifact can never run
script on the dashboard's origin.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import stat
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from flowdapt.artifacts import Artifact, file_url_path, get_filesystem, storage_defaults
from flowdapt.artifacts.interface import METADATA_FILENAME, is_local_filesystem
from flowdapt.errors import ResourceNotFoundError, ValidationError
from flowdapt.resources.base import MAX_NAME_LENGTH, NAME_RE
from flowdapt.server.http import json_response
from flowdapt.server.routes.common import ERRORS, server_of

router = APIRouter(tags=["artifacts"])

#: Served with their own content type and ``inline``; every other file is an octet-stream attachment.
INLINE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "text/csv", "application/json"}
)
MAX_FILENAME_LENGTH = 255
CHUNK = 1 << 20


class ArtifactSummary(BaseModel):
    name: str
    namespace: str
    url: str = Field(description="this artifact's path on the API")


class ArtifactFileInfo(BaseModel):
    name: str
    size: int | None
    content_type: str = Field(description="the Content-Type the file is served with")
    url: str = Field(description="the file's download path on the API")


class ArtifactDetail(ArtifactSummary):
    metadata: dict[str, Any]
    files: list[ArtifactFileInfo]


def _check_name(value: str, field: str) -> str:
    if not NAME_RE.fullmatch(value) or len(value) > MAX_NAME_LENGTH:
        raise ValidationError(
            f"invalid artifact {field} {value!r}: use letters, digits, '-' and '_' only (at most {MAX_NAME_LENGTH})",
            field=field,
        )
    return value


def _check_filename(value: str) -> str:
    if (
        not value
        or len(value) > MAX_FILENAME_LENGTH
        or value in (".", "..")
        or value.startswith(".")
        or any(c in value for c in '/\\"\x00')
        or any(ord(c) < 32 for c in value)
    ):
        raise ValidationError(
            f"invalid artifact file {value!r}: a plain file name of the artifact (no '/', '..' or leading '.')",
            field="path",
        )
    return value


def content_type_of(filename: str) -> str:
    guessed = mimetypes.guess_type(filename)[0] or ""
    return guessed if guessed in INLINE_TYPES else "application/octet-stream"


class _Location:
    """Where the server's artifacts live: its settings' storage section, never the caller's."""

    def __init__(self, request: Request):
        _, protocol, base_path, params = storage_defaults("default", settings=server_of(request).settings)
        self.fs = get_filesystem(protocol, **params)
        self.base_path = base_path.rstrip("/")
        self.local = is_local_filesystem(self.fs)
        self.root = f"{self.base_path}/artifacts"

    def contained(self, *parts: str) -> bool:
        """On the local filesystem: the real path of ``root/parts...`` is that path under the
        real root, i.e. no symlink below the root. Other filesystems have no links."""
        if not self.local:
            return True
        real_root = os.path.realpath(self.root)
        return os.path.realpath(os.path.join(self.root, *parts)) == os.path.join(real_root, *parts)

    def artifact(self, namespace: str, name: str) -> Artifact:
        _check_name(namespace, "namespace")
        _check_name(name, "name")
        missing = ResourceNotFoundError(
            f"Resource not found: no artifact {name!r} in namespace {namespace!r}"
        )
        if not self.contained(namespace, name):
            raise missing
        try:
            artifact = Artifact(name, namespace, base_path=self.base_path, _fs=self.fs)
        except FileNotFoundError:
            raise missing from None
        if self.local and not os.path.isdir(artifact.path):
            raise missing
        return artifact

    def servable(self, artifact: Artifact, filename: str) -> bool:
        return (
            not filename.startswith(".")
            and filename != METADATA_FILENAME
            and self.contained(artifact.namespace, artifact.name, filename)
        )


def _summary(namespace: str, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "url": f"/artifacts/{namespace}/{name}"}


def _list(location: _Location, namespace: str) -> list[dict[str, Any]]:
    _check_name(namespace, "namespace")
    if not location.contained(namespace):
        return []
    artifacts = Artifact.list_artifacts(namespace, base_path=location.base_path, _fs=location.fs)
    return [_summary(namespace, a.name) for a in artifacts if location.contained(namespace, a.name)]


def _detail(location: _Location, namespace: str, name: str) -> dict[str, Any]:
    artifact = location.artifact(namespace, name)
    files = []
    for entry in sorted(location.fs.ls(artifact.path, detail=True), key=lambda e: e["name"]):
        filename = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        if entry.get("type") == "directory" or not location.servable(artifact, filename):
            continue
        files.append(
            {
                "name": filename,
                "size": entry.get("size"),
                "content_type": content_type_of(filename),
                "url": file_url_path(namespace, name, filename),
            }
        )
    return {**_summary(namespace, name), "metadata": artifact.metadata, "files": files}


def _open_local(location: _Location, artifact: Artifact, filename: str) -> tuple[int, int]:
    """An open descriptor of the file and its size. Opened without following a final link, and
    its real path checked again once open (a link swapped in after the check is still refused)."""
    path = os.path.join(os.path.realpath(location.root), artifact.namespace, artifact.name, filename)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise FileNotFoundError(path) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileNotFoundError(path)
        proc = f"/proc/self/fd/{fd}"
        if os.path.exists(proc) and os.path.realpath(proc) != path:
            raise FileNotFoundError(path)
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def _chunks(fd: int) -> Iterator[bytes]:
    try:
        while chunk := os.read(fd, CHUNK):
            yield chunk
    finally:
        os.close(fd)


@router.get(
    "/artifacts/{namespace}",
    summary="List a namespace's artifacts",
    response_model=list[ArtifactSummary],
    responses=ERRORS,
    operation_id="list_artifacts",
)
async def list_artifacts(request: Request, namespace: str):
    location = _Location(request)
    return json_response(await asyncio.to_thread(_list, location, namespace))


@router.get(
    "/artifacts/{namespace}/{name}",
    summary="An artifact's metadata and files",
    response_model=ArtifactDetail,
    responses=ERRORS,
    operation_id="get_artifact",
)
async def get_artifact(request: Request, namespace: str, name: str):
    location = _Location(request)
    return json_response(await asyncio.to_thread(_detail, location, namespace, name))


@router.get(
    "/artifacts/{namespace}/{name}/files/{path:path}",
    summary="Download one file of an artifact",
    responses={
        200: {"content": {t: {} for t in sorted({*INLINE_TYPES, "application/octet-stream"})}},
        **ERRORS,
    },
    operation_id="get_artifact_file",
)
async def get_artifact_file(request: Request, namespace: str, name: str, path: str):
    location = _Location(request)
    _check_name(namespace, "namespace")
    _check_name(name, "name")
    filename = _check_filename(path)

    def open_file() -> tuple[Any, int | None]:
        artifact = location.artifact(namespace, name)
        if not location.servable(artifact, filename):
            raise FileNotFoundError(filename)
        if location.local:
            return _open_local(location, artifact, filename)
        return location.fs.cat_file(f"{artifact.path}/{filename}"), None

    try:
        body, size = await asyncio.to_thread(open_file)
    except FileNotFoundError:
        raise ResourceNotFoundError(
            f"Resource not found: artifact {name!r} in namespace {namespace!r} has no file {filename!r}"
        ) from None
    media = content_type_of(filename)
    disposition = "inline" if media in INLINE_TYPES else "attachment"
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(filename, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "no-cache",
    }
    if size is None:
        return Response(body, media_type=media, headers=headers)
    headers["Content-Length"] = str(size)
    return StreamingResponse(_chunks(body), media_type=media, headers=headers)
