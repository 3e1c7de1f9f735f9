"""Resource parsing and validation: every error names the resource and the field."""

from __future__ import annotations

import pytest

from flowdapt.api import stage_types
from flowdapt.engine.validation import check_targets, parse_stage_options, topological_order
from flowdapt.errors import ValidationError
from flowdapt.resources import Config, TriggerRule, Workflow
from flowdapt.resources.loader import load_documents, load_resources, parse_resource


def workflow(stages, name="wf"):
    return parse_resource({"kind": "workflow", "metadata": {"name": name}, "spec": {"stages": stages}})


def test_parse_each_kind_and_defaults():
    wf = workflow([{"name": "a", "target": "pkg.mod.fn"}])
    assert isinstance(wf, Workflow) and wf.spec.stages[0].type == "simple"
    assert wf.metadata.created_at.tzinfo is None
    cfg = parse_resource({"kind": "config", "metadata": {"name": "c"}, "spec": {"data": {"x": 1}, "new": True}})
    assert isinstance(cfg, Config) and cfg.spec.selector is None
    trig = parse_resource(
        {"kind": "trigger_rule", "metadata": {"name": "t"}, "spec": {"type": "schedule", "rule": ["*/5 * * * *"], "action": {"target": "run_workflow", "params": {"workflow": "a"}}}}
    )
    assert isinstance(trig, TriggerRule) and trig.spec.action.parameters == {"workflow": "a"}


def test_version_key_is_stripped_and_extra_stage_keys_ignored():
    wf = parse_resource(
        {"version": "v1alpha1", "kind": "workflow", "metadata": {"name": "w"}, "spec": {"stages": [{"name": "a", "target": "p.m.f", "required_resources": 1}]}}
    )
    assert wf.name == "w"


@pytest.mark.parametrize(
    "data,field",
    [
        ({"kind": "workflow", "metadata": {"name": "bad name!"}, "spec": {"stages": [{"name": "a", "target": "p.f"}]}}, "metadata.name"),
        ({"kind": "workflow", "metadata": {"name": "w"}, "spec": {"stages": []}}, "spec.stages"),
        ({"kind": "workflow", "metadata": {"name": "w"}, "spec": {"stages": [{"target": "p.f"}]}}, "spec.stages[0].name"),
        ({"kind": "config", "metadata": {"name": "c"}, "spec": {}}, "spec.data"),
        ({"kind": "bogus", "metadata": {"name": "c"}, "spec": {}}, "kind"),
        ({"metadata": {"name": "c"}, "spec": {}}, "kind"),
    ],
)
def test_schema_errors_name_the_field(data, field):
    with pytest.raises(ValidationError) as info:
        parse_resource(data)
    assert info.value.field == field
    assert field.split("[")[0].split(".")[-1] in str(info.value)


def test_forced_kind_must_match():
    with pytest.raises(ValidationError, match="expected kind 'workflow'"):
        parse_resource({"kind": "config", "metadata": {"name": "c"}, "spec": {"data": {}}}, kind="workflow")


def test_duplicate_stage_names():
    with pytest.raises(ValidationError) as info:
        topological_order(workflow([{"name": "a", "target": "p.f"}, {"name": "a", "target": "p.g"}]))
    assert info.value.field == "spec.stages[1].name" and "workflow/wf" in str(info.value)


def test_unknown_dependency():
    with pytest.raises(ValidationError, match="unknown stage 'zz'") as info:
        topological_order(workflow([{"name": "a", "target": "p.f", "depends_on": ["zz"]}]))
    assert info.value.field == "spec.stages[0].depends_on"


def test_cycle_is_named():
    wf = workflow(
        [
            {"name": "a", "target": "p.f", "depends_on": ["c"]},
            {"name": "b", "target": "p.f", "depends_on": ["a"]},
            {"name": "c", "target": "p.f", "depends_on": ["b"]},
            {"name": "d", "target": "p.f"},
        ]
    )
    with pytest.raises(ValidationError, match="dependency cycle: ") as info:
        topological_order(wf)
    assert info.value.field == "spec.stages"
    assert all(name in str(info.value) for name in "abc")


