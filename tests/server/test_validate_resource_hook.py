"""``flowdapt_validate_resource``: a plugin checks the resources of its kinds before the server
stores them, and the built-in triggers plugin checks trigger rules through it, so the server names
no trigger engine (docs/architecture.md, docs/hooks.md)."""

from __future__ import annotations

import types

import pytest
from fastapi.testclient import TestClient

from flowdapt.errors import ValidationError
from flowdapt.hookspecs import hookimpl
from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.resources.config import Config
from flowdapt.server import create_app
from tests.server.conftest import make_settings

pytestmark = pytest.mark.timeout(120)


@hookimpl
def flowdapt_validate_resource(resource, plugins):
    if not isinstance(resource, Config):
        return None
    if "owner" not in (resource.spec.data or {}):
        raise ValidationError("a config names its owner", resource=f"config/{resource.metadata.name}", field="spec.data.owner")
    return True


OWNERS = types.ModuleType("flowdapt_test_owners")
OWNERS.flowdapt_validate_resource = flowdapt_validate_resource


def _config(name: str, data: dict) -> dict:
    return {"kind": "config", "metadata": {"name": name}, "spec": {"selector": {"type": "name", "value": "w"}, "data": data}}


def _schedule_rule(name: str, rule) -> dict:
    return {
        "kind": "trigger_rule",
        "metadata": {"name": name},
        "spec": {"type": "schedule", "rule": rule, "action": {"target": "run_workflow", "parameters": {"workflow": "w"}}},
    }


def _client(tmp_path, plugins) -> TestClient:
    system = create_plugin_system(load_entry_points=False, plugins=plugins)
    return TestClient(create_app(make_settings(tmp_path / "app"), system, services="api"))


def test_a_plugin_refuses_a_resource_of_its_kind_and_nothing_is_stored(tmp_path):
    with _client(tmp_path, [*BUILTIN_PLUGINS, ("owners", OWNERS)]) as http:
        refused = http.post("/configs/", json=_config("anonymous", {"a": 1}))
        assert refused.status_code == 400, refused.text
        assert "a config names its owner" in refused.json()["detail"]
        assert "spec.data.owner" in refused.json()["detail"]
        assert http.get("/configs/anonymous").status_code == 404
        accepted = http.post("/configs/", json=_config("owned", {"owner": "ml-team"}))
        assert accepted.status_code in (200, 201), accepted.text
        assert http.get("/configs/owned").json()["spec"]["data"] == {"owner": "ml-team"}
        # Other kinds are not its business: a trigger rule is still checked by the triggers plugin.
        bad_cron = http.post("/triggers/", json=_schedule_rule("bad", ["not a cron"]))
        assert bad_cron.status_code == 400, bad_cron.text
        assert http.post("/triggers/", json=_schedule_rule("good", ["*/5 * * * *"])).status_code in (200, 201)


def test_without_the_triggers_plugin_the_server_stores_a_trigger_rule_as_its_schema_parsed_it(tmp_path):
    # The server checks workflows itself and nothing else (tests/server/test_replace_triggers.py
    # shows a plugin that brings its own checks); the resource schema still applies.
    without_triggers = [p for p in BUILTIN_PLUGINS if p[0] != "triggers"]
    with _client(tmp_path, without_triggers) as http:
        stored = http.post("/triggers/", json=_schedule_rule("flat", "*/5 * * * *"))
        assert stored.status_code == 200, stored.text
        assert http.get("/triggers/flat").json()["spec"]["rule"] == "*/5 * * * *"
        no_action = http.post("/triggers/", json={"kind": "trigger_rule", "metadata": {"name": "x"}, "spec": {"rule": []}})
        assert no_action.status_code in (400, 422) and "action" in no_action.json()["detail"]
