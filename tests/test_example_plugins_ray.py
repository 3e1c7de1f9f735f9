"""The nowcast and ask examples on a server whose executor is Ray give the results they give inline.

``flowdapt run`` with ``executor.backend: ray``: on CI's separately started cluster
(``FLOWDAPT_TEST_RAY_ADDRESS``, scripts/ci/setup-ray.sh), else a local Ray instance the server
starts (2 CPUs). LMDB cluster memory (one machine). Small sizes; full sizes: scripts/bench/examples.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytest.importorskip("ray", reason="needs ray (installed with flowdapt-ray)")

from flowdapt_scraper_example.corpus import CorpusServer, thread_text  # noqa: E402
from tests.server.conftest import spawn_server  # noqa: E402

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # a Ray start: tens of seconds

NOWCAST = {"n_cities": 8, "history_hours": 24 * 8, "test_hours": 24, "horizon": 2, "plot_cities": 1}


def test_nowcast_and_ask_on_a_ray_server_match_inline(tmp_path, flowdapt_settings, flowdapt_plugins):
    from flowdapt.testing import run_workflow_inline

    env = {
        "FLOWDAPT__EXECUTOR__BACKEND": "ray",
        "FLOWDAPT__EXECUTOR__OPTIONS__INCLUDE_DASHBOARD": "false",
        "FLOWDAPT__CLUSTER_MEMORY__BACKEND": "lmdb",
    }
    address = os.environ.get("FLOWDAPT_TEST_RAY_ADDRESS")
    env.update({"FLOWDAPT__EXECUTOR__OPTIONS__ADDRESS": address} if address else
               {"FLOWDAPT__EXECUTOR__OPTIONS__CPUS": "2"})
    with CorpusServer(pages=5, threads=40, seed=6) as site:
        server = spawn_server(tmp_path / "ray-app", env=env)
        try:
            definitions = tmp_path / "definitions.yaml"
            cli_env = {**os.environ, "FLOWDAPT_SERVER": server.url, "FLOWDAPT__APP_DIR": str(server.app_dir)}
            for args in (["plugin", "definitions", "nowcast_example", "ask_example"], ["apply", "-f", str(definitions)]):
                proc = subprocess.run([sys.executable, "-m", "flowdapt.cli.main", *args], capture_output=True,
                                      text=True, env=cli_env, timeout=120, stdin=subprocess.DEVNULL)
                assert proc.returncode == 0, proc.stderr
                if args[0] == "plugin":
                    definitions.write_text(proc.stdout)
            on_ray = {}
            with httpx.Client(base_url=server.url, timeout=240) as api:
                for name in ("nowcast-create-features", "nowcast-train", "nowcast-predict"):
                    run = api.post(f"/workflows/{name}/run", params={"wait": "true"}, json=NOWCAST).json()
                    assert run["state"] == "finished", run
                    on_ray[name] = run["result"]
                ask = api.post("/workflows/ask/run", params={"wait": "true"},
                               json={"query": "sports", "site_url": site.url}).json()
                assert ask["state"] == "finished", ask
                status = api.get("/status").json()
        finally:
            server.stop()
        inline = run_workflow_inline("nowcast-create-features", NOWCAST, check=True)
        run_workflow_inline("nowcast-train", NOWCAST, check=True)
        inline = run_workflow_inline("nowcast-predict", NOWCAST, check=True).result
        expected = sorted(site.url + t.path for t in site.corpus.threads if "sports" in thread_text(t).lower())
    assert "ray" in str(status).lower()
    assert on_ray["nowcast-train"]["models"] == 24
    for key in ("error_per_city", "rmse", "persistence_rmse", "horizon"):
        assert on_ray["nowcast-predict"][key] == inline[key], key
    assert Path(on_ray["nowcast-predict"]["plots"]["error_map"]).read_bytes()[:4] == b"\x89PNG"
    answer = ask["result"]
    assert answer["count"] == len(expected) >= 3
    assert sorted(r["url"] for r in answer["results"]) == expected
