"""Fixtures for the dashboard tests: a real ``flowdapt run`` server in a subprocess (temp app dir,
free port, the installed plugins, so the dashboard comes through its entry point) and Debian's
Chromium driven by Playwright.

Screenshots go to ``$FLOWDAPT_DASHBOARD_ARTIFACTS`` (default ``test-artifacts/dashboard``).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = os.environ.get("FLOWDAPT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1366, "height": 860}
TOKEN = "dashboard-test-token"
#: Runs put in the database before the server starts: the pages must stay quick with them.
SEEDED_RUNS = 10_000

STAGES = """
import time


def make(n: int = 20):
    return list(range(n))


def work(x, delay: float = 0.02):
    time.sleep(delay)
    return x * x


def total(xs):
    return sum(xs)


def flaky(x):
    if x % 7 == 3:
        raise ValueError(f"item {x} is bad")
    return x


def boom(xs):
    raise RuntimeError("the model diverged: loss is NaN")


def chatty(lines: int = 5, delay: float = 0.2, label: str = "step"):
    import logging

    for i in range(lines):
        print(f"{label} {i} of {lines}", flush=True)
        time.sleep(delay)
    logging.getLogger("dash.chatty").warning("chatty is done")
    return lines


def after(n):
    print(f"after got {n}")
    return n


def sleepy(seconds: float = 120):
    time.sleep(seconds)
    return seconds


def _png(width, height):
    import struct
    import zlib

    rows = b"".join(
        b"\\x00" + b"".join(bytes((x * 5 % 256, y * 8 % 256, 160)) for x in range(width)) for y in range(height)
    )

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def plot_link(width: int = 48, height: int = 32):
    from flowdapt.compute.artifacts import get_artifact

    artifact = get_artifact("dash-plot", create=True)
    plot = artifact.new_file("plot.png", _png(width, height))
    return {"plot": plot.url_path, "missing": "/artifacts/default/dash-plot/files/gone.png", "path": plot.path}
"""


def artifacts_dir() -> Path:
    path = Path(os.environ.get("FLOWDAPT_DASHBOARD_ARTIFACTS", "test-artifacts/dashboard"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def workflow(name: str, stages: list[dict[str, Any]], **annotations: str) -> dict[str, Any]:
    return {
        "kind": "workflow",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"stages": stages},
    }


def stage(name: str, fn: str, *deps: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "target": f"user_modules.dash_stages.{fn}", "depends_on": list(deps), **extra}


@dataclass
class Server:
    url: str
    app_dir: Path
    process: subprocess.Popen
    log: Path
    token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seeded: int = 0

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, headers=self.headers)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


async def _seed_runs(app_dir: Path, count: int) -> None:
    """Old runs straight into the server's database, through the document store API."""
    from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
    from flowdapt.resources.base import utcnow
    from flowdapt.resources.run import StageRun, WorkflowRun
    from flowdapt.settings import load_settings

    settings = load_settings(app_dir)
    plugins = create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))
    store = plugins.create("document_stores", settings.database.backend, settings.database.options, settings)
    await store.open()
    rng = random.Random(7)
    now = utcnow()

    async def one(i: int) -> None:
        # Between 1 h and 3 days old, so they never outrank the runs the tests start.
        start = now - timedelta(seconds=rng.uniform(3600, 3 * 86400))
        state = rng.choices(["finished", "failed", "cancelled"], [90, 8, 2])[0]
        run = WorkflowRun(
            workflow=f"archive-{i % 4}",
            started_at=start,
            finished_at=start + timedelta(seconds=rng.uniform(0.2, 40)),
            state=state,
            source="trigger",
            result=i if state == "finished" else ["ValueError", "seeded failure"],
            stages={"only": StageRun(state="finished" if state == "finished" else "failed")},
        )
        await store.create_run(run)

    try:
        for first in range(0, count, 500):
            await asyncio.gather(*(one(i) for i in range(first, min(count, first + 500))))
    finally:
        await store.close()


