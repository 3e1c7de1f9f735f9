"""Ping, status, metrics, drain and plugins."""

from __future__ import annotations

import asyncio
import importlib.metadata as md
import os
import platform
import socket
from datetime import datetime
from pathlib import Path

import psutil
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from flowdapt import __version__
from flowdapt.errors import ResourceNotFoundError
from flowdapt.plugins import PluginInfo
from flowdapt.server.http import dumps, json_response
from flowdapt.server.routes.common import ERRORS, server_of, version_of
from flowdapt.server.schemas import DrainState, Ping, Plugin, PluginFiles, SystemStatus
from flowdapt.server.versioning import API_VERSION, render

router = APIRouter()
_PING = {"app": "flowdapt", "version": __version__, "api_version": API_VERSION}


@router.get("/", summary="Ping", tags=["system"], response_model=Ping, operation_id="ping")
async def ping():
    return json_response(_PING)


_process = psutil.Process(os.getpid())


def _system_info() -> dict:
    """Blocking psutil reads: runs in a thread so /status never stalls the event loop."""
    try:
        net = psutil.net_io_counters()
        sent, recv = net.bytes_sent, net.bytes_recv
    except Exception:
        sent = recv = 0
    try:
        disk_pct = psutil.disk_usage("/").percent
    except Exception:
        disk_pct = 0.0
    try:
        fds = _process.num_fds()
    except Exception:
        fds = 0
    with _process.oneshot():
        memory = _process.memory_info().rss
        threads = _process.num_threads()
    return {
        "time": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        # Since the previous call (non-blocking); the original slept 1 s here per request.
        "cpu_pct": psutil.cpu_percent(None),
        "memory": memory,
        "disk_pct": disk_pct,
        "network_io_sent": sent,
        "network_io_recv": recv,
        "threads": threads,
        "fds": fds,
        "pid": os.getpid(),
    }


@router.get("/status", summary="Server status", tags=["system"], responses={200: {"model": SystemStatus}, **ERRORS}, operation_id="status")
async def status(request: Request):
    version = version_of(request, "system")
    server = server_of(request)
    system = await asyncio.to_thread(_system_info)
    services = await asyncio.to_thread(server.status_services)
    uname = platform.uname()
    store = type(server.store)
    document = {
        "version": __version__,
        "name": server.settings.name,
        "python": platform.python_version(),
        "hostname": socket.gethostname(),
        "database": f"{store.__module__}.{store.__qualname__}",
        "system": system,
        "os": {"name": uname.system, "version": uname.version, "release": uname.release, "machine": uname.machine},
        "services": services,
        "draining": server.draining,
        "services_running": list(server.services),
    }
    if server.membership.active:
        # Several servers on one database: every live one, with its services (docs/deployment.md).
        try:
            document["cluster"] = {"servers": await server.membership.servers()}
        except Exception as exc:
            document["cluster"] = {"error": f"{type(exc).__name__}: {exc}"}
    return json_response(render("system", version, document), "system", version)


@router.get("/metrics", summary="Metrics, newest point first", tags=["system"], responses=ERRORS, operation_id="metrics")
async def metrics(
    request: Request,
    name: str | None = Query(None, description="one metric (cpu, memory, api_latency are aliases)"),
    start_time: datetime | None = Query(None, description="ISO time; naive means UTC"),
    end_time: datetime | None = Query(None),
    max_length: int | None = Query(None, description="points per metric; negative means all"),
):
    from flowdapt.server.prometheus import wants_prometheus

    if wants_prometheus(request.headers.get("accept")):  # a Prometheus scrape: the text exposition
        return await prometheus_metrics(request)
    version = version_of(request, "metrics")
    metrics = server_of(request).metrics

    def body() -> bytes:  # tens of thousands of points for a dashboard: built off the event loop
        return dumps(metrics.query(name, start_time, end_time, max_length))

    return json_response(await asyncio.to_thread(body), "metrics", version)


