"""The public plugin API (docs/hooks.md): a plugin's router reaches the server's store, settings
and plugins through ``flowdapt.server.api``, and its CLI command talks to the server through
``flowdapt.cli.api`` with the built-in commands' options, output formats and exit codes."""

from __future__ import annotations

import json
import types

import pytest
import typer
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from flowdapt.cli import api as cli
from flowdapt.hookspecs import hookimpl
from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.server import api, create_app
from tests.server.conftest import make_settings, squares_workflow, start_server

pytestmark = pytest.mark.timeout(120)

TOKEN = "plugin-api-token"


def _router():
    # ``api`` is imported at module level: with ``from __future__ import annotations`` FastAPI
    # resolves ``api.StoreDep`` from the module's globals.
    from fastapi import APIRouter, Depends

    from flowdapt.errors import ResourceNotFoundError

    router = APIRouter(prefix="/hello", tags=["hello"])

    @router.get("/page")
    async def page():
        return api.json_response({"page": "no data here"})

    @router.get("/{name}", responses=api.ERRORS)
    async def hello(name: str, store: api.StoreDep, settings: api.SettingsDep, plugins: api.PluginsDep, server: api.ServerDep):
        workflow = await store.get("workflow", name)
        if workflow is None:
            raise ResourceNotFoundError(f"no workflow named {name!r}")
        return api.json_response(
            {
                "greeting": f"hello {workflow.metadata.name}",
                "stages": len(workflow.spec.stages),
                "server": settings.name,
                "plugin_loaded": "hello" in plugins.plugins,
                "compute": (server.service("compute") is not None),
            }
        )

    @router.post("/admin", dependencies=[Depends(api.require_api_token)])
    async def admin():
        return api.json_response({"admin": True})

    return api.mark_public(router, "/hello/page")


def _hello_command():
    def hello(
        name: str,
        server: cli.ServerOption = None,
        token: cli.TokenOption = None,
        output: cli.OutputOption = "table",
    ) -> None:
        """Greet a workflow through the plugin's own route."""
        with cli.client(server, token) as client:
            answer = cli.call(client.request, "GET", f"/hello/{name}")
        if output == "table":
            cli.print_table(["WORKFLOW", "STAGES", "GREETING"], [[name, answer["stages"], answer["greeting"]]])
        else:
            cli.dump(answer, output)

    return hello


@hookimpl
def flowdapt_api_routers():
    return [_router()]


@hookimpl
def flowdapt_cli_commands(app):
    app.command("hello")(_hello_command())


PLUGIN = types.ModuleType("flowdapt_test_hello")
PLUGIN.flowdapt_api_routers = flowdapt_api_routers
PLUGIN.flowdapt_cli_commands = flowdapt_cli_commands


def _plugins():
    return create_plugin_system(load_entry_points=False, plugins=[*BUILTIN_PLUGINS, ("hello", PLUGIN)])


@pytest.fixture
def secured(tmp_path, stages_package):
    live = start_server(make_settings(tmp_path / "app", {"api.tokens": [TOKEN], "name": "plugin-api"}), plugins=_plugins())
    with live.client(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        assert http.post("/workflows/", json=squares_workflow("squares")).status_code in (200, 201)
    yield live
    live.stop()


def test_a_plugin_router_gets_the_store_settings_and_plugins_through_dependencies(secured):
    with secured.client() as anonymous:
        assert anonymous.get("/hello/squares").status_code == 401  # the gateway guards plugin routes too
        assert anonymous.get("/hello/page").json() == {"page": "no data here"}  # mark_public
    with secured.client(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        answer = http.get("/hello/squares").json()
        assert answer == {"greeting": "hello squares", "stages": 3, "server": "plugin-api", "plugin_loaded": True, "compute": True}
        missing = http.get("/hello/nope")
        assert missing.status_code == 404 and missing.json() == {"status_code": 404, "detail": "no workflow named 'nope'"}
        assert http.post("/hello/admin").json() == {"admin": True}
        assert "/hello/{name}" in http.get("/openapi.json").json()["paths"]


def test_require_api_token_refuses_on_a_server_without_tokens(tmp_path, stages_package):
    app = create_app(make_settings(tmp_path / "app"), _plugins(), services="api")
    with TestClient(app) as http:
        refused = http.post("/hello/admin")
        assert refused.status_code == 403
        assert "needs an API token on the server" in refused.json()["detail"]


def _cli_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:  # a group, as the flowdapt app is
        pass

    PLUGIN.flowdapt_cli_commands(app=app)
    return app


def test_a_plugin_cli_command_uses_the_cli_api(secured):
    app = _cli_app()
    runner = CliRunner()
    env = {"FLOWDAPT_SERVER": secured.url, "FLOWDAPT_TOKEN": TOKEN}

    table = runner.invoke(app, ["hello", "squares"], env=env)
    assert table.exit_code == 0, table.output
    header, row = table.output.strip().splitlines()
    assert header.split() == ["WORKFLOW", "STAGES", "GREETING"] and row.split() == ["squares", "3", "hello", "squares"]

    as_json = runner.invoke(app, ["hello", "squares", "-o", "json"], env=env)
    assert as_json.exit_code == 0 and json.loads(as_json.output)["greeting"] == "hello squares"
    as_yaml = runner.invoke(app, ["hello", "squares", "--output", "yaml"], env=env)
    assert as_yaml.exit_code == 0 and yaml.safe_load(as_yaml.output)["stages"] == 3

    # the same exit codes as the built-in commands: 1 not found / failed, 2 bad input
    missing = runner.invoke(app, ["hello", "nope"], env=env)
    assert missing.exit_code == 1 and "404: no workflow named 'nope'" in missing.output
    bad_format = runner.invoke(app, ["hello", "squares", "-o", "xml"], env=env)
    assert bad_format.exit_code == 2 and "unknown output format 'xml'" in bad_format.output
    no_token = runner.invoke(app, ["hello", "squares", "--token", "wrong"], env={"FLOWDAPT_SERVER": secured.url})
    assert no_token.exit_code == 2 and "401" in no_token.output
    unreachable = runner.invoke(app, ["hello", "squares", "--server", "http://127.0.0.1:9"], env={})
    assert unreachable.exit_code == 1 and "error:" in unreachable.output