def start_server(app_dir: Path, *, token: str | None = None, seed: int = 0, max_concurrent_runs: int = 0) -> Server:
    """``max_concurrent_runs``: the server's ``executor.max_concurrent_runs`` (0: no limit)."""
    (app_dir / "user_modules").mkdir(parents=True, exist_ok=True)
    (app_dir / "user_modules" / "dash_stages.py").write_text(textwrap.dedent(STAGES))
    (app_dir / "flowdapt.yaml").write_text(
        "name: dashboard-test\n"
        f"executor:\n  backend: local\n  max_concurrent_runs: {int(max_concurrent_runs)}\n  options:\n    workers: 2\n"
        "api:\n  shutdown_timeout: 3\n"
    )
    if seed:
        # In a thread of its own: Playwright's sync API may already run a loop in this one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _seed_runs(app_dir, seed)).result()
    port = free_port()
    log = app_dir / "server.log"
    env = {**os.environ, "FLOWDAPT__APP_DIR": str(app_dir)}
    for key in ("FLOWDAPT_SERVER", "FLOWDAPT_TOKEN", "FLOWDAPT__API__TOKEN", "FLOWDAPT__API__TOKENS"):
        env.pop(key, None)
    if token:
        env["FLOWDAPT__API__TOKEN"] = token
    process = subprocess.Popen(
        [sys.executable, "-m", "flowdapt.cli.main", "run", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"flowdapt run exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"flowdapt run did not answer in 90 s:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Server(url, app_dir, process, log, token, headers, seed)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """A server with the test workflows applied and 10,000 old runs in its database."""
    live = start_server(tmp_path_factory.mktemp("dashboard-app"), seed=SEEDED_RUNS)
    try:
        with live.client() as http:
            for doc in (
                workflow(
                    "failing",
                    [
                        stage("make", "make"),
                        stage(
                            "flaky",
                            "flaky",
                            "make",
                            type="parameterized",
                            options={"allow_partial_failure": True},
                        ),
                        stage("boom", "boom", "flaky"),
                    ],
                    group="demo",
                ),
                workflow("long", [stage("sleep", "sleepy")], group="demo"),
                workflow("chatty", [stage("chatty", "chatty"), stage("after", "after", "chatty")], group="demo"),
                workflow("long-chain", [stage("sleep", "sleepy"), stage("after", "after", "sleep")], group="demo"),
                *(workflow(f"archive-{i}", [stage("make", "make")], group="archive") for i in range(4)),
            ):
                http.post("/workflows/", json=doc).raise_for_status()
            # A condition rule that fires when a run of "failing" fails: the failed-run test sets its last fire.
            http.post(
                "/triggers/",
                json={
                    "kind": "trigger_rule",
                    "metadata": {"name": "on-failure"},
                    "spec": {
                        "type": "condition",
                        "rule": {
                            "and": [
                                {"eq": [{"var": "type"}, "com.event.workflow.workflow_finished"]},
                                {"eq": [{"var": "data.workflow"}, "failing"]},
                                {"eq": [{"var": "data.state"}, "failed"]},
                            ]
                        },
                        "action": {"target": "print_event", "parameters": {"workflow": "failing"}},
                    },
                },
            ).raise_for_status()
        yield live
    finally:
        live.stop()


# Module scope, not session: while Playwright's sync API is active it holds an event loop in this
# thread, and later test modules (asyncio.run, pytest-asyncio) need the thread free.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM}: run scripts/ci/setup-chromium.sh (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run these tests, never skip them quietly
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


class PageErrors(list):
    def check(self) -> None:
        assert not self, "the page reported errors:\n" + "\n".join(self)


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
def page(browser, page_errors) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.set_default_timeout(20_000)
    pg = context.new_page()
    pg.on("pageerror", lambda exc: page_errors.append(f"uncaught: {exc}"))
    # A 4xx the page asked for on purpose (a refused workflow) is logged by Chromium as a failed load.
    pg.on(
        "console",
        lambda msg: (
            page_errors.append(f"console.{msg.type}: {msg.text}")
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    try:
        yield pg
    finally:
        context.close()


def _shoot(pg, name: str, docs: bool = False, element: Any = None) -> Path:
    """Save a screenshot of the whole page as ``<artifacts>/<name>.png``. With ``docs`` and
    FLOWDAPT_UPDATE_DOCS_IMAGES=1 it also writes ``docs/images/dashboard-<name>.png``: the first
    screenful, or with ``element`` (a locator) the screenful that shows that element."""
    pg.wait_for_timeout(150)  # let the last redraw land
    path = artifacts_dir() / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    if docs and os.environ.get("FLOWDAPT_UPDATE_DOCS_IMAGES") == "1":
        # The docs get one screenful only: it is what a reader looks at, and the file stays small.
        target = Path(__file__).resolve().parents[3] / "docs" / "images" / f"dashboard-{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if element is not None:
            element.evaluate("el => el.scrollIntoView({block: 'start'})")
            pg.wait_for_timeout(100)
        pg.screenshot(path=str(target), full_page=False)
    return path


@pytest.fixture
def shoot():
    return _shoot


@pytest.fixture
def secured_server(tmp_path) -> Iterator[Server]:
    """A server that requires ``Authorization: Bearer <TOKEN>``."""
    live = start_server(tmp_path / "secured", token=TOKEN)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def one_slot_server(tmp_path) -> Iterator[Server]:
    """A server that drives one run at a time (``executor.max_concurrent_runs: 1``): the others
    wait ``pending`` in the queue."""
    live = start_server(tmp_path / "one-slot", max_concurrent_runs=1)
    try:
        with live.client() as http:
            http.post("/workflows/", json=workflow("nap", [stage("sleep", "sleepy")])).raise_for_status()
        yield live
    finally:
        live.stop()
