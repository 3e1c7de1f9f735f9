"""Hole 4: an unreadable trigger rule is refused before it is stored, and one that is stored
anyway (by an older version, another tool) never stops the other rules.

A condition with ``not`` nested 240 deep used to give a 500 *and be stored*; afterwards
``GET /triggers/`` was 500 on every call and, after a restart, no schedule fired at all.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.resources.trigger import TriggerRule
from tests.server.conftest import make_settings, start_server


def nested_not(depth: int) -> dict:
    rule: dict = {"eq": [{"var": "type"}, "x"]}
    for _ in range(depth):
        rule = {"not": rule}
    return rule


def condition_rule(name: str, rule) -> dict:
    return {
        "kind": "trigger_rule",
        "metadata": {"name": name},
        "spec": {"type": "condition", "rule": rule, "action": {"target": "print_event", "parameters": {}}},
    }


def every_second(name: str) -> dict:
    return {
        "kind": "trigger_rule",
        "metadata": {"name": name},
        "spec": {"type": "schedule", "rule": ["* * * * * *"], "action": {"target": "print_event", "parameters": {}}},
    }


@pytest.mark.parametrize("depth", [40, 240, 1000])
def test_a_too_deep_condition_is_a_400_and_is_not_stored(http, depth):
    inner = '{"not": ' * depth + '{"eq": [1, 1]}' + "}" * depth  # as text: json.dumps recurses
    body = orjson.dumps(condition_rule("deep", "HOLE")).decode().replace('"HOLE"', inner)
    response = http.post("/triggers/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "spec.rule" in detail or "api.max_document_depth" in detail
    assert http.get("/triggers/deep").status_code == 404
    assert http.get("/triggers/").status_code == 200


def test_a_condition_with_too_many_parts_is_a_400(http):
    rule = {"or": [{"eq": [{"var": "type"}, f"t{i}"]} for i in range(1000)]}
    response = http.post("/triggers/", json=condition_rule("wide", rule))
    assert response.status_code == 400, response.text
    assert "more than" in response.json()["detail"] and "spec.rule" in response.json()["detail"]


def test_a_condition_within_bounds_is_accepted(http):
    response = http.post("/triggers/", json=condition_rule("ok", nested_not(20)))
    assert response.status_code == 200, response.text


def _store_directly(settings, doc: dict) -> None:
    """What an older version (or a hand edit of the database) could leave behind."""
    plugins = create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))
    store = plugins.create("document_stores", settings.database.backend, settings.database.options, settings)

    async def write():
        await store.open()
        try:
            await store.create(TriggerRule.model_validate(doc))
        finally:
            await store.close()

    asyncio.run(write())


def test_a_stored_unreadable_rule_never_stops_listing_or_the_other_schedules(tmp_path, stages_package):
    settings = make_settings(tmp_path / "app")
    _store_directly(settings, condition_rule("deep", nested_not(240)))
    _store_directly(settings, every_second("ticker"))
    live = start_server(settings)
    try:
        with live.client() as http:
            listing = http.get("/triggers/")
            assert listing.status_code == 200, listing.text
            names = {r["metadata"]["name"] for r in listing.json()}
            assert "ticker" in names
            deep = http.get("/triggers/deep")
            assert deep.status_code == 200, deep.text
            status = deep.json().get("status") or {}
            assert status.get("active") is False and "more than" in (status.get("error") or "")
            deadline = time.monotonic() + 10
            fires = 0
            while time.monotonic() < deadline:
                fires = (http.get("/triggers/ticker").json().get("status") or {}).get("fires", 0)
                if fires >= 1:
                    break
                time.sleep(0.2)
            assert fires >= 1, "the schedule next to the bad rule did not fire"
            # The bad rule can still be replaced or deleted through the API.
            assert http.delete("/triggers/deep").status_code == 200
    finally:
        live.stop()


# -- hole 7: regular expressions run in linear time -----------------------------------------


def regex_rule(name: str, pattern) -> dict:
    return condition_rule(name, {"regex": [{"var": "data.text"}, pattern]})


@pytest.mark.parametrize(("pattern", "matches"), [(r"^(a+)+$", False), (r"^(a|a)*$", False), (r"^(a|aa)+$", False), (r"(.*a){20}", True)])
def test_a_catastrophic_pattern_is_evaluated_in_linear_time(http, pattern, matches):
    assert http.post("/triggers/", json=regex_rule("redos", pattern)).status_code == 200
    for n in (24, 5000):
        event = {"type": "x", "data": {"text": "a" * n + "!"}}
        t0 = time.perf_counter()
        answer = http.post("/triggers/redos/fire", json={"event": event, "dry_run": True})
        elapsed = time.perf_counter() - t0
        assert answer.status_code == 200, answer.text
        assert answer.json()["matched"] is matches
        assert elapsed < 0.5, (pattern, n, elapsed)  # was 1.19 s for n=24, doubling per character
    assert http.delete("/triggers/redos").status_code == 200


def test_a_pattern_the_linear_engine_cannot_run_is_a_400_naming_the_field(http):
    for pattern in [r"(a)\1", r"a(?=b)", "x" * 1001]:
        response = http.post("/triggers/", json=regex_rule("bad", pattern))
        assert response.status_code == 400, response.text
        assert "spec.rule.regex[1]" in response.json()["detail"]


def test_a_pattern_from_the_event_is_also_linear(http):
    rule = condition_rule("dyn", {"regex": [{"var": "data.text"}, {"var": "data.pattern"}]})
    assert http.post("/triggers/", json=rule).status_code == 200
    event = {"type": "x", "data": {"text": "a" * 30 + "!", "pattern": "^(a+)+$"}}
    t0 = time.perf_counter()
    answer = http.post("/triggers/dyn/fire", json={"event": event, "dry_run": True})
    assert answer.status_code == 200 and answer.json()["matched"] is False
    assert time.perf_counter() - t0 < 0.5
    ok = {"type": "x", "data": {"text": "abc", "pattern": "b"}}
    assert http.post("/triggers/dyn/fire", json={"event": ok, "dry_run": True}).json()["matched"] is True
