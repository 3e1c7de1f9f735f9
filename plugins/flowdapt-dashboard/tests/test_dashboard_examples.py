"""The example plugins' workflows run from the dashboard (the Run button on the workflow page):

- nowcast: create features and train started from the dashboard, predict started by the shipped
  condition rule after train; its run page shows the report and the two PNG plots the result
  links to (fetched from ``GET /artifacts/...`` with the token the page holds);
- scraper: a crawl of a site served by this test into the vector database, then a search;
- ask: one run that fans out over the site's matching threads and answers with their summaries.
"""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("flowdapt_nowcast_example", reason="the nowcast example plugin is not installed")
pytest.importorskip("flowdapt_scraper_example", reason="the scraper example plugin is not installed")
pytest.importorskip("flowdapt_ask_example", reason="the ask example plugin is not installed")

from flowdapt.definitions import collect_definitions  # noqa: E402
from flowdapt.plugins import create_plugin_system  # noqa: E402
from flowdapt_scraper_example.corpus import CorpusServer, thread_text  # noqa: E402

pytestmark = pytest.mark.timeout(300)

SMALL = {"n_cities": 6, "history_hours": 120, "test_hours": 24}
KINDS = {"workflow": "workflows", "config": "configs", "trigger_rule": "triggers"}


@pytest.fixture(scope="module")
def site():
    """The news site the scraper and ask examples read, served over HTTP (small, for CI)."""
    with CorpusServer(pages=20, threads=30, seed=5) as served:
        yield served


@pytest.fixture(scope="module")
def examples(server, site):
    """The three plugins' shipped definitions applied to the dashboard's server, and their
    configs pointed at this test's site."""
    names = ["nowcast_example", "scraper_example", "ask_example"]
    plugins = create_plugin_system(only=names, quiet=True)
    with server.client() as http:
        for definition in collect_definitions(plugins, names):
            document = definition.resource.to_document()
            document["metadata"].pop("uid", None)
            if definition.kind == "config" and "site_url" in document["spec"]["data"]:
                document["spec"]["data"]["site_url"] = site.url
            http.post(f"/{KINDS[definition.kind]}/", json=document).raise_for_status()
    return server


def use_raw_input(page) -> None:
    """Switch the start-run form to its raw JSON box (once it has loaded the parameters)."""
    page.locator('.form-grid[data-ready="true"]').wait_for()
    if not page.locator("#run-input").is_visible():
        page.click('[data-action="toggle-raw"]')


def run_from_the_dashboard(page, server, workflow: str, payload: dict) -> str:
    """Start ``workflow`` with the Run button and ``payload`` as its input; wait on its run page
    until it finishes; the run's uid."""
    page.goto(f"{server.url}/ui#/workflows/{workflow}")
    page.click('[data-action="run"]')
    use_raw_input(page)
    page.locator("#run-input").fill(json.dumps(payload))
    page.click('[data-action="start-run"]')
    page.wait_for_url(re.compile(r"#/runs/[0-9a-f-]{36}$"))
    page.locator('.run-sub .badge[data-state="finished"]').wait_for(timeout=120_000)
    page.locator('[data-role="result"]').wait_for()
    return page.url.rsplit("/", 1)[-1]


def test_nowcast_example_runs_from_the_dashboard_and_shows_its_plots(page, page_errors, examples, shoot):
    server = examples
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
        report = runs[0]["result"]
        # The plots are linked by file path and by the API path that serves them.
        assert report["plots"]["error_map"].endswith("nowcast-report/error_map.png")
        assert report["plot_urls"] == {
            "forecast": "/artifacts/default/nowcast-report/files/forecast.png",
            "error_map": "/artifacts/default/nowcast-report/files/error_map.png",
        }
        png = http.get(report["plot_urls"]["forecast"])
        assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    page.goto(f"{server.url}/ui#/runs/{runs[0]['uid']}")
    text = page.locator('[data-role="result"]').inner_text()
    assert "cities: 6" in text and "plots: {2 keys: forecast, error_map}" in text, text
    # The run page shows both plots as images, decoded by the browser.
    artifacts = page.locator('[data-role="artifacts"]')
    images = artifacts.locator('img[data-role="artifact-image"]')
    images.nth(1).wait_for()
    assert images.count() == 2
    sizes = images.evaluate_all("imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert all(done and w > 300 and h > 200 for done, w, h in sizes), sizes
    captions = artifacts.inner_text()
    assert "forecast.png" in captions and "error_map.png" in captions and "plot_urls.forecast" in captions
    shoot(page, "example-nowcast-predict", docs=True, element=artifacts)
    page_errors.check()


def test_scraper_example_crawls_and_searches_from_the_dashboard(page, page_errors, examples, site, shoot):
    server = examples
    crawl = run_from_the_dashboard(page, server, "scraper-crawl", {})
    assert "new: 20" in page.locator('[data-role="result"]').inner_text()
    target = site.corpus.articles[3]
    search = run_from_the_dashboard(page, server, "scraper-search", {"query": target.title, "k": 3})
    text = page.locator('[data-role="result"]').inner_text()
    assert "results: [3 items]" in text, text
    with server.client() as http:
        assert http.get(f"/workflows/run/{crawl}").json()["result"]["documents"] == 20
        found = http.get(f"/workflows/run/{search}").json()["result"]["results"]
    assert found[0]["url"] == site.url + target.path
    # Open the nearest document in the result tree: its URL, summary, entities and keywords show.
    result = page.locator('[data-role="result"]')
    result.locator("summary", has_text="results:").click()
    result.locator("summary", has_text="0:").first.click()
    # The tree renders the opened item asynchronously: wait for the URL to show before reading.
    result.get_by_text(site.url + target.path).first.wait_for(timeout=10_000)
    assert site.url + target.path in result.inner_text()
    shoot(page, "example-scraper-search", docs=True)
    page_errors.check()


def test_ask_example_fans_out_from_the_dashboard(page, page_errors, examples, site, shoot):
    server = examples
    expected = sorted(site.url + t.path for t in site.corpus.threads if "markets" in thread_text(t).lower())
    uid = run_from_the_dashboard(page, server, "ask", {"query": "markets"})
    assert f"count: {len(expected)}" in page.locator('[data-role="result"]').inner_text()
    # The fan-out shows as one map stage with an item per matching thread.
    row = page.locator('tr[data-stage="summarize_thread"]')
    assert row.get_attribute("data-state") == "finished"
    with server.client() as http:
        answer = http.get(f"/workflows/run/{uid}").json()["result"]
    assert sorted(r["url"] for r in answer["results"]) == expected and len(expected) >= 3
    shoot(page, "example-ask", docs=True)
    page_errors.check()
