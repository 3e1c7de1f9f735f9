"""The dashboard's server side without a browser: what is public, what needs a token, the
aggregate endpoints, and that every asset the page loads is in the package."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import flowdapt_dashboard.plugin
from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.resources.base import utcnow
from flowdapt.resources.run import StageRun, WorkflowRun
from flowdapt.server import create_app
from flowdapt.settings import load_settings
from flowdapt_dashboard.routes import static_root

TOKEN = "s3cret-token"


def make_client(tmp_path: Path, **overrides) -> TestClient:
    settings = load_settings(
        tmp_path,
        overrides={
            "executor.backend": "local",
            "executor.options": {"mode": "thread", "workers": 1},
            **overrides,
        },
    )
    plugins = create_plugin_system(
        load_entry_points=False, plugins=[*BUILTIN_PLUGINS, flowdapt_dashboard.plugin]
    )
    return TestClient(create_app(settings, plugins, services="api,compute"))


@pytest.fixture
def secured(tmp_path):
    with make_client(tmp_path, **{"api.tokens": [TOKEN]}) as client:
        yield client


@pytest.fixture
def client(tmp_path):
    with make_client(tmp_path) as client:
        yield client


def test_page_and_assets_are_public_and_data_needs_a_token(secured):
    page = secured.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/ui/assets/js/main.js">' in page.text
    script = secured.get("/ui/assets/js/main.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert secured.get("/ui/assets/app.css").headers["content-type"].startswith("text/css")
    slash = secured.get("/ui/", follow_redirects=False)
    assert slash.status_code == 308 and slash.headers["location"] == "/ui"
    # Data is not public: the aggregate endpoints and the REST API want the token.
    for path in ("/ui/api/overview", "/ui/api/workflows", "/workflows/", "/runs"):
        assert secured.get(path).status_code == 401, path
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert secured.get("/ui/api/overview", headers=auth).status_code == 200
    assert secured.get("/ui/api/workflows", headers=auth).json() == []


def test_assets_revalidate_and_cannot_escape_the_static_folder(client):
    first = client.get("/ui/assets/js/api.js")
    assert first.headers["cache-control"] == "no-cache"
    again = client.get("/ui/assets/js/api.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    for path in ("/ui/assets/../routes.py", "/ui/assets/%2e%2e/routes.py", "/ui/assets/nope.js"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "def create_router" not in response.text


URL = re.compile(r"""["'`](https?://[^"'`]+)""")
IMPORT = re.compile(r"""(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']""")


def test_every_module_and_asset_the_page_loads_is_in_the_package():
    root = static_root()
    index = (root / "index.html").read_text()
    referenced = re.findall(r'(?:src|href)="/ui/assets/([^"]+)"', index)
    assert referenced, "index.html loads no assets"
    for asset in referenced:
        assert (root / asset).is_file(), asset
    modules = list(root.rglob("*.js")) + list(root.rglob("*.mjs"))
    assert len(modules) >= 10
    for module in modules:
        text = module.read_text()
        for spec in IMPORT.findall(text):
            assert spec.startswith("."), (
                f"{module.name} imports {spec!r}: only relative imports (no CDN, no bare names)"
            )
            assert (module.parent / spec).resolve().is_file(), (
                f"{module.relative_to(root)} imports missing {spec}"
            )
        if module.parent.name != "vendor":  # our own code names no outside URL to load
            outside = [u for u in URL.findall(text) if u != "http://www.w3.org/2000/svg"]
            assert not outside, f"{module.name} refers to {outside}"


def _run(workflow: str, state: str, age: timedelta, seconds: float) -> WorkflowRun:
    started = utcnow() - age
    return WorkflowRun(
        workflow=workflow,
        state=state,
        started_at=started,
        finished_at=None if state == "running" else started + timedelta(seconds=seconds),
        stages={"a": StageRun(state="finished")},
    )


def test_aggregates_last_runs_counts_and_hourly_throughput(client):
    server = client.app.state.server
    for name in ("alpha", "beta", "idle"):
        doc = {
            "kind": "workflow",
            "metadata": {"name": name, "annotations": {"group": "g"}},
            "spec": {
                "stages": [
                    {"name": "make", "target": "flowdapt_dashboard.summary.run_brief"},
                    {
                        "name": "each",
                        "target": "flowdapt_dashboard.summary.run_brief",
                        "type": "parameterized",
                        "depends_on": ["make"],
                    },
                ]
            },
        }
        response = client.post("/workflows/", json=doc)
        assert response.status_code == 200, response.text
    runs = [
        _run("alpha", "finished", timedelta(minutes=10), 2.0),
        _run("alpha", "failed", timedelta(hours=2, minutes=5), 4.0),
        _run("alpha", "finished", timedelta(hours=30), 1.0),  # outside the 24 h window
        _run("beta", "running", timedelta(minutes=1), 0),
        _run("beta", "cancelled", timedelta(hours=5), 0.5),
    ]

    async def seed():
        for run in runs:
            await server.store.create_run(run)

    client.portal.call(seed)  # on the app's own loop, where the store lives

    workflows = {w["name"]: w for w in client.get("/ui/api/workflows").json()}
    assert workflows["alpha"]["last_run"]["uid"] == str(runs[0].uid)
    assert workflows["alpha"]["last_run"]["duration"] == pytest.approx(2.0)
    assert workflows["alpha"]["runs_24h"] == 2
    assert workflows["alpha"]["map_stages"] == ["each"] and workflows["alpha"]["stages"] == 2
    assert workflows["beta"]["last_run"]["state"] == "running"
    assert workflows["idle"]["last_run"] is None and workflows["idle"]["runs_24h"] == 0

    # The lists the dashboard shows ask for runs without their results.
    page = client.get("/runs", params={"workflow": "alpha", "include_result": "false"}).json()
    assert page["total"] == 3 and all("result" not in item for item in page["items"])

    overview = client.get("/ui/api/overview").json()
    assert overview["workflows"] == 3
    assert overview["runs_total"] == 5
    assert overview["runs_by_state"] == {
        "pending": 0,
        "running": 1,
        "finished": 1,
        "failed": 1,
        "cancelled": 1,
    }
    buckets = overview["throughput"]
    assert len(buckets) == 24
    assert sum(b["started"] for b in buckets) == 4 and sum(b["failed"] for b in buckets) == 1
    # Newest bucket last: the runs of 1 and 10 minutes ago are in it, or in the one before when
    # the test runs in the first minutes of an hour; the failed run two hours ago sits two or
    # three buckets back.
    assert buckets[-1]["started"] + buckets[-2]["started"] == 2
    failed_at = [i for i, b in enumerate(buckets) if b["failed"]]
    assert failed_at and failed_at[0] in (20, 21)
    # Durations: finished runs only, oldest first.
    durations = overview["durations"]
    assert [d["uid"] for d in durations] == [str(r.uid) for r in (runs[2], runs[4], runs[1], runs[0])]


def test_aggregates_when_the_server_keeps_no_runs(tmp_path):
    with make_client(tmp_path, **{"compute.run_retention_duration": 0}) as client:
        overview = client.get("/ui/api/overview").json()
        assert overview["runs_total"] == 0 and overview["throughput"] == [] and overview["durations"] == []
        assert client.get("/ui/api/workflows").json() == []
