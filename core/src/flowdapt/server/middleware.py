"""One pure-ASGI middleware for what every request needs: token auth, the body-size limit, the
``Server`` header and request metrics. Pure ASGI (no BaseHTTPMiddleware) keeps the per-request
cost to a few attribute reads."""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from typing import Any, Protocol

from flowdapt.server.http import SERVER_HEADER, error_body

PUBLIC_PATHS = frozenset({"/"})


class _BodyTooLarge(Exception):
    pass


class RequestObserver(Protocol):
    """What the middleware reports per request (``flowdapt.server.metrics.Metrics`` is one)."""

    def request_started(self, scope: dict[str, Any]) -> None: ...

    def request_done(self, scope: dict[str, Any], status: int, seconds: float, request_bytes: int, response_bytes: int) -> None: ...


class GatewayMiddleware:
    def __init__(
        self,
        app,
        *,
        tokens: list[str],
        max_body_bytes: int,
        observer: RequestObserver | None = None,
        public_paths: Iterable[str] = (),
    ):
        self.app = app
        self.tokens = [t.encode() for t in tokens]
        # Paths served without a token: exact paths, or prefixes written with a trailing "*".
        public_paths = tuple(public_paths)
        self.public_exact = PUBLIC_PATHS | {p for p in public_paths if not p.endswith("*")}
        self.public_prefixes = tuple(p[:-1] for p in public_paths if p.endswith("*"))
        self.max_body_bytes = max_body_bytes
        self.observer = observer

    def _public(self, path: str) -> bool:
        return path in self.public_exact or (bool(self.public_prefixes) and path.startswith(self.public_prefixes))

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for key, value in headers:
            if key == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() != b"bearer":
                    return False
                token = token.strip()
                return any(hmac.compare_digest(token, t) for t in self.tokens)
        return False

    async def _reject(self, send, status: int, detail: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
        body = error_body(status, detail)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"server", SERVER_HEADER),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = scope["headers"]
        if self.tokens and scope["method"] != "OPTIONS" and not self._public(scope["path"]):
            if not self._authorized(headers):
                await self._reject(
                    send,
                    401,
                    "Missing or invalid API token: send 'Authorization: Bearer <token>' "
                    "(flowdapt CLI: --token or FLOWDAPT_TOKEN)",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
        limit = self.max_body_bytes
        for key, value in headers:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._reject(send, 413, f"request body of {declared} bytes is over the limit of {limit} bytes (api.max_body_bytes)")
                    return
                break
        received = 0
        sent = 0
        response_started = False
        status_holder = [500]
        observer = self.observer
        if observer is not None:
            observer.request_started(scope)

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge()
            return message

        async def send_with_server(message):
            nonlocal response_started, sent
            if message["type"] == "http.response.start":
                response_started = True
                status_holder[0] = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"server", SERVER_HEADER)]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_server)
        except _BodyTooLarge:
            if not response_started:
                await self._reject(send, 413, f"request body is over the limit of {limit} bytes (api.max_body_bytes)")
            status_holder[0] = 413
        finally:
            if observer is not None:
                observer.request_done(scope, status_holder[0], time.perf_counter() - started, received, sent)
