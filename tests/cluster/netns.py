"""Hosts made of Linux network namespaces, for tests where what crosses a network really does.

A :class:`Network` (a context manager) makes "hosts": each is a network namespace of its own
(``ip netns``) with a veth pair to the root namespace on a private /30 subnet (the root end is the
host's gateway), ``lo`` up and a default route through the gateway. A process started in a host
(:meth:`Host.command`, :meth:`Host.popen`) also gets a UTS namespace with the host's name as its
hostname, so ``socket.gethostname()`` there says which host it is. A host reaches only its own
addresses and its gateway: not the root namespace's ``127.0.0.1``, not the other hosts (the root
namespace does not forward packets and nothing here turns forwarding on).

Services that listen only on the root namespace's loopback (PostgreSQL, NATS on this machine) or in
another host are made reachable by a :class:`Forwarder`: a TCP proxy in the root namespace that
listens on a host's gateway address and connects to the target. It counts the connections (by the
peer's address) and the bytes each way, so a test can show that traffic came from the host.

Names are unique per test run (the pid and a random token are in every namespace and interface
name), so parallel runs never collide; namespaces left behind by a test process that died are
removed by the next :class:`Network`. Everything is torn down on exit, also when the body fails:
processes still in a host's namespace are killed (they are the test's own), the veth pairs and the
namespaces deleted. Needs root and ``ip`` (iproute2) with netns support: :func:`unavailable` says
why not.

    with Network() as net:
        db = net.add_host("db-client")
        fwd = net.forward(db, ("127.0.0.1", 5432))       # listens on db.gateway:fwd.port
        db.run(["psql", f"postgresql://postgres@{db.gateway}:{fwd.port}/postgres", "-c", "select 1"])
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: Namespace names: ``flowdapt-<pid>-<token>-<label>``; the pid tells a stale one from a live one.
NETNS_PREFIX = "flowdapt-"
_NAME = re.compile(rf"^{NETNS_PREFIX}(\d+)-[0-9a-f]+-")
#: /24 blocks are picked at random from 10.200.0.0 .. 10.250.255.0 (one per Network).
_BLOCKS = (200, 250)


class NetnsError(RuntimeError):
    """An ``ip`` command failed while building or tearing down hosts."""


def _ip(*args: str, check: bool = True, netns: str | None = None) -> subprocess.CompletedProcess:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetnsError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done


def unavailable() -> str | None:
    """Why hosts cannot be made here (not root, no iproute2, no netns support), or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run the test as root, as CI does"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if shutil.which("unshare") is None:
        return "the `unshare` command (util-linux) is not installed"
    probe = f"{NETNS_PREFIX}{os.getpid()}-{secrets.token_hex(3)}-probe"
    added = _ip("netns", "add", probe, check=False)
    if added.returncode != 0:
        return f"`ip netns add` does not work here: {added.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def netns_names() -> list[str]:
    """The names `ip netns list` shows."""
    listed = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


def remove_stale() -> list[str]:
    """Delete the namespaces of test processes that are gone (a run killed before its teardown)."""
    removed = []
    for name in netns_names():
        match = _NAME.match(name)
        if match and not _pid_alive(int(match.group(1))):
            _ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


@dataclass
class Host:
    """One namespace host: ``ip`` inside it, ``gateway`` the root namespace's end of its veth."""

    label: str
    netns: str
    ip: str
    gateway: str
    veth_root: str
    veth_host: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in this host: its network namespace, and its own hostname (``label``).

        ``ip netns exec``, ``unshare`` (without ``--fork``) and ``sh -c 'exec ...'`` each exec the
        next, so the pid of the started process is the pid of ``argv``: a signal sent to it (kill
        -9) reaches the program itself."""
        return [
            "ip", "netns", "exec", self.netns,
            "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.label,
            *argv,
        ]  # fmt: skip

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        return subprocess.Popen(self.command(argv), **kwargs)

    def run(self, argv: Sequence[str], timeout: float = 30, **kwargs: Any) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.command(argv), timeout=timeout, **kwargs)

    def pids(self) -> list[int]:
        """The processes in this host's network namespace."""
        done = _ip("netns", "pids", self.netns, check=False)
        return [int(p) for p in done.stdout.split() if p.isdigit()]


@dataclass
class Forwarder:
    """A TCP proxy in the root namespace: ``listen`` (a host's gateway) to ``target``."""

    listen: tuple[str, int]
    target: tuple[str, int]
    #: The peer address of every connection accepted, in order.
    peers: list[str] = field(default_factory=list)
    #: Bytes from the clients to the target, and back.
    bytes_in: int = 0
    bytes_out: int = 0
    _server: asyncio.base_events.Server | None = None
    _tasks: set[asyncio.Task] = field(default_factory=set)

    @property
    def host(self) -> str:
        return self.listen[0]

    @property
    def port(self) -> int:
        return self.listen[1]

    @property
    def address(self) -> str:
        return f"{self.listen[0]}:{self.listen[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self.peers.append(peer[0] if peer else "?")
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 10)
        except (OSError, TimeoutError):
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, inbound: bool) -> None:
            try:
                while data := await src.read(65536):
                    if inbound:
                        self.bytes_in += len(data)
                    else:
                        self.bytes_out += len(data)
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                # One side gone (a killed process): close both, so the other end sees it at once.
                dst.close()
                src_writer = writer if inbound else up_writer
                src_writer.close()

        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        finally:
            if task is not None:
                self._tasks.discard(task)


