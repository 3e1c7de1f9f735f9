"""The three example plugins on a running server (``flowdapt run``, Local process pool, LMDB
cluster memory, SQLite): their shipped definitions applied with the CLI, their workflows run from
the CLI and the REST API, the nowcast trigger rule chaining predict after train, a live config
change picked up by the next runs, the scraper re-crawl and the ask fan-out in one REST call.

Small sizes (CI). The full sizes are benchmarks: scripts/bench/examples.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flowdapt_scraper_example.corpus import CorpusServer, thread_text
from tests.server.conftest import spawn_server

pytestmark = pytest.mark.timeout(240)

PLUGINS = ["nowcast_example", "scraper_example", "ask_example"]
NOWCAST = {"n_cities": 10, "history_hours": 24 * 8, "test_hours": 24, "plot_cities": 2}


def cli(server, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLOWDAPT_SERVER": server.url, "FLOWDAPT__APP_DIR": str(server.app_dir)}
    return subprocess.run([sys.executable, "-m", "flowdapt.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def site():
    with CorpusServer(pages=30, threads=40, seed=4) as served:
        yield served


@pytest.fixture(scope="module")
def server(tmp_path_factory, site):
    srv = spawn_server(tmp_path_factory.mktemp("examples-app"), env={"FLOWDAPT__EXECUTOR__OPTIONS__WORKERS": "2"})
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def api(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def set_config(api: httpx.Client, name: str, **data) -> None:
    config = api.get(f"/configs/{name}").json()
    config["spec"]["data"].update(data)
    response = api.put(f"/configs/{name}", json=config)
    assert response.status_code == 200, response.text


def wait_for_runs(api: httpx.Client, workflow: str, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        runs = [r for r in api.get(f"/workflows/{workflow}/run", params={"limit": 50}).json()
                if r["state"] in ("finished", "failed")]
        if len(runs) >= count:
            return runs
        assert time.monotonic() < deadline, f"{workflow}: {len(runs)} finished runs, expected {count}"
        time.sleep(0.2)


def test_the_plugins_are_loaded_and_their_definitions_apply_with_the_cli(server, api, site, tmp_path):
    listed = {p["name"]: p for p in json.loads(ok(cli(server, "plugin", "list", "-o", "json")).stdout)}
    for name in PLUGINS:
        assert listed[name]["status"] == "enabled", listed.get(name)
    definitions = tmp_path / "definitions.yaml"
    definitions.write_text(ok(cli(server, "plugin", "definitions", *PLUGINS)).stdout)
    ok(cli(server, "apply", "-f", str(definitions)))
    workflows = {w["metadata"]["name"] for w in api.get("/workflows/").json()}
    assert {"nowcast-create-features", "nowcast-train", "nowcast-predict", "scraper-crawl", "scraper-search",
            "ask"} <= workflows
    rules = {r["metadata"]["name"]: r for r in api.get("/triggers/").json()}
    assert rules["nowcast-retrain"]["spec"]["rule"] == ["*/30 * * * *"]
    assert rules["scraper-every-15-minutes"]["spec"]["type"] == "schedule"
    # The corpus is served by this test; small sizes for CI.
    set_config(api, "nowcast-example-settings", **NOWCAST)
    set_config(api, "scraper-example-settings", site_url=site.url)
    set_config(api, "ask-example-settings", site_url=site.url)


def test_nowcast_train_from_the_cli_triggers_predict_and_a_config_change_is_live(server, api):
    created = api.post("/workflows/nowcast-create-features/run", params={"wait": "true"}, json={})
    assert created.status_code == 200 and created.json()["state"] == "finished", created.text
    assert created.json()["result"]["cities"] == 10
    trained = ok(cli(server, "start", "nowcast-train", "--no-progress", "-o", "json"))
    assert json.loads(trained.stdout)["result"]["models"] == 30
    # The condition rule nowcast-predict-after-train starts predict when train finishes.
    predicted = wait_for_runs(api, "nowcast-predict", 1)[0]
    assert predicted["state"] == "finished", predicted
    report = predicted["result"]
    assert report["horizon"] == 1 and len(report["error_per_city"]) == 10
    assert report["rmse"]["temperature"] < report["persistence_rmse"]["temperature"]
    for png in report["plots"].values():
        assert Path(png).read_bytes()[:4] == b"\x89PNG" and Path(png).is_relative_to(server.app_dir)
    # Live config: a new horizon, no redeploy; the next train and the predict it triggers use it.
    set_config(api, "nowcast-example-settings", horizon=4)
    retrained = api.post("/workflows/nowcast-train/run", params={"wait": "true"}, json={}).json()
    assert retrained["result"]["horizon"] == 4
    latest = wait_for_runs(api, "nowcast-predict", 2)[0]
    assert latest["state"] == "finished" and latest["result"]["horizon"] == 4


def test_scraper_crawls_recrawls_only_changes_and_searches(api, site):
    first = api.post("/workflows/scraper-crawl/run", params={"wait": "true"}, json={}).json()
    assert first["state"] == "finished", first
    assert first["result"]["new"] == 30 and first["result"]["documents"] == 30
    revised = site.revise(changed=2, added=1, seed=8)
    second = api.post("/workflows/scraper-crawl/run", params={"wait": "true"}, json={}).json()["result"]
    assert (second["new"], second["changed"], second["unchanged"], second["documents"]) == (1, 2, 28, 31)
    changed = site.corpus.page(revised["changed"][0])
    found = api.post("/workflows/scraper-search/run", params={"wait": "true"},
                     json={"query": changed.title, "k": 3}).json()
    assert found["state"] == "finished", found
    top = found["result"]["results"][0]
    assert top["url"] == site.url + changed.path
    # The stored summary is the revised page's: the upsert replaced the old document.
    assert all(sentence in " ".join(changed.paragraphs) for sentence in top["summary"].split(". ") if sentence)


def test_ask_is_one_rest_call_that_fans_out_and_returns_structured_summaries(api, site):
    expected = sorted(site.url + t.path for t in site.corpus.threads if "markets" in thread_text(t).lower())
    response = api.post("/workflows/ask/run", params={"wait": "true"}, json={"query": "markets"})
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["state"] == "finished", run
    answer = run["result"]
    assert answer["count"] == len(expected) >= 5
    assert sorted(r["url"] for r in answer["results"]) == expected
    assert all(r["summary"] and isinstance(r["keywords"], list) for r in answer["results"])
    detail = api.get(f"/workflows/run/{run['uid']}").json()
    assert detail["state"] == "finished"
