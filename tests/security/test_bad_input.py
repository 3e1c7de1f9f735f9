"""The bad-input corpus: every request here must get a 4xx naming the problem, never a 5xx, and
must leave what is stored exactly as it was (holes 5 and 11, plus the cases that held and must
keep holding)."""

from __future__ import annotations

import pytest

from tests.server.conftest import STAGES, squares_workflow, workflow_doc


def stage(**fields) -> dict:
    return {"name": "s", "target": f"{STAGES}.make", **fields}


def wf(*stages, name: str = "bad") -> dict:
    return workflow_doc(name, list(stages) or [stage()])


def rule(spec: dict) -> dict:
    base = {"type": "schedule", "rule": ["* * * * *"], "action": {"target": "print_event", "parameters": {}}}
    return {"kind": "trigger_rule", "metadata": {"name": "bad"}, "spec": {**base, **spec}}


CORPUS = [
    # (id, method, path, json body or raw text, content type, text expected in the detail)
    ("offset-overflow", "GET", "/runs?offset=9223372036854775808", None, None, "offset"),
    ("offset-negative", "GET", "/runs?offset=-1", None, None, "offset"),
    ("limit-huge", "GET", "/runs?limit=99999999999999999999", None, None, "limit"),
    ("stage-name-slash", "POST", "/workflows/", wf(stage(name="a/b")), None, "spec.stages[0].name"),
    ("stage-name-dotdot", "POST", "/workflows/", wf(stage(name="..")), None, "spec.stages[0].name"),
    ("stage-name-space", "POST", "/workflows/", wf(stage(name="a b")), None, "spec.stages[0].name"),
    ("resources-negative", "POST", "/workflows/", wf(stage(resources={"cpus": -1})), None, "spec.stages[0].resources.cpus"),
    ("resources-nan-text", "POST", "/workflows/", wf(stage(resources={"gpus": "lots"})), None, "spec.stages[0].resources.gpus"),
    ("resources-memory-bad", "POST", "/workflows/", wf(stage(resources={"memory": "8 parsecs"})), None, "spec.stages[0].resources.memory"),
    ("resources-bad-name", "POST", "/workflows/", wf(stage(resources={"../x": 1})), None, "spec.stages[0].resources"),
    ("resources-not-number", "POST", "/workflows/", wf(stage(resources={"special": [1]})), None, "spec.stages[0].resources.special"),
    ("resources-infinite", "POST", "/workflows/", '{"kind":"workflow","metadata":{"name":"bad"},"spec":{"stages":[{"name":"s","target":"' + STAGES + '.make","resources":{"cpus":1e999}}]}}', "application/json", "infinity"),
    ("cycle", "POST", "/workflows/", wf(stage(name="a", depends_on=["b"]), stage(name="b", depends_on=["a"])), None, "cycle"),
    ("unknown-dependency", "POST", "/workflows/", wf(stage(depends_on=["nope"])), None, "depends_on"),
    ("unknown-target", "POST", "/workflows/", wf(stage(target=f"{STAGES}.nope")), None, "spec.stages[0].target"),
    ("target-not-a-path", "POST", "/workflows/", wf(stage(target="not a path")), None, "spec.stages[0].target"),
    ("unknown-kind", "POST", "/workflows/", {**wf(), "kind": "pod"}, None, "kind"),
    ("name-traversal", "POST", "/workflows/", wf(name="../../etc"), None, "metadata.name"),
    ("not-json", "POST", "/workflows/", "{not json", "application/json", "not valid JSON"),
    ("not-yaml", "POST", "/workflows/", "kind: [unclosed", "application/x-yaml", "not valid YAML"),
    ("yaml-two-docs", "POST", "/workflows/", "kind: workflow\n---\nkind: config\n", "application/x-yaml", "2 YAML documents"),
    ("body-a-list", "POST", "/workflows/", [1, 2], None, "mapping"),
    ("cron-garbage", "POST", "/triggers/", rule({"rule": ["every tuesday"]}), None, "spec.rule[0]"),
    ("cron-out-of-range", "POST", "/triggers/", rule({"rule": ["61 * * * *"]}), None, "spec.rule[0]"),
    ("dsl-unknown-op", "POST", "/triggers/", rule({"type": "condition", "rule": {"launch": [1]}}), None, "spec.rule"),
    ("dsl-arity", "POST", "/triggers/", rule({"type": "condition", "rule": {"eq": [1]}}), None, "spec.rule.eq"),
    ("action-import-path", "POST", "/triggers/", rule({"action": {"target": "os.system", "parameters": {"command": "id"}}}), None, "spec.action.target"),
    ("run-input-a-list", "POST", "/workflows/squares/run", [1, 2], None, "body"),
    ("run-namespace-traversal", "POST", "/workflows/squares/run?namespace=../../x", {}, None, "namespace"),
    ("config-deep", "POST", "/configs/", '{"kind":"config","metadata":{"name":"bad"},"spec":{"selector":{"type":"name","value":"x"},"data":' + '{"a":' * 300 + "1" + "}" * 300 + "}}", "application/json", "max_document_depth"),
]


@pytest.mark.parametrize("case", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_input_is_a_4xx_and_changes_nothing(http, case):
    _, method, path, body, ctype, expected = case
    assert http.post("/workflows/", json=squares_workflow()).status_code in (200, 400)
    before = {kind: http.get(f"/{kind}/").json() for kind in ("workflows", "configs", "triggers")}
    if isinstance(body, str):
        response = http.request(method, path, content=body, headers={"content-type": ctype})
    elif body is not None:
        response = http.request(method, path, json=body)
    else:
        response = http.request(method, path)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert expected in response.text, response.text
    after = {kind: http.get(f"/{kind}/").json() for kind in ("workflows", "configs", "triggers")}
    assert after == before


def test_stage_resources_within_the_rules_are_accepted(http):
    doc = wf(stage(resources={"cpus": 2, "gpus": 0, "memory": "512MiB", "special": 1.5}), name="ok")
    response = http.post("/workflows/", json=doc)
    assert response.status_code == 200, response.text