def test_topological_order_is_stable():
    wf = workflow(
        [
            {"name": "late", "target": "p.f", "depends_on": ["root"]},
            {"name": "root", "target": "p.f"},
            {"name": "other", "target": "p.f"},
        ]
    )
    # Dependencies first; among stages that are ready, definition order.
    assert topological_order(wf) == ["root", "late", "other"]


def test_unknown_stage_type_and_bad_options(plugins):
    types = stage_types(plugins)
    with pytest.raises(ValidationError, match="unknown stage type 'mapp'") as info:
        parse_stage_options(workflow([{"name": "a", "target": "p.f", "type": "mapp"}]), types)
    assert info.value.field == "spec.stages[0].type"
    with pytest.raises(ValidationError) as info:
        parse_stage_options(workflow([{"name": "a", "target": "p.f", "options": {"retries": -1}}]), types)
    assert info.value.field == "spec.stages[0].options.retries"
    with pytest.raises(ValidationError) as info:
        parse_stage_options(workflow([{"name": "a", "target": "p.f", "options": {"retrys": 2}}]), types)
    assert info.value.field == "spec.stages[0].options.retrys"
    with pytest.raises(ValidationError, match="map over"):
        parse_stage_options(workflow([{"name": "a", "target": "p.f", "type": "parameterized"}]), types)


def test_targets_must_be_import_paths_inside_allowed_prefixes():
    with pytest.raises(ValidationError, match="not an import path") as info:
        check_targets(workflow([{"name": "a", "target": "os system"}]), allowed_prefixes=["x"])
    assert info.value.field == "spec.stages[0].target"
    with pytest.raises(ValidationError, match="outside the allowed modules"):
        check_targets(workflow([{"name": "a", "target": "os.system"}]), allowed_prefixes=["user_modules", "myplugin"])
    check_targets(workflow([{"name": "a", "target": "myplugin.stages.train"}]), allowed_prefixes=["myplugin"])
    with pytest.raises(ValidationError, match="no module named 'myplugin'"):
        check_targets(workflow([{"name": "a", "target": "myplugin.stages.train"}]), allowed_prefixes=["myplugin"], importable=True)
    with pytest.raises(ValidationError, match="has no attribute 'nope'"):
        check_targets(workflow([{"name": "a", "target": "core_stages.nope"}]), allowed_prefixes=["core_stages"], importable=True)


def test_signature_that_cannot_take_inputs_is_refused(settings, plugins):
    from flowdapt import execute_workflow

    bad = workflow(
        [
            {"name": "a", "target": "core_stages.numbers"},
            {"name": "b", "target": "core_stages.no_params", "depends_on": ["a"]},
        ]
    )
    with pytest.raises(ValidationError, match="cannot take its inputs") as info:
        execute_workflow(bad, executor="local")
    assert info.value.field == "spec.stages[1].target"
    two = workflow(
        [
            {"name": "a", "target": "core_stages.numbers"},
            {"name": "b", "target": "core_stages.add", "depends_on": ["a"]},
        ]
    )
    with pytest.raises(ValidationError, match="requires 2 positional parameters but receives 1"):
        execute_workflow(two, executor="local")


def test_yaml_documents_env_substitution_and_files(tmp_path, monkeypatch):
    monkeypatch.setenv("FD_TEST_TARGET", "pkg.mod.fn")
    text = """
kind: workflow
metadata: {name: one}
spec:
  stages: [{name: a, target: $FD_TEST_TARGET}]
---
---
kind: config
metadata: {name: c}
spec: {data: {path: "${HOME_NOT_SET_X}"}}
"""
    docs = load_documents(text)
    assert len(docs) == 2 and docs[0]["spec"]["stages"][0]["target"] == "pkg.mod.fn"
    assert docs[1]["spec"]["data"]["path"] == "${HOME_NOT_SET_X}"
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "sub" / "b.json").write_text('{"kind": "config", "metadata": {"name": "j"}, "spec": {"data": {}}}')
    (tmp_path / "notes.txt").write_text("ignored")
    names = [r.name for r in load_resources([tmp_path])]
    assert names == ["one", "c", "j"]


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: workflow\nmetadata: {name: x\n")
    with pytest.raises(ValidationError, match="bad.yaml: not valid YAML"):
        load_resources([path])
