"""Actions: the webhook action over real HTTP, and what rules may name as a target."""

from __future__ import annotations

import asyncio
import json

import pytest

from flowdapt.events import TRIGGER_FAILED, Event

from .harness import Harness, rule


class TinyHTTPServer:
    """A real HTTP/1.1 server on a loopback port that records requests and answers ``status``."""

    def __init__(self, status: int = 200):
        self.status = status
        self.requests: list[dict] = []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader, writer):
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        request_line, *header_lines = head.strip().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
        body = await reader.readexactly(int(headers.get("content-length", 0)))
        method, path, _ = request_line.split(" ")
        self.requests.append({"method": method, "path": path, "headers": headers, "body": json.loads(body) if body else None})
        writer.write(f"HTTP/1.1 {self.status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".encode())
        await writer.drain()
        writer.close()


@pytest.fixture
def flowdapt_settings_overrides():
    """The test's HTTP server is on loopback, which webhooks reach only when allowed."""
    from flowdapt.testing import DEFAULT_TEST_OVERRIDES

    return {**DEFAULT_TEST_OVERRIDES, "triggers.resync_interval": 0, "triggers.webhook_allowed_networks": ["127.0.0.1/32"]}


@pytest.fixture
async def h(settings, plugins):
    async with Harness(settings, plugins) as harness:
        yield harness


async def test_webhook_posts_the_event_or_a_body_with_vars(h):
    async with TinyHTTPServer() as http:
        await h.add(rule("hook_event", "condition", {"eq": [{"var": "type"}, "ping"]},
                         {"target": "webhook", "parameters": {"url": f"{http.url}/all"}}))
        await h.add(rule("hook_body", "condition", {"eq": [{"var": "type"}, "ping"]},
                         {"target": "webhook", "parameters": {
                             "url": f"{http.url}/custom", "method": "put", "headers": {"X-Token": "t"},
                             "body": {"who": {"var": "data.who"}, "fixed": 1}}}))
        await h.service.start()
        await h.bus.publish(Event(channel="c", source="s", type="ping", data={"who": "me"}))
        await h.settle()
        by_path = {r["path"]: r for r in http.requests}
        assert by_path["/all"]["method"] == "POST"
        assert by_path["/all"]["body"]["type"] == "ping" and by_path["/all"]["body"]["data"] == {"who": "me"}
        assert by_path["/custom"]["method"] == "PUT"
        assert by_path["/custom"]["headers"]["x-token"] == "t"
        assert by_path["/custom"]["body"] == {"who": "me", "fixed": 1}


async def test_webhook_error_status_is_reported(h):
    async with TinyHTTPServer(status=503) as http:
        await h.add(rule("hook", "condition", {"eq": [{"var": "type"}, "ping"]},
                         {"target": "webhook", "parameters": {"url": http.url}}))
        await h.service.start()
        await h.bus.publish(Event(channel="c", source="s", type="ping"))
        await h.settle()
        failed = [e for e in h.reports if e.type == TRIGGER_FAILED]
        assert len(failed) == 1 and failed[0].data["error"][0] == "ActionError"
        assert "503" in h.service.status("hook")["last_error"]
        answer = await h.service.fire("hook")
        assert answer["fired"] is False and "503" in answer["error"][1]
