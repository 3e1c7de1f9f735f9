"""Apply-time validation of trigger rules: field-level messages, and the original's files accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flowdapt.builtin.triggers import validate_trigger_rule
from flowdapt.errors import ValidationError

ORIGINALS = Path(__file__).parent / "originals"


def doc(spec: dict) -> dict:
    base = {"type": "condition", "rule": {"eq": [1, 1]}, "action": {"target": "run_workflow", "parameters": {"workflow": "w"}}}
    return {"kind": "trigger_rule", "metadata": {"name": "r"}, "spec": {**base, **spec}}


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"type": "schedule", "rule": ["*/5 * * * *", "* 25 * * *"]}, "spec.rule[1]", "hour field: 25 is out of range 0-23"),
        ({"type": "schedule", "rule": "every day"}, "spec.rule", "has 2 fields"),
        ({"type": "schedule", "rule": {"eq": [1, 1]}}, "spec.rule", "list of cron strings"),
        ({"type": "schedule", "rule": ["@daily"], "timezone": "Nowhere/City"}, "spec.timezone", "unknown time zone"),
        ({"rule": {"and": [{"eq": [1, 1]}, {"equals": [1, 1]}]}}, "spec.rule.and[1].equals", "unknown operator 'equals'"),
        ({"rule": {"or": [{"gt": [1, 2, 3]}]}}, "spec.rule.or[0].gt", "gt takes 2 arguments, got 3"),
        ({"rule": ["*/5 * * * *"]}, "spec.rule", "non-empty mapping"),
        ({"type": "cron"}, "spec.type", "unknown trigger type 'cron' (available: condition, schedule)"),
        ({"action": {"target": "os.system", "parameters": {"command": "rm -rf /"}}}, "spec.action.target", "cannot name an import path"),
        ({"action": {"target": "launch_rockets"}}, "spec.action.target", "unknown action 'launch_rockets' (available: print_event, run_workflow, webhook)"),
        ({"action": {"target": "run_workflow", "parameters": {}}}, "spec.action.parameters.workflow", "required by action 'run_workflow'"),
        ({"action": {"target": "run_workflow", "parameters": {"workflow": "w", "inputs": {}}}}, "spec.action.parameters.inputs", "unknown parameter"),
        ({"action": {"target": "run_workflow", "parameters": {"workflow": "w", "input": {"x": {"var": [1, 2, 3]}}}}},
         "spec.action.parameters.input.x.var", "var takes 1 or 2 arguments, got 3"),
        ({"action": {"target": "webhook", "parameters": {"url": "ftp://x"}}}, "spec.action.parameters.url", "http://"),
    ],
)
def test_errors_name_the_field(plugins, spec, field, message):
    with pytest.raises(ValidationError) as info:
        validate_trigger_rule(doc(spec), plugins)
    assert info.value.field == field
    assert message in str(info.value)
    assert str(info.value).startswith(f"trigger_rule/r: {field}: ")


@pytest.mark.parametrize("path", sorted(ORIGINALS.glob("*.yaml")), ids=lambda p: p.name)
def test_the_originals_trigger_files_validate_unchanged(plugins, path):
    rule = validate_trigger_rule(yaml.safe_load(path.read_text()), plugins)
    assert rule.spec.action.target == "run_workflow"


def test_the_originals_qualified_action_names_and_params_alias(plugins):
    rule = validate_trigger_rule(
        doc({"action": {"target": "flowdapt.triggers.resources.triggers.actions.run_workflow", "params": {"workflow": "w"}}}),
        plugins,
    )
    assert rule.spec.action.parameters == {"workflow": "w"}
