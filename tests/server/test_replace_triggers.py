"""Services are plugins: a third-party plugin outside ``core/`` replaces the built-in trigger
service, and the server runs without the built-in triggers plugin, naming no trigger specifics."""

from __future__ import annotations

import time

import pytest
import typer
from typer.testing import CliRunner

from flowdapt.errors import ConfigurationError
from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.server.core import FlowdaptServer
from tests.plugins import replacement_triggers
from tests.server.conftest import STAGES, make_settings, start_server

pytestmark = pytest.mark.timeout(120)

WITHOUT_TRIGGERS = [p for p in BUILTIN_PLUGINS if p[0] != "triggers"]


def _workflow(name: str) -> dict:
    return {"kind": "workflow", "metadata": {"name": name}, "spec": {"stages": [{"name": "a", "target": f"{STAGES}.make"}]}}


def _rule(name: str, kind: str, rule, workflow: str = "tick") -> dict:
    return {
        "kind": "trigger_rule",
        "metadata": {"name": name},
        "spec": {"type": kind, "rule": rule, "action": {"target": "run_workflow", "parameters": {"workflow": workflow}}},
    }


@pytest.fixture
def replaced(tmp_path, stages_package):
    plugins = create_plugin_system(
        load_entry_points=False, plugins=[*WITHOUT_TRIGGERS, ("interval_triggers", replacement_triggers)]
    )
    live = start_server(make_settings(tmp_path / "app"), plugins=plugins)
    yield live
    live.stop()


def test_a_plugin_outside_core_replaces_the_trigger_service(replaced):
    assert replaced.server.services == ("api", "compute", "triggers")
    service = replaced.server.service("triggers")
    assert isinstance(service, replacement_triggers.IntervalTriggers)
    with replaced.client() as http:
        assert http.post("/workflows/", json=_workflow("tick")).status_code == 200
        # Its own rule check, through flowdapt_validate_resource: the built-in types are unknown here.
        refused = http.post("/triggers/", json=_rule("nightly", "schedule", ["0 3 * * *"]))
        assert refused.status_code == 400 and "know only type 'every'" in refused.json()["detail"], refused.text
        assert http.post("/triggers/", json=_rule("often", "every", "0.3")).status_code == 200
        deadline = time.monotonic() + 15
        runs: list = []
        while time.monotonic() < deadline and len(runs) < 2:
            runs = http.get("/runs", params={"workflow": "tick"}).json()["items"]
            time.sleep(0.1)
        assert len(runs) >= 2, http.get("/status").json()
        assert all(r["source"] == "trigger" for r in runs)
        # Its route, its /status entry; the built-in trigger service's status field is not added.
        fired = http.post("/triggers/often/fire").json()
        assert fired["by"] == "replacement" and fired["rule"] == "often"
        status = http.get("/status").json()["services"]["TriggerService"]
        assert status["status"] == "OK" and status["implementation"] == "interval" and status["fired"] >= 3
        assert "status" not in http.get("/triggers/often").json()


def test_the_replacement_brings_its_cli_command(replaced):
    app = typer.Typer()

    @app.callback()
    def root() -> None:  # a group, as the flowdapt app is
        pass

    # Every plugin's commands, as `flowdapt` adds them: only the replacement has a `trigger` group.
    replaced.server.plugins.hook.flowdapt_cli_commands(app=app)
    with replaced.client() as http:
        http.post("/workflows/", json=_workflow("tick"))
        http.post("/triggers/", json=_rule("slow", "every", "3600"))
    result = CliRunner().invoke(app, ["trigger", "fire", "slow", "--server", replaced.url])
    assert result.exit_code == 0, result.output
    assert "fired slow ->" in result.output and "(replacement)" in result.output


def test_without_any_trigger_plugin_the_server_names_no_trigger_service(tmp_path, stages_package):
    plugins = create_plugin_system(load_entry_points=False, plugins=WITHOUT_TRIGGERS)
    settings = make_settings(tmp_path / "app")
    with pytest.raises(ConfigurationError, match=r"unknown service\(s\) triggers; choose from api, compute"):
        FlowdaptServer(settings, plugins, "api,triggers")
    live = start_server(settings, plugins=plugins)
    try:
        assert live.server.services == ("api", "compute")
        with live.client() as http:
            assert "TriggerService" not in http.get("/status").json()["services"]
            # No plugin owns trigger rules: stored as their schema parsed them, never fired.
            assert http.post("/triggers/", json=_rule("flat", "schedule", "*/5 * * * *")).status_code == 200
            assert http.post("/triggers/flat/fire").status_code == 404
    finally:
        live.stop()
