"""Hole 6 and part of 11: a full database or disk, and an app dir the store cannot open.

Apply and run used to answer 500 "database or disk is full"; a run in flight when the disk
filled stayed ``running`` after space came back and, after a restart, was marked failed
although it had completed. A read-only app dir exited with a raw "unable to open database
file" traceback.

The full disk is made real with SQLite's own page limit (``database.options.max_size_mb``):
the same SQLITE_FULL error a full disk gives.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.server.conftest import STAGES, make_settings, start_server, workflow_doc

FILLER = "x" * 20_000


def config_doc(name: str) -> dict:
    return {"kind": "config", "metadata": {"name": name}, "spec": {"selector": {"type": "name", "value": "none"}, "data": {"pad": FILLER}}}


def fill(http) -> list[str]:
    """Create configs until the database refuses one; returns the names stored."""
    names = []
    for i in range(500):
        response = http.post("/configs/", json=config_doc(f"fill{i}"))
        if response.status_code == 507:
            return names
        assert response.status_code == 200, response.text
        names.append(f"fill{i}")
    raise AssertionError("the database never filled up")


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def small_db(tmp_path, stages_package):
    return make_settings(tmp_path / "app", {"database.options": {"max_size_mb": 0.5}})


def test_a_full_database_answers_507_and_keeps_stored_state(small_db):
    live = start_server(small_db)
    try:
        with live.client() as http:
            assert http.post("/workflows/", json=workflow_doc("w", [{"name": "s", "target": f"{STAGES}.make"}])).status_code == 200
            names = fill(http)
            response = http.post("/configs/", json=config_doc("one-more"))
            assert response.status_code == 507
            assert "database is full" in response.json()["detail"] and "nothing was written" in response.json()["detail"]
            run = http.post("/workflows/w/run?wait=true", json={})
            assert run.status_code in (200, 507), run.text
            if run.status_code == 507:
                assert "database is full" in run.json()["detail"]
            # What was stored before is intact and readable.
            listing = http.get("/configs/")
            assert listing.status_code == 200 and len(listing.json()) == len(names)
            assert http.get("/workflows/w").status_code == 200
            assert http.get("/configs/one-more").status_code == 404
        # The Python client raises a named error for it.
        from flowdapt.client import Client, InsufficientStorageError

        with Client(live.url) as client, pytest.raises(InsufficientStorageError, match="database is full"):
            client.create(config_doc("from-client"))
    finally:
        live.stop()


SLOW_BIG = """
import time


def slow_big(seconds: float = 1.5, size: int = 60_000):
    time.sleep(seconds)
    return "r" * size
"""


def test_a_run_that_ends_while_the_disk_is_full_is_recorded_finished_once_space_is_back(small_db):
    (small_db.app_dir / "user_modules").mkdir(parents=True, exist_ok=True)
    (small_db.app_dir / "user_modules" / "slow_big.py").write_text(SLOW_BIG)
    live = start_server(small_db)
    try:
        with live.client() as http:
            doc = workflow_doc("slow", [{"name": "s", "target": "user_modules.slow_big.slow_big"}])
            assert http.post("/workflows/", json=doc).status_code == 200, http.post("/workflows/", json=doc).text
            started = http.post("/workflows/slow/run?wait=false", json={"seconds": 1.5})
            assert started.status_code == 200, started.text
            run_id = started.json()["uid"]
            names = fill(http)  # the disk fills while the run is in flight
            # The run ends; its final write is refused, and retried.
            finished = wait_for(lambda: http.get(f"/runs/{run_id}").json()["state"] == "finished", what="the run to end")
            assert finished
            time.sleep(0.5)
            stored = {r["uid"]: r["state"] for r in _runs(http)}
            assert stored.get(run_id) != "finished", "the final write should have been refused while full"
            for name in names[:20]:  # space comes back
                assert http.delete(f"/configs/{name}").status_code == 200
            wait_for(
                lambda: {r["uid"]: r["state"] for r in _runs(http)}.get(run_id) == "finished",
                what="the final state to be stored",
            )
    finally:
        live.stop()
    # After a restart the run is still finished (not "failed: server stopped").
    again = start_server(small_db)
    try:
        with again.client() as http:
            record = http.get(f"/runs/{run_id}").json()
            assert record["state"] == "finished", record
            assert record["result"] == "r" * 60_000
    finally:
        again.stop()


def _runs(http) -> list[dict]:
    body = http.get("/runs").json()
    return body["items"] if isinstance(body, dict) else body


def test_an_app_dir_the_store_cannot_open_is_a_clear_message_not_a_traceback(tmp_path):
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "flowdapt.db").mkdir()  # a folder where the database file should be: cannot be opened
    env = {"FLOWDAPT__APP_DIR": str(app_dir), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "flowdapt.cli.main", "run", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, **env},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "cannot open the database" in output and "writable" in output, output
    assert "Traceback" not in output, output


def test_an_app_dir_that_cannot_be_created_is_a_clear_message(tmp_path):
    import os

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "flowdapt.cli.main", "run", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FLOWDAPT__APP_DIR": str(not_a_dir / "app"), "HOME": str(tmp_path)},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output and str(not_a_dir / "app") in output, output
