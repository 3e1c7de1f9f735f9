"""The nowcast example plugin's workflows run from the dashboard: its definitions applied, create
features and train started with the Run button, and predict started by the shipped condition rule
after train, its report (plots, error per city) shown on the run page."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("flowdapt_nowcast_example", reason="the nowcast example plugin is not installed")

from flowdapt.definitions import collect_definitions  # noqa: E402
from flowdapt.plugins import create_plugin_system  # noqa: E402

pytestmark = pytest.mark.timeout(240)

SMALL = {"n_cities": 6, "history_hours": 120, "test_hours": 24}


def run_from_the_dashboard(page, server, workflow: str, payload: dict) -> None:
    page.goto(f"{server.url}/ui#/workflows/{workflow}")
    page.click('[data-action="run"]')
    page.locator("#run-input").fill(json.dumps(payload))
    page.click('[data-action="start-run"]')
    page.wait_for_url(re.compile(r"#/runs/[0-9a-f-]{36}$"))
    page.locator('.run-sub .badge[data-state="finished"]').wait_for(timeout=120_000)


def test_nowcast_example_runs_from_the_dashboard(page, page_errors, server, shoot):
    plugins = create_plugin_system(only=["nowcast_example"], quiet=True)
    with server.client() as http:
        for definition in collect_definitions(plugins, ["nowcast_example"]):
            kind = {"workflow": "workflows", "config": "configs", "trigger_rule": "triggers"}[definition.kind]
            document = definition.resource.to_document()
            document["metadata"].pop("uid", None)
            http.post(f"/{kind}/", json=document).raise_for_status()
    run_from_the_dashboard(page, server, "nowcast-create-features", SMALL)
    run_from_the_dashboard(page, server, "nowcast-train", SMALL)
    # The shipped condition rule starts predict when train finishes; it shows in the runs list.
    page.goto(f"{server.url}/ui#/workflows/nowcast-predict")
    with server.client() as http:
        for _ in range(300):
            runs = http.get("/workflows/nowcast-predict/run").json()
            if runs and runs[0]["state"] in ("finished", "failed"):
                break
            page.wait_for_timeout(200)
    assert runs and runs[0]["state"] == "finished", runs
    page.goto(f"{server.url}/ui#/runs/{runs[0]['uid']}")
    result = page.locator('[data-role="result"]')
    result.wait_for()
    text = result.inner_text()
    # The result view shows the report's keys; the plots are linked by path (run record below).
    assert "cities: 6" in text and "plots: {2 keys: forecast, error_map}" in text, text
    assert runs[0]["result"]["plots"]["error_map"].endswith("nowcast-report/error_map.png")
    shoot(page, "example-nowcast-predict")
    page_errors.check()
