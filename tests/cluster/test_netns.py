"""The namespace hosts of tests/cluster/netns.py: isolated, reached through forwarders, gone after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import netns

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]

SERVE_ONCE = """
import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); s.listen()
print(s.getsockname()[1], flush=True)
c, peer = s.accept(); c.sendall(socket.gethostname().encode() + b" " + peer[0].encode()); c.close()
"""
CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
    print(c.recv(100).decode() or "connected")
except OSError as exc:
    print(type(exc).__name__)
"""


@pytest.fixture(autouse=True)
def _root():
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)


def test_hosts_reach_their_gateway_and_forwarders_only():
    with netns.Network() as net:
        a, b = net.add_host("a"), net.add_host("b")
        assert a.gateway != b.gateway and a.ip != b.ip
        server = b.popen([sys.executable, "-c", SERVE_ONCE, b.ip], stdout=subprocess.PIPE, text=True)
        port = int(server.stdout.readline())
        # a cannot reach b: the root namespace forwards no packets ...
        assert "Error" in a.run([sys.executable, "-c", CLIENT, b.ip, str(port)]).stdout
        # ... but a forwarder on a's gateway does: b sees the root namespace's end, a its gateway.
        fwd = net.forward(a, (b.ip, port))
        answer = a.run([sys.executable, "-c", CLIENT, fwd.host, str(fwd.port)]).stdout.split()
        assert answer == ["b", b.gateway], answer  # b's hostname; the proxy reached it from b's gateway
        assert fwd.peers == [a.ip] and fwd.bytes_out == len(f"b {b.gateway}")
        assert server.wait(5) == 0
        # Each host has its own hostname.
        assert a.run([sys.executable, "-c", "import socket; print(socket.gethostname())"]).stdout.strip() == "a"
        names = [h.netns for h in net.hosts]
    assert not set(names) & set(netns.netns_names())


def test_teardown_kills_what_is_left_and_removes_hosts_after_a_failure_and_after_a_killed_test():
    with pytest.raises(ValueError), netns.Network() as net:
        host = net.add_host("fails")
        sleeper = host.popen(["sleep", "60"])
        raise ValueError("the test body failed")
    assert sleeper.wait(5) == -signal.SIGKILL
    assert host.netns not in netns.netns_names()
    assert subprocess.run(["ip", "link", "show", host.veth_root], capture_output=True).returncode != 0
    # A test process killed before its teardown: the next Network removes its namespace.
    code = (
        "import os, signal\nfrom tests.cluster.netns import Network\n"
        "net = Network().__enter__(); print(net.add_host('stale').netns, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
    stale = killed.stdout.strip()
    assert killed.returncode == -signal.SIGKILL and stale in netns.netns_names(), killed.stderr
    with netns.Network():
        assert stale not in netns.netns_names()
