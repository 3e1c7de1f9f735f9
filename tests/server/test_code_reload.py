"""An edited ``user_modules`` file is picked up by the next run, without a server restart (thread
workers here; the process pool replaces its workers the same way, tested below)."""

from __future__ import annotations

import os
import time

import pytest

pytestmark = pytest.mark.timeout(120)

VERSION = '''
def answer():
    return {value!r}
'''


def _write(path, value) -> None:
    path.write_text(VERSION.format(value=value))
    later = time.time() + 2  # a new mtime even on a coarse file system clock
    os.utime(path, (later, later))


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_an_edited_user_module_is_used_by_the_next_run(make_server, tmp_path, mode):
    app_dir = tmp_path / f"app-{mode}"
    module = app_dir / "user_modules" / "reloaded.py"
    module.parent.mkdir(parents=True)
    _write(module, "first")
    live = make_server({"executor.options": {"mode": mode, "workers": 1}}, app_dir=app_dir)
    workflow = {"kind": "workflow", "metadata": {"name": "answer"}, "spec": {"stages": [{"name": "a", "target": "user_modules.reloaded.answer"}]}}
    with live.client() as http:
        assert http.post("/workflows/", json=workflow).status_code == 200
        assert http.post("/workflows/answer/run", json={}).json()["result"] == "first"
        _write(module, "second")
        assert http.post("/workflows/answer/run", json={}).json()["result"] == "second"
        # A new function in the edited file can be named at once, too.
        module.write_text(VERSION.format(value="third") + "\n\ndef other():\n    return 'other'\n")
        later = time.time() + 4
        os.utime(module, (later, later))
        other = {**workflow, "metadata": {"name": "other"}, "spec": {"stages": [{"name": "a", "target": "user_modules.reloaded.other"}]}}
        applied = http.post("/workflows/", json=other)
        assert applied.status_code == 200, applied.text
        assert http.post("/workflows/other/run", json={}).json()["result"] == "other"
        assert http.post("/workflows/answer/run", json={}).json()["result"] == "third"