class Network:
    """Namespace hosts and forwarders, torn down on exit (see the module docstring)."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(3)
        self.hosts: list[Host] = []
        self.forwarders: list[Forwarder] = []
        self._block: ipaddress.IPv4Network | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Network:
        reason = unavailable()
        if reason:
            raise NetnsError(reason)
        remove_stale()
        self._block = self._free_block()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hosts ----------------------------------------------------------------------------------

    @staticmethod
    def _free_block() -> ipaddress.IPv4Network:
        """A /24 under 10.200-250.x.x that no address or route of the root namespace touches."""
        used = []
        for line in _ip("-4", "route", "show", "table", "all", check=False).stdout.splitlines():
            first = line.split()[0] if line.split() else ""
            if first in ("local", "broadcast") and len(line.split()) > 1:
                first = line.split()[1]
            try:
                used.append(ipaddress.ip_network(first, strict=False))
            except ValueError:
                continue
        for _ in range(200):
            block = ipaddress.ip_network(f"10.{random.randint(*_BLOCKS)}.{random.randint(0, 255)}.0/24")
            if not any(block.overlaps(net) for net in used if net.prefixlen > 0):
                return block
        raise NetnsError("no free /24 under 10.200.0.0/16 .. 10.250.255.0/24 for the test hosts")

    def add_host(self, label: str) -> Host:
        """A new host: a namespace, a veth pair on the next /30, lo up, default route."""
        assert self._block is not None, "use Network as a context manager"
        index = len(self.hosts)
        if index >= 63:
            raise NetnsError("at most 63 hosts per Network")
        base = self._block.network_address + 4 * index
        gateway, ip = str(base + 1), str(base + 2)
        netns = f"{NETNS_PREFIX}{os.getpid()}-{self.token}-{label}"
        # Interface names: 15 characters at most.
        veth_root, veth_host = f"fd{self.token}{index}r", f"fd{self.token}{index}h"
        host = Host(label, netns, ip, gateway, veth_root, veth_host)
        self.hosts.append(host)  # before building it, so close() removes a half-built one
        _ip("netns", "add", netns)
        _ip("link", "add", veth_root, "type", "veth", "peer", "name", veth_host)
        _ip("link", "set", veth_host, "netns", netns)
        _ip("addr", "add", f"{gateway}/30", "dev", veth_root)
        _ip("link", "set", veth_root, "up")
        _ip("link", "set", "lo", "up", netns=netns)
        _ip("addr", "add", f"{ip}/30", "dev", veth_host, netns=netns)
        _ip("link", "set", veth_host, "up", netns=netns)
        _ip("route", "add", "default", "via", gateway, netns=netns)
        return host

    # -- forwarders -----------------------------------------------------------------------------

    def _run_coro(self, coro: Any, timeout: float = 10) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="netns-forwarders", daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def forward(self, host: Host, target: tuple[str, int], port: int = 0) -> Forwarder:
        """Make ``target`` (an address the root namespace reaches) reachable from ``host`` at
        ``host.gateway:<port>`` (``port`` 0: any free one; the Forwarder says which)."""

        async def start() -> Forwarder:
            fwd = Forwarder((host.gateway, port), target)
            server = await asyncio.start_server(fwd._handle, host.gateway, port, reuse_address=True)
            fwd._server = server
            fwd.listen = (host.gateway, server.sockets[0].getsockname()[1])
            return fwd

        fwd = self._run_coro(start())
        self.forwarders.append(fwd)
        return fwd

    # -- teardown -------------------------------------------------------------------------------

    def close(self) -> None:
        if self._loop is not None:

            async def stop() -> None:
                for fwd in self.forwarders:
                    if fwd._server is not None:
                        fwd._server.close()
                    for task in list(fwd._tasks):
                        task.cancel()

            try:
                self._run_coro(stop())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                if self._thread is not None:
                    self._thread.join(5)
                self._loop = None
        errors = []
        for host in reversed(self.hosts):
            # Our own processes still in the host (a test that failed before stopping them).
            for pid in host.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while host.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
            _ip("link", "del", host.veth_root, check=False)  # deletes both ends
            done = _ip("netns", "del", host.netns, check=False)
            if done.returncode != 0 and "No such file" not in done.stderr:
                errors.append(done.stderr.strip())
        self.hosts.clear()
        if errors:
            raise NetnsError("tearing down the test hosts: " + "; ".join(errors))
