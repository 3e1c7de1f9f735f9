"""Hole 1: a stage target must be a function or class *defined* inside an allowed module.

Each target below was accepted before and ran ``os.system`` (or read/removed files) with the run
input as arguments. They must be refused at apply time (400 naming the field), never stored, and
never run.
"""

from __future__ import annotations

import pytest

from tests.server.conftest import STAGES, workflow_doc

#: Targets from the attack report, plus the same tricks through the test's own stage package.
PLUGIN_PACKAGES = ["flowdapt_ray", "flowdapt_lmdb", "flowdapt_dask", "flowdapt_dashboard", "flowdapt_examples", "user_modules"]
BYPASSES = [
    "flowdapt_ray:os.system",
    "flowdapt_lmdb.backend:os.system",
    "flowdapt_dask.executor:os.popen",
    "flowdapt_dashboard.summary:asyncio.subprocess.subprocess.getoutput",
    "user_modules.m:os.system",
    "flowdapt_lmdb.backend:os.remove",
    "flowdapt_examples.nowcast:np.load",
    f"{STAGES}:time.sleep",  # through a module the stage package imported
    f"{STAGES}.time.sleep",  # the same, spelled with dots
    f"{STAGES}:system",  # imported *into* the allowed module: `from os import system`
    f"{STAGES}:getoutput",
    f"{STAGES}:loads",  # a builtin function (pickle.loads) imported into it
    f"{STAGES}:PartialSquare",  # a callable instance: neither a function nor a class
]


@pytest.fixture
def server(make_server, tmp_path, stages_package):
    import sys

    pkg = sys.modules.get(STAGES) or __import__(STAGES)
    # What a careless stage module does: import things the attacker can then name.
    import functools
    import os
    import pickle
    import subprocess

    pkg.system, pkg.getoutput, pkg.loads = os.system, subprocess.getoutput, pickle.loads
    pkg.PartialSquare = functools.partial(pkg.square)
    app_dir = tmp_path / "app"
    (app_dir / "user_modules").mkdir(parents=True)
    (app_dir / "user_modules" / "m.py").write_text("import os\n\ndef ok(command: str = ''):\n    return command\n")
    return make_server({"allowed_targets": [STAGES, *PLUGIN_PACKAGES]}, app_dir=app_dir)


@pytest.mark.parametrize("target", BYPASSES)
def test_a_target_reached_through_another_module_or_defined_elsewhere_is_refused(server, tmp_path, target):
    marker = tmp_path / "pwned"
    with server.client() as http:
        doc = workflow_doc("x", [{"name": "s", "target": target}])
        response = http.post("/workflows/", json=doc)
        assert response.status_code == 400, response.text
        detail = response.json()["detail"]
        assert "spec.stages[0].target" in detail
        assert "module" in detail or "not a function or class" in detail, detail
        # Nothing stored, so nothing can be run.
        assert http.get("/workflows/x").status_code == 404
        run = http.post("/workflows/x/run?wait=true", json={"command": f"id > {marker}"})
        assert run.status_code == 404
        # YAML spelling takes the same path.
        yaml_body = f"kind: workflow\nmetadata: {{name: y}}\nspec:\n  stages:\n  - {{name: s, target: '{target}'}}\n"
        response = http.post("/workflows/", content=yaml_body, headers={"content-type": "application/x-yaml"})
        assert response.status_code == 400, response.text
    assert not marker.exists()


def test_functions_defined_in_allowed_modules_still_work(server):
    with server.client() as http:
        for target in (f"{STAGES}.make", f"{STAGES}:make", "user_modules.m.ok", "user_modules.m:ok"):
            doc = workflow_doc("ok", [{"name": "s", "target": target}])
            response = http.post("/workflows/", json=doc)
            assert response.status_code == 200, (target, response.text)
            assert http.delete("/workflows/ok").status_code == 200


def test_a_plain_module_outside_the_prefixes_is_refused_before_it_is_imported(server):
    with server.client() as http:
        response = http.post("/workflows/", json=workflow_doc("x", [{"name": "s", "target": "os.system"}]))
        assert response.status_code == 400
        assert "outside the allowed modules" in response.json()["detail"]


def test_a_target_module_with_a_syntax_error_is_a_400_naming_the_field(server, tmp_path):
    (tmp_path / "app" / "user_modules" / "broken.py").write_text("def f():\nreturn 1\n")
    with server.client() as http:
        response = http.post("/workflows/", json=workflow_doc("x", [{"name": "s", "target": "user_modules.broken.f"}]))
        assert response.status_code == 400, response.text
        detail = response.json()["detail"]
        assert "spec.stages[0].target" in detail and "IndentationError" in detail


@pytest.mark.parametrize("target", ["os.system", "flowdapt_ray:os.system", "subprocess.getoutput", "builtins.eval"])
def test_trigger_actions_cannot_name_import_paths(server, target):
    rule = {
        "kind": "trigger_rule",
        "metadata": {"name": "t"},
        "spec": {"type": "schedule", "rule": ["* * * * *"], "action": {"target": target, "parameters": {"command": "id"}}},
    }
    with server.client() as http:
        response = http.post("/triggers/", json=rule)
        assert response.status_code == 400, response.text
        assert "spec.action.target" in response.json()["detail"]
        assert http.get("/triggers/t").status_code == 404
