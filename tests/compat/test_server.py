"""The same stage code, written against the original's API, through a live server over REST."""

from __future__ import annotations

import pytest

from flowdapt.settings import load_settings
from tests.compat.conftest import STAGES, pipeline, pipeline_config, single_stage
from tests.server.conftest import start_server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def http(tmp_path, compat_stages):
    settings = load_settings(
        tmp_path / "app",
        overrides={
            "executor.backend": "local",
            "executor.options": {"mode": "process", "workers": 2},
            "cluster_memory.backend": "memory",
            "allowed_targets": [compat_stages],
            "api.shutdown_timeout": 5,
        },
    )
    live = start_server(settings)
    try:
        with live.client() as client:
            yield client
    finally:
        live.stop()


def test_pipeline_through_the_server(http):
    workflow = {"kind": "workflow", **pipeline("compat-server")}
    assert http.post("/workflows/", json=workflow).status_code == 200
    config = {
        "kind": "config",
        "metadata": {"name": "compat-server-config"},
        "spec": {"selector": {"type": "name", "value": "compat-server"}, "data": pipeline_config()},
    }
    assert http.post("/configs/", json=config).status_code == 200

    run = http.post("/workflows/compat-server/run", json={}).json()
    assert run["state"] == "finished", run
    result = run["result"]
    assert result["shapes"] == {"Los Angeles": [22, 6], "Oslo": [22, 6]}
    oslo = {item["city"]: item for item in result["trained"]}["Oslo"]
    assert oslo["prediction"] == pytest.approx(17.5) and oslo["neighbours"] is False

    # Live config: five hours later the stored data is found and extended.
    config["spec"]["data"] = pipeline_config(end="2026-01-02T05:00:00")
    assert http.put("/configs/compat-server-config", json=config).status_code == 200
    run = http.post("/workflows/compat-server/run", json={}).json()
    assert run["state"] == "finished", run
    assert run["result"]["shapes"] == {"Los Angeles": [27, 6], "Oslo": [27, 6]}


def test_stage_errors_read_as_the_originals(http):
    workflow = {"kind": "workflow", **single_stage("compat-missing", "read_missing")}
    assert http.post("/workflows/", json=workflow).status_code == 200
    run = http.post("/workflows/compat-missing/run", json={"key": "absent"}).json()
    assert run["state"] == "failed"
    assert run["result"] == [
        "ObjectNotFoundError",
        "no object 'absent' in namespace 'default' (looked in cluster memory (memory) and artifacts)",
    ]
    assert STAGES in run["error"]["traceback"]
