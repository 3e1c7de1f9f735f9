"""Small CLI behaviours: --since with durations, -n is --namespace everywhere, stage counts that
count skipped stages as skipped, tables that are not cut when piped, 403 exits 2, tracebacks as text."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from flowdapt.cli.client import stage_summary
from flowdapt.cli.main import _register_commands, app
from tests.server.conftest import STAGES, workflow_doc

pytestmark = pytest.mark.timeout(120)

_register_commands()


def cli(live, *args: str):
    return CliRunner().invoke(app, list(args), env={"FLOWDAPT_SERVER": live.url})


FAILING = workflow_doc(
    "half-broken",
    [
        {"name": "make", "target": f"{STAGES}.make"},
        {"name": "check", "target": f"{STAGES}.fail_on_three", "type": "parameterized", "depends_on": ["make"]},
        {"name": "total", "target": f"{STAGES}.total", "depends_on": ["check"]},
    ],
)


def test_runs_since_durations_and_limit(live):
    with live.client() as http:
        assert http.post("/workflows/", json=FAILING).status_code == 200
        for n in (2, 3):
            http.post("/workflows/half-broken/run", json={"n": n})
    recent = json.loads(cli(live, "runs", "--since", "1h", "-o", "json").output)
    assert recent["total"] == 2
    assert json.loads(cli(live, "runs", "--since", "1h30m", "-o", "json").output)["total"] == 2
    assert json.loads(cli(live, "runs", "--since", "2099-01-01T00:00", "-o", "json").output)["total"] == 0
    assert json.loads(cli(live, "runs", "--since", "2000-01-01", "-o", "json").output)["total"] == 2
    bad = cli(live, "runs", "--since", "yesterday-ish")
    assert bad.exit_code == 2 and "--since" in bad.output
    limited = json.loads(cli(live, "runs", "-l", "1", "-o", "json").output)
    assert len(limited["items"]) == 1 and limited["total"] == 2
    # -n is --namespace wherever it exists; `runs` has none, so -n is refused there
    assert cli(live, "runs", "-n", "1").exit_code == 2
    ran = cli(live, "start", "half-broken", "-i", "n=2", "-n", "other-ns", "-o", "json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["namespace"] == "other-ns"


def test_stage_counts_skipped_stages_as_skipped(live):
    with live.client() as http:
        assert http.post("/workflows/", json=FAILING).status_code == 200
        run = http.post("/workflows/half-broken/run", json={"n": 5}).json()
    assert run["state"] == "failed" and run["stages"]["total"]["state"] == "skipped"
    assert stage_summary(run["stages"]) == "1/3 stages · 1 failed · 1 skipped"
    table = cli(live, "runs")
    assert table.exit_code == 0 and "1/3 stages · 1 failed · 1 skipped" in table.output
    assert stage_summary({"a": {"state": "finished"}, "b": {"state": "finished"}}) == "2/2 stages"
    assert stage_summary({}) == "-"


def test_tables_are_not_cut_when_piped(live):
    long_name = "a-workflow-with-a-very-long-name-" + "x" * 150
    with live.client() as http:
        created = http.post("/workflows/", json=workflow_doc(long_name, [{"name": "make", "target": f"{STAGES}.make"}]))
        assert created.status_code == 200, created.text
        uid = created.json()["metadata"]["uid"]
    table = cli(live, "get", "workflows")
    assert table.exit_code == 0
    (row,) = [line for line in table.output.splitlines() if line.startswith("a-workflow")]
    assert long_name in row and uid in row  # one line, nothing cut
    plugins = CliRunner().invoke(app, ["plugin", "list"])
    assert plugins.exit_code == 0
    assert any("flowdapt.builtin" in line and line.count(",") >= 1 for line in plugins.output.splitlines())
    assert "…" not in plugins.output


def test_a_refused_request_exits_2(tmp_path, stages_package):
    # Installing a plugin through a server needs an API token: refused with 403 without one.
    from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
    from tests.server.conftest import make_settings, start_server

    plugins = create_plugin_system(
        load_entry_points=False, plugins=[*BUILTIN_PLUGINS, ("plugin_admin", "flowdapt.builtin.plugin_admin")]
    )
    live = start_server(make_settings(tmp_path / "app"), plugins)
    try:
        refused = cli(live, "plugin", "install", "flowdapt-nothing-here", "--server", live.url)
        assert refused.exit_code == 2, refused.output
        assert "403" in refused.output and "token" in refused.output
    finally:
        live.stop()


def test_inspect_run_prints_the_traceback_as_text(live):
    with live.client() as http:
        assert http.post("/workflows/", json=FAILING).status_code == 200
        run = http.post("/workflows/half-broken/run", json={"n": 5}).json()
    shown = cli(live, "inspect", "run", run["name"])
    assert shown.exit_code == 0
    assert "traceback: |" in shown.output
    lines = shown.output.splitlines()
    assert any(line.strip().startswith("Traceback (most recent call last):") for line in lines)
    assert any(line.strip() == "ValueError: bad item 3" for line in lines)
    assert "\\n" not in shown.output  # no escaped newlines
    parsed = yaml.safe_load(shown.output)  # still YAML, the same data
    assert parsed["error"]["traceback"] == run["error"]["traceback"]
