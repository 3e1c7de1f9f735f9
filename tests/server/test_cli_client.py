"""The kubectl-style CLI client against a live server: apply, get, inspect, start, runs, cancel, delete, status."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from flowdapt.cli.main import _register_commands, app
from tests.server.conftest import STAGES

pytestmark = pytest.mark.timeout(120)

_register_commands()


def cli(live, *args: str, token: str | None = None):
    env = {"FLOWDAPT_SERVER": live.url}
    if token:
        env["FLOWDAPT_TOKEN"] = token
    return CliRunner().invoke(app, list(args), env=env)


MANIFEST = f"""
kind: workflow
metadata:
  name: cli-squares
spec:
  stages:
    - name: make
      target: {STAGES}.make
    - name: square
      target: {STAGES}.square
      type: parameterized
      depends_on: [make]
    - name: total
      target: {STAGES}.total
      depends_on: [square]
---
kind: config
metadata:
  name: cli-config
spec:
  selector: {{type: name, value: cli-squares}}
  data:
    owner: $CLI_OWNER
"""


def test_apply_get_start_runs_delete(live, tmp_path, monkeypatch):
    monkeypatch.setenv("CLI_OWNER", "alice")
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "all.yaml").write_text(MANIFEST)
    result = cli(live, "apply", "-f", str(folder))
    assert result.exit_code == 0, result.output
    assert "workflow/cli-squares created" in result.output and "config/cli-config created" in result.output
    assert "workflow/cli-squares updated" in cli(live, "apply", "-f", str(folder / "all.yaml")).output

    table = cli(live, "get", "workflows")
    assert table.exit_code == 0 and "cli-squares" in table.output
    config = json.loads(cli(live, "get", "config", "cli-config", "-o", "json").output)
    assert config["spec"]["data"] == {"owner": "alice"}
    inspected = yaml.safe_load(cli(live, "inspect", "workflow", "cli-squares").output)
    assert inspected["spec"]["stages"][1]["type"] == "parameterized"

    started = cli(live, "start", "cli-squares", "--input", "n=4", "--no-progress")
    assert started.exit_code == 0, started.output
    assert "finished" in started.output and "14" in started.output
    as_json = json.loads(cli(live, "start", "cli-squares", "-i", "n=3", "-o", "json").output)
    assert as_json["result"] == 5 and as_json["stages"]["square"]["items_done"] == 3
    submitted = cli(live, "start", "cli-squares", "--no-wait")
    assert submitted.exit_code == 0 and "pending" in submitted.output

    runs = cli(live, "runs", "--workflow", "cli-squares")
    assert runs.exit_code == 0 and runs.output.count("cli-squares") >= 2
    listed = json.loads(cli(live, "runs", "--state", "finished", "-o", "json").output)
    assert listed["total"] >= 2

    assert "config/cli-config deleted" in cli(live, "delete", "config", "cli-config").output
    assert "deleted" in cli(live, "delete", "-f", str(folder)).output
    assert "no workflows" in cli(live, "get", "workflows").output


def test_bad_file_is_refused_before_anything_is_written(live, tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text(
        MANIFEST
        + f"""
---
kind: workflow
metadata:
  name: broken
spec:
  stages:
    - name: a
      target: {STAGES}.make
      depends_on: [ghost]
"""
    )
    result = cli(live, "apply", "-f", str(path))
    assert result.exit_code == 2
    assert "ghost" in result.output
    assert "no workflows" in cli(live, "get", "workflows").output
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("kind: workflow\nmetadata: [unclosed\n")
    result = cli(live, "apply", "-f", str(bad_yaml))
    assert result.exit_code == 2 and "bad.yaml" in result.output


def test_start_failure_exit_code_and_cancel(live, tmp_path):
    (tmp_path / "wf.yaml").write_text(
        f"""
kind: workflow
metadata: {{name: flaky}}
spec:
  stages:
    - {{name: make, target: {STAGES}.make}}
    - {{name: check, target: {STAGES}.fail_on_three, type: parameterized, depends_on: [make]}}
---
kind: workflow
metadata: {{name: slowpoke}}
spec:
  stages:
    - {{name: nap, target: {STAGES}.sleep_then}}
"""
    )
    assert cli(live, "apply", "-f", str(tmp_path / "wf.yaml")).exit_code == 0
    failed = cli(live, "start", "flaky", "-i", "n=5", "--no-progress")
    assert failed.exit_code == 1 and "ValueError" in failed.output and "check" in failed.output
    missing_input = cli(live, "start", "flaky", "-i", "x=1", "--input-file", str(tmp_path / "nope.json"))
    assert missing_input.exit_code == 2
    submitted = cli(live, "start", "slowpoke", "-i", "seconds=5", "--no-wait")
    name = submitted.output.split()[0].split("/")[1]
    cancelled = cli(live, "cancel", name)
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    again = cli(live, "cancel", name)
    assert again.exit_code == 2 and "already ended" in again.output


def test_status_and_errors(live):
    status = cli(live, "status")
    assert status.exit_code == 0 and "ComputeService" in status.output
    missing = cli(live, "get", "workflow", "nope")
    assert missing.exit_code == 1 and "404" in missing.output
    unknown = cli(live, "get", "dragons")
    assert unknown.exit_code == 2 and "unknown kind" in unknown.output
    down = CliRunner().invoke(app, ["get", "workflows", "--server", "http://127.0.0.1:9"])
    assert down.exit_code == 1 and "cannot reach" in down.output


def test_token_option(make_server):
    live = make_server({"api.tokens": ["abc"]})
    denied = cli(live, "get", "workflows")
    assert denied.exit_code == 2
    assert "401" in denied.output
    assert cli(live, "get", "workflows", token="abc").exit_code == 0


@pytest.mark.parametrize(
    "args",
    [("inspect", "run", ""), ("logs", " "), ("cancel", ""), ("rerun", ""), ("start", ""), ("inspect", "workflow", "")],
)
def test_an_empty_name_is_refused_with_why_not_sent_to_another_endpoint(live, args):
    # /runs/{id} with an empty id is /runs/: the list endpoint (a 307 to /runs), whose answer the
    # client once parsed as a run and crashed with a JSONDecodeError traceback.
    result = cli(live, *args)
    assert result.exit_code == 2, result.output
    assert "name or uid is needed" in result.output and "Traceback" not in result.output


def test_names_travel_percent_encoded_and_redirects_are_errors(live):
    from flowdapt.client import ApiError, BadRequestError, Client, NotFoundError

    with Client(live.url) as client:
        with pytest.raises(NotFoundError) as missing:
            client.get_run("no-such?run=1")
        assert "no-such?run=1" in str(missing.value.detail)
        with pytest.raises(BadRequestError):
            client.get("workflow", "")
        with pytest.raises(ApiError) as moved:
            client.request("GET", "/runs/")
        assert moved.value.status_code == 307 and "redirect" in str(moved.value.detail)


def test_an_uncaught_flowdapt_error_exits_2_with_its_message_and_no_traceback(live, monkeypatch, capsys):
    from flowdapt.cli import main as cli_main
    from flowdapt.errors import ValidationError

    class Broken:  # the real command line, whose command raises what it does not catch
        def __getattr__(self, name):
            return getattr(app, name)

        def __call__(self, *args, **kwargs):
            raise ValidationError("resource: something a command did not catch")

    monkeypatch.setenv("FLOWDAPT_SERVER", live.url)
    monkeypatch.setattr(cli_main, "app", Broken())
    with pytest.raises(SystemExit) as exited:
        cli_main.main(["status"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "error: resource: something a command did not catch" in err and "Traceback" not in err
