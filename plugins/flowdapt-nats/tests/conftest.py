"""The NATS broker the tests use: ``FLOWDAPT_TEST_NATS_URL`` (scripts/ci/setup-nats.sh exports it with
a unique ``FLOWDAPT_TEST_NATS_PREFIX`` per run), else the broker on 127.0.0.1:4222 when one answers.
Streams are named after the run's prefix and deleted when the session ends."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from urllib.parse import urlsplit

import pytest

from flowdapt.plugins import BUILTIN_PLUGINS
from flowdapt.testing.conformance import Backend

PLUGINS = (*BUILTIN_PLUGINS, ("nats", "flowdapt_nats.plugin"))
NATS_SERVER = shutil.which("nats-server") or ("/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=2) as s:
            return s.recv(4).startswith(b"INFO")
    except OSError:
        return False


@pytest.fixture(scope="session")
def nats_url() -> str:
    url = os.environ.get("FLOWDAPT_TEST_NATS_URL", "nats://127.0.0.1:4222")
    if not _answers(url):
        pytest.skip(f"no NATS broker answers at {url} (run scripts/ci/setup-nats.sh, or set FLOWDAPT_TEST_NATS_URL)")
    return url


@pytest.fixture(scope="session")
def nats_prefix(nats_url):
    """This run's prefix; every stream a test makes starts with it, and all are deleted at the end."""
    prefix = os.environ.get("FLOWDAPT_TEST_NATS_PREFIX") or f"fdtest_{uuid.uuid4().hex[:8]}"
    yield prefix
    from flowdapt_nats.bus import delete_streams

    asyncio.run(delete_streams(nats_url, prefix + "*"))


@pytest.fixture(scope="session")
def nats_backend(nats_url, nats_prefix) -> Backend:
    return Backend(
        "event_buses", "nats", {"prefix": f"{nats_prefix}_{{unique}}", "max_bytes": 8 * 1024 * 1024}, plugins=PLUGINS,
        settings={"event_bus.url": nats_url},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """A nats-server of the test's own (JetStream, store under ``store_dir``), to stop and restart."""

    def __init__(self, store_dir, port: int | None = None, jetstream: bool = True):
        if NATS_SERVER is None:
            pytest.skip("nats-server is not installed, so the broker cannot be stopped and restarted here")
        self.port = port or free_port()
        self.store_dir = store_dir
        self.jetstream = jetstream
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.proc = subprocess.Popen(
            [NATS_SERVER, *(["-js"] if self.jetstream else []), "-a", "127.0.0.1", "-p", str(self.port),
             "-sd", str(self.store_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not _answers(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server on port {self.port} did not start")
            time.sleep(0.05)
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait(timeout=15)
        self.proc = None


@pytest.fixture
def own_nats(tmp_path):
    server = NatsServer(tmp_path / "nats-store").start()
    yield server
    server.stop()
