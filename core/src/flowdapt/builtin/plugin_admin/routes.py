"""``POST /plugin/install`` and ``POST /plugin/uninstall``: change the server's plugins without a
restart. The router of the built-in ``plugin_admin`` plugin (the logic is in
:mod:`flowdapt.builtin.plugin_admin.installing`), written against the public router API :mod:`flowdapt.server.api` as a
third-party plugin's would be, so the server never imports the plugin; refused unless the server
has an API token."""

from __future__ import annotations

from fastapi import APIRouter, Request

from flowdapt.builtin.plugin_admin.installing import (
    PluginInstallBody,
    PluginUninstallBody,
    install_on_server,
    parse_body,
    require_token,
    uninstall_from_server,
)
from flowdapt.server.api import ERRORS, json_response, read_body, server_of

router = APIRouter()
_RESPONSES = {**ERRORS, 403: {"description": "The server has no API token, so installing is refused"}}


def _body(model) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


@router.post(
    "/plugin/install",
    summary="Install a plugin into the server's environment and load it, without a restart",
    tags=["plugins"],
    responses=_RESPONSES,
    operation_id="install_plugin",
    openapi_extra=_body(PluginInstallBody),
)
async def install_plugin(request: Request):
    server = server_of(request)
    require_token(server)
    body = parse_body(PluginInstallBody, await read_body(request, default={}))
    return json_response(await install_on_server(server, body))


@router.post(
    "/plugin/uninstall",
    summary="Uninstall a plugin from the server's environment and unload it, without a restart",
    tags=["plugins"],
    responses=_RESPONSES,
    operation_id="uninstall_plugin",
    openapi_extra=_body(PluginUninstallBody),
)
async def uninstall_plugin(request: Request):
    server = server_of(request)
    require_token(server)
    body = parse_body(PluginUninstallBody, await read_body(request, default={}))
    return json_response(await uninstall_from_server(server, body))
