"""Hole 8: webhook actions reach public addresses only, unless a setting allows a network.

A webhook to the server's own ``POST /drain`` drained it, and the target's error body was
reflected in the fire result. Now loopback, link-local and private addresses are refused after
DNS resolution and on every redirect, unless ``triggers.webhook_allowed_networks`` lists them,
and a target's body is never echoed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def webhook_rule(name: str, url: str, method: str = "POST") -> dict:
    return {
        "kind": "trigger_rule",
        "metadata": {"name": name},
        "spec": {
            "type": "condition",
            "rule": {"eq": [{"var": "type"}, "never"]},
            "action": {"target": "webhook", "parameters": {"url": url, "method": method}},
        },
    }


@contextmanager
def http_target(host: str, status: int, body: bytes = b"", location: str | None = None) -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            hits.append(self.path)
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            self.send_response(status)
            if location:
                self.send_header("location", location)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def fire(http, name: str) -> dict:
    response = http.post(f"/triggers/{name}/fire", json={})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_webhook_to_the_servers_own_drain_is_refused(live, http):
    assert http.post("/triggers/", json=webhook_rule("drainer", f"{live.url}/drain")).status_code == 200
    answer = fire(http, "drainer")
    assert answer["fired"] is False
    assert "loopback" in answer["error"][1] and "triggers.webhook_allowed_networks" in answer["error"][1]
    assert live.server.draining is False
    status = http.get("/triggers/drainer").json()["status"]
    assert "refused" in status["last_error"]


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:9/x",
        "http://127.0.0.1:9/x",
        "http://127.1.2.3/x",
        "http://[::1]:9/x",
        "http://[::ffff:127.0.0.1]:9/x",
        "http://0.0.0.0:9/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/x",
        "http://172.16.0.1/x",
        "http://192.168.1.1/x",
        "http://100.64.0.1/x",
        "https://[fd00::1]/x",
        "http://[fe80::1]/x",
    ],
)
def test_loopback_link_local_and_private_targets_are_refused(http, url):
    assert http.post("/triggers/", json=webhook_rule("hook", url)).status_code == 200
    answer = fire(http, "hook")
    assert answer["fired"] is False and "refused" in answer["error"][1], answer


def test_an_allowed_network_is_reached_and_the_targets_body_is_never_echoed(make_server):
    live = make_server({"triggers.webhook_allowed_networks": ["127.0.0.1/32"]})
    with live.client() as http, http_target("127.0.0.1", 500, b"SECRET-TOKEN-FROM-TARGET") as (url, hits):
        assert http.post("/triggers/", json=webhook_rule("hook", f"{url}/boom")).status_code == 200
        answer = fire(http, "hook")
        assert hits == ["/boom"]
        assert answer["fired"] is False and "500" in answer["error"][1]
        assert "SECRET" not in str(answer)
        assert "SECRET" not in http.get("/triggers/hook").text


def test_a_redirect_to_a_refused_address_is_not_followed(make_server):
    # Only 127.0.0.2 is allowed; it redirects to the server itself on 127.0.0.1.
    live = make_server({"triggers.webhook_allowed_networks": ["127.0.0.2/32"]})
    with live.client() as http, http_target("127.0.0.2", 307, location=f"{live.url}/drain") as (url, hits):
        assert http.post("/triggers/", json=webhook_rule("hook", f"{url}/start")).status_code == 200
        answer = fire(http, "hook")
        assert hits == ["/start"]
        assert answer["fired"] is False and "loopback" in answer["error"][1], answer
        assert live.server.draining is False


def test_an_allowed_redirect_is_followed(make_server):
    live = make_server({"triggers.webhook_allowed_networks": ["127.0.0.0/8"]})
    with live.client() as http, http_target("127.0.0.1", 200) as (final, final_hits):
        with http_target("127.0.0.2", 302, location=f"{final}/landed") as (url, hits):
            assert http.post("/triggers/", json=webhook_rule("hook", f"{url}/start")).status_code == 200
            answer = fire(http, "hook")
    assert answer["fired"] is True, answer
    assert hits == ["/start"] and final_hits == ["/landed"]


def test_a_bad_allowed_network_setting_is_refused_at_start(tmp_path):
    from flowdapt.errors import ConfigurationError
    from flowdapt.settings import load_settings

    with pytest.raises((ValueError, ConfigurationError), match="CIDR"):
        load_settings(tmp_path / "app", overrides={"triggers.webhook_allowed_networks": ["not-a-net"]})