@router.get(
    "/metrics/prometheus",
    summary="Metrics in the Prometheus text format",
    description=(
        "The Prometheus text exposition (format 0.0.4): runs by state, queue depth, stage and run "
        "duration histograms, worker and server counts, HTTP latency. `GET /metrics` answers the same "
        "to a client whose Accept names text/plain or application/openmetrics-text (a Prometheus "
        "scrape) and JSON otherwise. See docs/metrics.md."
    ),
    tags=["system"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
    operation_id="metrics_prometheus",
)
async def prometheus_metrics(request: Request):
    from flowdapt.server.prometheus import CONTENT_TYPE, render

    return Response(await render(server_of(request)), media_type=CONTENT_TYPE)


@router.post("/drain", summary="Stop accepting runs", tags=["system"], response_model=DrainState, operation_id="drain")
async def drain(request: Request):
    server_of(request).draining = True
    return json_response({"draining": True})


@router.delete("/drain", summary="Accept runs again", tags=["system"], response_model=DrainState, operation_id="undrain")
async def undrain(request: Request):
    server_of(request).draining = False
    return json_response({"draining": False})


# -- plugins -------------------------------------------------------------------------------

SKIP_WORDS = ("__pycache__", ".pyc", ".py", ".egg-info", ".dist-info", ".git", ".github", ".pytest_cache", "tests", "docs")
#: Never data: path hooks an installer writes (editable installs, ``_virtualenv.pth``), which
#: would also tell a caller where the project lives.
SKIP_SUFFIXES = (".pth",)


def _shown_name(info: PluginInfo, plugins: dict[str, PluginInfo], version: str) -> str:
    """v1alpha1 names a plugin by its distribution, as the original did; a distribution that
    provides several plugins (the core's built-ins) keeps their own names, which stay unique."""
    if version != "v1alpha1" or not info.distribution:
        return info.name
    siblings = sum(1 for p in plugins.values() if p.distribution == info.distribution)
    return info.distribution if siblings == 1 else info.name


def _plugin_document(info: PluginInfo, name: str | None = None) -> dict:
    meta = info.metadata or {}
    return {
        "name": name or info.name,
        "metadata": {
            "description": str(meta.get("description") or ""),
            "author": str(meta.get("author") or ""),
            "license": str(meta.get("license") or ""),
            "url": str(meta.get("url") or ""),
            "version": str(meta.get("version") or info.version or ""),
            "requirements": [str(r) for r in meta.get("requirements") or []],
        },
        "module": info.module,
        "plugin": info.name,
        "distribution": info.distribution,
        "enabled": info.enabled,
        "error": info.error,
        "hooks": list(info.hooks),
    }


def _find_plugin(request: Request, plugin_name: str) -> PluginInfo:
    plugins = server_of(request).plugins.plugins
    info = plugins.get(plugin_name)
    if info is None:
        info = next((p for p in plugins.values() if p.distribution == plugin_name), None)
    if info is None:
        raise ResourceNotFoundError(
            f"Resource not found: no plugin named {plugin_name!r} (installed: {', '.join(sorted(plugins)) or 'none'})"
        )
    return info


def _data_files(info: PluginInfo) -> dict[str, Path]:
    """The distribution's data files (not code, tests or docs), by base name."""
    if not info.distribution:
        return {}
    try:
        dist = md.distribution(info.distribution)
    except md.PackageNotFoundError:
        return {}
    files: dict[str, Path] = {}
    for entry in dist.files or []:
        text = str(entry)
        if any(word in text for word in SKIP_WORDS) or text.endswith(SKIP_SUFFIXES):
            continue
        if entry.parts and entry.parts[0] == "..":  # console scripts and the like, outside site-packages
            continue
        path = Path(str(dist.locate_file(entry)))
        if path.is_file():
            files.setdefault(path.name, path)
    return files


@router.get("/plugin/", summary="List plugins", tags=["plugins"], responses={200: {"model": list[Plugin]}, **ERRORS}, operation_id="list_plugins")
async def list_plugins(request: Request):
    version = version_of(request, "plugin")
    plugins = server_of(request).plugins.plugins
    documents = [_plugin_document(i, _shown_name(i, plugins, version)) for i in plugins.values()]
    return json_response(sorted(documents, key=lambda d: d["name"]), "plugin", version)


@router.get("/plugin/{plugin_name}", summary="Get a plugin", tags=["plugins"], responses={200: {"model": Plugin}, **ERRORS}, operation_id="get_plugin")
async def get_plugin(request: Request, plugin_name: str):
    version = version_of(request, "plugin")
    info = _find_plugin(request, plugin_name)
    return json_response(_plugin_document(info, _shown_name(info, server_of(request).plugins.plugins, version)), "plugin", version)


@router.get(
    "/plugin/{plugin_name}/files",
    summary="List a plugin's data files",
    tags=["plugins"],
    responses={200: {"model": PluginFiles}, **ERRORS},
    operation_id="list_plugin_files",
)
async def list_plugin_files(request: Request, plugin_name: str):
    version = version_of(request, "plugin.files")
    info = _find_plugin(request, plugin_name)
    files = await asyncio.to_thread(_data_files, info)
    return json_response({"files": sorted(files)}, "plugin.files", version)


@router.get(
    "/plugin/{plugin_name}/files/{file_name:path}",
    summary="Download a plugin data file (by base name)",
    tags=["plugins"],
    responses={200: {"content": {"application/octet-stream": {}}}, **ERRORS},
    operation_id="get_plugin_file",
)
async def get_plugin_file(request: Request, plugin_name: str, file_name: str):
    info = _find_plugin(request, plugin_name)
    files = await asyncio.to_thread(_data_files, info)
    path = files.get(Path(file_name).name)
    if path is None:
        raise ResourceNotFoundError(f"Resource not found: plugin {info.name!r} has no data file {file_name!r}")
    data = await asyncio.to_thread(path.read_bytes)
    return Response(
        data, media_type="application/octet-stream", headers={"Content-Disposition": f'attachment; filename="{path.name}"'}
    )
