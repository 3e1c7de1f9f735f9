"""Several ``flowdapt run`` processes on one PostgreSQL database (and one broker when the NATS
plugin and broker are there): the multi-server tests of docs/deployment.md.

The database is ``FLOWDAPT_TEST_POSTGRES_DSN`` (a fresh one per test run, made by
scripts/ci/setup-postgres.sh), else one these tests create on 127.0.0.1:5432; every test gets a
schema of its own. The broker is ``FLOWDAPT_TEST_NATS_URL`` (scripts/ci/setup-nats.sh) with a
prefix of the test's own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import free_port

ADMIN_DSN = os.environ.get("FLOWDAPT_TEST_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

STAGES = '''
import time


def make(n: int = 10):
    return list(range(n))


def square(x):
    return x * x


def total(xs):
    return sum(xs)


def sleep_then(seconds: float = 1.0):
    time.sleep(seconds)
    return seconds


def fail(message: str = "boom"):
    raise RuntimeError(message)


def where(*_, **__):
    """Which host and process ran this stage (a Dask worker, a namespace host: tests/cluster/netns.py)."""
    import os
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid()}
'''


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    dsn = os.environ.get("FLOWDAPT_TEST_POSTGRES_DSN")
    if dsn:
        yield dsn
        return
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {ADMIN_DSN} (and FLOWDAPT_TEST_POSTGRES_DSN unset): {exc}")
    name = f"flowdapt_cluster_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def nats_url() -> str | None:
    """The broker for these tests, when the NATS plugin is installed."""
    try:
        import flowdapt_nats  # noqa: F401
    except ImportError:
        return None
    return os.environ.get("FLOWDAPT_TEST_NATS_URL", "nats://127.0.0.1:4222")


@dataclass
class Proc:
    name: str
    services: str
    app_dir: Path
    env: dict[str, str]
    port: int | None
    process: subprocess.Popen | None = None
    log: Path | None = None
    starts: int = 0
    #: Wraps the command line, e.g. to run it in a network-namespace host (tests/cluster/netns.py).
    launcher: Callable[[list[str]], list[str]] | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.name} serves no API"
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Proc:
        self.starts += 1
        self.log = self.app_dir / f"server-{self.starts}.log"
        args = [sys.executable, "-m", "flowdapt.cli.main", "run", "--services", self.services]
        if self.port is not None:
            args += ["--port", str(self.port)]
        if self.launcher is not None:
            args = self.launcher(args)
        self.process = subprocess.Popen(args, env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def output(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(self.app_dir.glob("server-*.log"))
        )


@dataclass
class Cluster:
    root: Path
    dsn: str
    schema: str
    bus: str | None
    procs: list[Proc] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def env_for(self, app_dir: Path, name: str) -> dict[str, str]:
        env = {
            **os.environ,
            "FLOWDAPT__APP_DIR": str(app_dir),
            "FLOWDAPT__NAME": name,
            "FLOWDAPT__DATABASE__BACKEND": "postgres",
            "FLOWDAPT__DATABASE__OPTIONS": json.dumps({"dsn": self.dsn, "schema": self.schema}),
            "FLOWDAPT__EXECUTOR__OPTIONS": json.dumps({"workers": 2}),
            "FLOWDAPT__COMPUTE__RUN_QUEUE": "on",
            "FLOWDAPT__COMPUTE__LEASE_SECONDS": "3",
            "FLOWDAPT__COMPUTE__QUEUE_POLL_SECONDS": "0.5",
            "FLOWDAPT__API__SHUTDOWN_TIMEOUT": "3",
            "FLOWDAPT__TRIGGERS__RESYNC_INTERVAL": "2",
        }
        if self.bus:
            env["FLOWDAPT__EVENT_BUS__URL"] = self.bus
            # Small streams (JetStream reserves max_bytes per stream), deleted at the end (stop()).
            env["FLOWDAPT__EVENT_BUS__OPTIONS"] = json.dumps({"prefix": self.schema, "max_bytes": 32 * 1024 * 1024})
        for key, value in self.settings.items():
            env[key] = value if isinstance(value, str) else json.dumps(value)
        env.pop("FLOWDAPT_SERVER", None)
        return env

    def add(
        self,
        services: str,
        name: str | None = None,
        *,
        env: dict[str, Any] | None = None,
        launcher: Callable[[list[str]], list[str]] | None = None,
    ) -> Proc:
        """Start a ``flowdapt run --services SERVICES`` process; ``env`` adds to (or overrides) its
        environment (values that are not strings as JSON), ``launcher`` wraps its command line."""
        name = name or f"{services.replace(',', '+')}-{len(self.procs)}"
        app_dir = self.root / name
        (app_dir / "user_modules").mkdir(parents=True, exist_ok=True)
        (app_dir / "user_modules" / "cluster_stages.py").write_text(STAGES)
        port = free_port() if "api" in services.split(",") else None
        proc_env = self.env_for(app_dir, name)
        for key, value in (env or {}).items():
            proc_env[key] = value if isinstance(value, str) else json.dumps(value)
        proc = Proc(name, services, app_dir, proc_env, port, launcher=launcher)
        self.procs.append(proc)
        return proc.start()

    def api(self) -> list[Proc]:
        return [p for p in self.procs if p.port is not None]

    def http(self, proc: Proc | None = None) -> httpx.Client:
        return httpx.Client(base_url=(proc or self.api()[0]).url, timeout=60)

    def wait_ready(self, count: int | None = None, timeout: float = 60) -> list[dict[str, Any]]:
        """Until every API process answers and the cluster lists ``count`` live servers."""
        count = len([p for p in self.procs if p.alive()]) if count is None else count
        deadline = time.monotonic() + timeout
        servers: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.process is not None and proc.process.poll() is not None and proc.starts and proc.process.returncode not in (-9, 0, -15):
                    raise RuntimeError(f"{proc.name} exited with {proc.process.returncode}:\n{proc.output()}")
            try:
                answers = [httpx.get(p.url + "/status", timeout=2).json() for p in self.api() if p.alive()]
                servers = answers[0].get("cluster", {}).get("servers", []) if answers else []
                if answers and len(servers) >= count:
                    return servers
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the cluster did not come up ({len(servers)} of {count} servers):\n" + "\n".join(p.output() for p in self.procs))

    def stop(self) -> None:
        try:
            self._stop_processes()
        finally:
            if self.bus:
                import asyncio

                from flowdapt_nats.bus import delete_streams

                try:
                    asyncio.run(delete_streams(self.bus, self.schema + "*"))
                except Exception as exc:  # the broker is gone: nothing of ours is left on it either
                    print(f"could not delete the streams of prefix {self.schema}: {exc}")

    def _stop_processes(self) -> None:
        for proc in self.procs:
            if proc.alive():
                proc.process.send_signal(signal.SIGTERM)
        for proc in self.procs:
            if proc.process is not None:
                try:
                    proc.process.wait(20)
                except subprocess.TimeoutExpired:
                    proc.process.kill()


@pytest.fixture
def cluster(tmp_path, postgres_dsn) -> Iterator[Cluster]:
    pytest.importorskip("flowdapt_postgres")
    c = Cluster(tmp_path, postgres_dsn, f"c_{uuid.uuid4().hex[:12]}", nats_url())
    try:
        yield c
    finally:
        c.stop()


def workflow(name: str, *stages: tuple[str, str, list[str]], **spec: Any) -> dict[str, Any]:
    return {
        "kind": "workflow",
        "metadata": {"name": name},
        "spec": {
            "stages": [{"name": s, "target": f"user_modules.cluster_stages.{fn}", "depends_on": deps} for s, fn, deps in stages],
            **spec,
        },
    }


def wait_for(predicate, timeout: float = 30, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Load:
    """Submits runs to the API servers in turn from a thread; records what each answer said."""

    def __init__(self, urls: list[str], workflow_name: str, every: float, body: dict | None = None, *, keyed: bool = False):
        self.urls, self.workflow, self.every, self.body = urls, workflow_name, every, body or {}
        self.accepted: list[str] = []
        self.refused = 0  # connection refused: the server was down, nothing recorded
        self.unknown = 0  # the answer was lost after the request was sent: maybe recorded
        #: keyed: every intended run has an Idempotency-Key, and a request without a 200 is sent
        #: again with the same key until one comes (after stop too, for up to 20 s).
        self.keyed = keyed
        self.unresolved = 0  # keyed: intended runs still without an answer at the end
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        i = 0
        key: str | None = None
        clients = [httpx.Client(base_url=u, timeout=10) for u in self.urls]
        deadline = None
        while True:
            if self.stop.is_set():
                if key is None or not self.keyed:
                    break
                deadline = deadline or time.monotonic() + 20
                if time.monotonic() > deadline:
                    self.unresolved += 1
                    break
            client = clients[i % len(clients)]
            i += 1
            if self.keyed and key is None:
                key = f"load-{uuid.uuid4()}"
            try:
                response = client.post(
                    f"/workflows/{self.workflow}/run",
                    params={"wait": "false"},
                    json=self.body,
                    headers={"Idempotency-Key": key} if key else None,
                )
                if response.status_code == 200:
                    self.accepted.append(response.json()["uid"])
                    key = None
                elif response.status_code == 503 and "draining" in response.text:
                    self.refused += 1  # a draining server refuses before recording anything
                else:
                    # e.g. 503 "database unavailable": the insert may have committed just before
                    # the connection dropped (an ambiguous commit), so the run may exist.
                    self.unknown += 1
            except httpx.ConnectError:
                self.refused += 1
            except httpx.TransportError:
                self.unknown += 1
            if self.stop.is_set():
                time.sleep(self.every)
            else:
                self.stop.wait(self.every)
        for c in clients:
            c.close()


class TcpProxy:
    """A TCP forwarder (in a thread of its own) that can go down and come back on the same port:
    what a database or broker restart, or a cut network, looks like to the servers behind it."""

    def __init__(self, target_port: int, host: str = "127.0.0.1"):
        import asyncio

        self.target_port, self.host = target_port, host
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = None
        self.writers: list = []

    def _call(self, coro):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self) -> None:
        import asyncio

        async def start():
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

        self._call(start())

    def stop(self) -> None:
        async def stop():
            self.server.close()
            for writer in self.writers:
                writer.transport.abort()
            self.writers.clear()
            await self.server.wait_closed()

        self._call(stop())

    def close(self) -> None:
        if self.server is not None and self.server.is_serving():
            self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _handle(self, reader, writer) -> None:
        import asyncio

        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.writers += [writer, up_writer]

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
