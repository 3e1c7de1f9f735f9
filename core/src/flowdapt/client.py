"""Python client for the Flowdapt REST API: :class:`Client` (sync) and :class:`AsyncClient`.

Both have the same methods; the async one returns awaitables. Resources come back as
:class:`~flowdapt.resources.Workflow`, :class:`~flowdapt.resources.Config`,
:class:`~flowdapt.resources.TriggerRule` and runs as :class:`ServerRun` (a
:class:`~flowdapt.resources.WorkflowRun` with what only the server knows, such as ``queue_position``).
Errors raise :class:`ApiError` subclasses chosen by status code, carrying the server's detail::

    from flowdapt.client import Client
    with Client("http://127.0.0.1:8080", token="...") as client:
        client.apply({"kind": "workflow", "metadata": {"name": "hello"}, "spec": {...}})
        run = client.run_workflow("hello", {"n": 3})
        print(run.state, run.result)
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from flowdapt.resources import KINDS
from flowdapt.resources.base import Resource
from flowdapt.resources.loader import normalize_kind, parse_resource
from flowdapt.resources.run import WorkflowRun

DEFAULT_SERVER = "http://127.0.0.1:8080"
KIND_PATHS = {"workflow": "/workflows", "config": "/configs", "trigger_rule": "/triggers"}


# -- errors ------------------------------------------------------------------------------------


class ApiError(Exception):
    """The server answered with an error. ``status_code`` and ``detail`` are the server's."""

    status_code: int = 0

    def __init__(self, detail: Any, status_code: int | None = None, *, method: str = "", url: str = ""):
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        self.method = method
        self.url = url
        super().__init__(f"{self.status_code}: {detail}")


class BadRequestError(ApiError):
    status_code = 400


class UnauthorizedError(ApiError):
    status_code = 401


class ForbiddenError(ApiError):
    status_code = 403


class NotFoundError(ApiError):
    status_code = 404


class ConflictError(ApiError):
    status_code = 409


class PayloadTooLargeError(ApiError):
    status_code = 413


class InvalidRequestError(ApiError):
    status_code = 422


class UnavailableError(ApiError):
    status_code = 503


class InsufficientStorageError(ApiError):
    """507: the server's database or disk is full; nothing was written."""

    status_code = 507


class ServerError(ApiError):
    status_code = 500


class ConnectionFailedError(ApiError):
    """No answer from the server (not running, wrong URL, network)."""


ERRORS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InvalidRequestError,
    503: UnavailableError,
    507: InsufficientStorageError,
}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 300:
        return
    if response.status_code < 400:  # no endpoint of the API redirects: the path was wrong
        location = response.headers.get("location", "")
        raise ApiError(f"unexpected redirect to {location or '?'}", response.status_code, method=response.request.method, url=str(response.request.url))
    try:
        body = response.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = response.text or response.reason_phrase
    cls = ERRORS.get(response.status_code, ServerError if response.status_code >= 500 else ApiError)
    raise cls(detail, response.status_code, method=response.request.method, url=str(response.request.url))


# -- results -----------------------------------------------------------------------------------


class ServerRun(WorkflowRun):
    """A run as the server shows it: the run record plus what the server knows only while it answers."""

    #: The run's place (1 = next to start) among the runs waiting ``pending`` for a slot under
    #: ``executor.max_concurrent_runs`` or ``spec.max_active_runs`` on the server that answered;
    #: None when it waits for none there. A snapshot: re-read the run to see it move.
    queue_position: int | None = None


@dataclass
class RunPage:
    items: list[ServerRun]
    total: int
    limit: int
    offset: int


@dataclass
class LogPage:
    """Records of a run's log (``GET /runs/{id}/logs``): each a dict with seq, time, stage, item,
    stream, level, logger, message. ``last_seq`` is what ``after`` takes to read on."""

    run: str
    name: str
    state: str
    items: list[dict[str, Any]]
    last_seq: int | None


@dataclass
class Event:
    """One server-sent event: ``type`` (run_started, stage_progress, ...) and its JSON ``data``."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


def _resource(data: Any) -> Resource:
    return parse_resource(data)


def _run(data: Any) -> ServerRun:
    return ServerRun.model_validate(data)


def _json(response: httpx.Response) -> Any:
    return response.json()


@dataclass
class _Call:
    method: str
    path: str
    parse: Callable[[httpx.Response], Any] = _json
    params: dict[str, Any] | None = None
    body: Any = None
    has_body: bool = False
    headers: dict[str, str] | None = None

    def request_headers(self) -> dict[str, str] | None:
        headers = {"Content-Type": "application/json"} if self.has_body else {}
        headers.update(self.headers or {})
        return headers or None


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[key] = value
    return out


def _kind_path(kind: str) -> str:
    return KIND_PATHS[normalize_kind(kind)]


def _seg(value: Any, what: str) -> str:
    """One path segment: a name or uid, percent-encoded. An empty one is refused here (as a
    400) instead of turning ``/runs/{id}`` into ``/runs/``, another endpoint."""
    text = str(value)
    if not text.strip():
        raise BadRequestError(f"a {what} name or uid is needed, got an empty one")
    return quote(text, safe="")


def _as_body(resource: Resource | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(resource, Resource):
        return resource.to_document()
    return dict(resource)


class _Calls:
    """Every endpoint as a :class:`_Call`; ``_do`` executes it (sync or async)."""

    def _do(self, call: _Call) -> Any:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def request(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        """Call any endpoint (a plugin's own routes, say) and return its decoded JSON.

        ``json`` is sent as the body when given; ``params`` go in the query string (``None``
        values dropped, booleans as ``true``/``false``). Errors raise the same :class:`ApiError`
        subclasses as every other method.
        """
        return self._do(
            _Call(method.upper(), path, params=_clean(params or {}) or None, body=json, has_body=json is not None)
        )

    # system
    def ping(self) -> dict[str, Any]:
        return self._do(_Call("GET", "/"))

    def status(self) -> dict[str, Any]:
        return self._do(_Call("GET", "/status"))

    def metrics(
        self,
        name: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        max_length: int | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        params = _clean({"name": name, "start_time": start_time, "end_time": end_time, "max_length": max_length})
        return self._do(_Call("GET", "/metrics", params=params))

    def drain(self) -> dict[str, bool]:
        return self._do(_Call("POST", "/drain"))

    def undrain(self) -> dict[str, bool]:
        return self._do(_Call("DELETE", "/drain"))

    # resources
    def list(self, kind: str) -> list[Resource]:
        return self._do(_Call("GET", _kind_path(kind) + "/", parse=lambda r: [_resource(d) for d in r.json()]))

    def get(self, kind: str, identifier: str) -> Resource:
        return self._do(_Call("GET", f"{_kind_path(kind)}/{_seg(identifier, normalize_kind(kind))}", parse=lambda r: _resource(r.json())))

    def create(self, resource: Resource | Mapping[str, Any], *, dry_run: bool = False) -> Resource:
        body = _as_body(resource)
        path = _kind_path(body.get("kind", ""))
        return self._do(
            _Call("POST", path + "/", parse=lambda r: _resource(r.json()), params=_clean({"dry_run": dry_run or None}), body=body, has_body=True)
        )

    def update(self, resource: Resource | Mapping[str, Any], identifier: str | None = None, *, dry_run: bool = False) -> Resource:
        body = _as_body(resource)
        path = _kind_path(body.get("kind", ""))
        identifier = identifier or body["metadata"]["name"]
        return self._do(
            _Call("PUT", f"{path}/{_seg(identifier, normalize_kind(body.get('kind', '')))}", parse=lambda r: _resource(r.json()), params=_clean({"dry_run": dry_run or None}), body=body, has_body=True)
        )

    def get_document(self, kind: str, identifier: str) -> dict[str, Any]:
        """The resource as the server sends it, with extra fields (a trigger rule's ``status``)."""
        return self._do(_Call("GET", f"{_kind_path(kind)}/{_seg(identifier, normalize_kind(kind))}"))

    def list_documents(self, kind: str) -> list[dict[str, Any]]:
        return self._do(_Call("GET", f"{_kind_path(kind)}/"))

    def fire_trigger(self, identifier: str, *, event: Mapping[str, Any] | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Fire a trigger rule's action now: ``{rule, fired, matched, result | error}``."""
        body: dict[str, Any] = {"dry_run": dry_run}
        if event is not None:
            body["event"] = dict(event)
        return self._do(_Call("POST", f"/triggers/{_seg(identifier, 'trigger')}/fire", body=body, has_body=True))

    def delete(self, kind: str, identifier: str) -> Resource:
        return self._do(_Call("DELETE", f"{_kind_path(kind)}/{_seg(identifier, normalize_kind(kind))}", parse=lambda r: _resource(r.json())))

    # runs
    def run_workflow(
        self,
        identifier: str,
        input: Mapping[str, Any] | None = None,
        *,
        wait: bool = True,
        namespace: str | None = None,
        idempotency_key: str | None = None,
    ) -> ServerRun:
        """Start a run. With ``idempotency_key`` (any string of yours, say a uuid4 per intended
        run) the call is safe to repeat after a timeout, a connection error or a 5xx: the server
        answers a key it has seen with the run that key started, and starts no other."""
        return self._do(
            _Call(
                "POST",
                f"/workflows/{_seg(identifier, 'workflow')}/run",
                parse=lambda r: _run(r.json()),
                params=_clean({"wait": wait, "namespace": namespace}),
                body=dict(input or {}),
                has_body=True,
                headers={"Idempotency-Key": idempotency_key} if idempotency_key is not None else None,
            )
        )

    def get_run(self, identifier: str, *, include_result: bool = True) -> ServerRun:
        params = None if include_result else {"include_result": "false"}
        return self._do(_Call("GET", f"/runs/{_seg(identifier, 'run')}", parse=lambda r: _run(r.json()), params=params))

    def run_result(self, identifier: str) -> Any:
        return self._do(_Call("GET", f"/runs/{_seg(identifier, 'run')}/result"))

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        state: str | list[str] | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> RunPage:
        if isinstance(state, list):
            state = ",".join(state)
        params = _clean({"workflow": workflow, "state": state, "since": since, "limit": limit, "offset": offset})

        def parse(r: httpx.Response) -> RunPage:
            data = r.json()
            return RunPage([_run(d) for d in data["items"]], data["total"], data["limit"], data["offset"])

        return self._do(_Call("GET", "/runs", parse=parse, params=params))

    def list_workflow_runs(self, identifier: str, limit: int = 10) -> list[ServerRun]:
        return self._do(
            _Call("GET", f"/workflows/{_seg(identifier, 'workflow')}/run", parse=lambda r: [_run(d) for d in r.json()], params={"limit": limit})
        )

    def run_logs(
        self,
        identifier: str,
        *,
        stage: str | None = None,
        level: str | None = None,
        since: datetime | None = None,
        after: int | None = None,
        limit: int = 1000,
    ) -> LogPage:
        """A run's log records, oldest first (see :meth:`follow_logs` for a live run)."""
        params = _log_params(stage, level, since, after)
        params["limit"] = limit

        def parse(r: httpx.Response) -> LogPage:
            data = r.json()
            return LogPage(data["run"], data["name"], data["state"], data["items"], data.get("last_seq"))

        return self._do(_Call("GET", f"/runs/{_seg(identifier, 'run')}/logs", parse=parse, params=params))

    def cancel_run(self, identifier: str) -> ServerRun:
        return self._do(_Call("POST", f"/runs/{_seg(identifier, 'run')}/cancel", parse=lambda r: _run(r.json())))

    def delete_run(self, identifier: str) -> ServerRun:
        return self._do(_Call("DELETE", f"/runs/{_seg(identifier, 'run')}", parse=lambda r: _run(r.json())))

    def rerun(self, identifier: str, input: Mapping[str, Any] | None = None, *, wait: bool = True) -> ServerRun:
        """Run a run again with its input, ``input`` merged over it (``source: rerun``, ``rerun_of``)."""
        body: dict[str, Any] = {} if input is None else {"input": dict(input)}
        return self._do(
            _Call(
                "POST", f"/runs/{_seg(identifier, 'run')}/rerun", parse=lambda r: _run(r.json()), params=_clean({"wait": wait}), body=body, has_body=True
            )
        )

    def run_input(self, identifier: str) -> dict[str, Any]:
        """The full input of a run (also when it was kept by reference: ``input_ref``)."""
        return self._do(_Call("GET", f"/runs/{_seg(identifier, 'run')}/input"))

    def workflow_parameters(self, identifier: str) -> list[dict[str, Any]]:
        """The run input a workflow takes: ``[{name, required, default?, annotation, stages}]``."""
        return self._do(_Call("GET", f"/workflows/{_seg(identifier, 'workflow')}/parameters", parse=lambda r: r.json()["parameters"]))

    def trigger_history(self, identifier: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """A trigger rule's recent fires, newest first: ``[{time, outcome, manual, run | error, ...}]``."""
        return self._do(_Call("GET", f"/triggers/{_seg(identifier, 'trigger')}/history", params=_clean({"limit": limit}), parse=lambda r: r.json()["items"]))

    # plugins
    def plugins(self) -> list[dict[str, Any]]:
        return self._do(_Call("GET", "/plugin/"))

    def plugin(self, name: str) -> dict[str, Any]:
        return self._do(_Call("GET", f"/plugin/{_seg(name, 'plugin')}"))

    def plugin_files(self, name: str) -> list[str]:
        return self._do(_Call("GET", f"/plugin/{_seg(name, 'plugin')}/files", parse=lambda r: r.json()["files"]))

    def plugin_file(self, name: str, file_name: str) -> bytes:
        return self._do(_Call("GET", f"/plugin/{_seg(name, 'plugin')}/files/{_seg(file_name, 'file')}", parse=lambda r: r.content))

    # artifacts (read-only)
    def artifacts(self, namespace: str = "default") -> list[dict[str, Any]]:
        """A namespace's artifacts: ``[{name, namespace, url}]``."""
        return self._do(_Call("GET", f"/artifacts/{quote(namespace, safe='')}"))

    def artifact(self, name: str, namespace: str = "default") -> dict[str, Any]:
        """An artifact's metadata and files (``files: [{name, size, content_type, url}]``)."""
        return self._do(_Call("GET", f"/artifacts/{quote(namespace, safe='')}/{quote(name, safe='')}"))

    def artifact_file(self, url_or_name: str, file_name: str = "", namespace: str = "default") -> bytes:
        """One file's bytes: by the ``/artifacts/...`` path a run result links to, or by artifact
        name and file name."""
        if url_or_name.startswith("/artifacts/"):
            path = url_or_name
        else:
            path = f"/artifacts/{quote(namespace, safe='')}/{quote(url_or_name, safe='')}/files/{quote(file_name, safe='')}"
        return self._do(_Call("GET", path, parse=lambda r: r.content))


def _headers(token: str | None) -> dict[str, str]:
    headers = {"User-Agent": "flowdapt-client", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _connection_error(base_url: str, exc: Exception) -> ConnectionFailedError:
    return ConnectionFailedError(
        f"cannot reach the Flowdapt server at {base_url} ({type(exc).__name__}: {exc}); "
        "is `flowdapt run` running there? (set the URL with --server or FLOWDAPT_SERVER)",
        0,
    )


def _parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    event_type, data, event_id = "message", [], None
    for line in lines:
        if line == "":
            if data:
                yield Event(event_type, json.loads("\n".join(data)), event_id)
            event_type, data, event_id = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                event_type = value
            elif key == "data":
                data.append(value)
            elif key == "id":
                event_id = value


def _log_params(stage: str | None, level: str | int | None, since: datetime | None, after: int | None) -> dict[str, Any]:
    return _clean({"stage": stage, "level": str(level) if level is not None else None, "since": since, "after": after})


def _event_params(run: str | None, workflow: str | None, types: list[str] | None) -> dict[str, Any]:
    return _clean({"run": run, "workflow": workflow, "types": ",".join(types) if types else None})


def resolve_server(server: str | None) -> str:
    return (server or os.environ.get("FLOWDAPT_SERVER") or DEFAULT_SERVER).rstrip("/")


class Client(_Calls):
    """Synchronous client. ``server`` defaults to ``$FLOWDAPT_SERVER`` or http://127.0.0.1:8080;
    ``token`` to ``$FLOWDAPT_TOKEN``. ``timeout`` is per request; runs with ``wait=True`` wait
    without a read timeout."""

    def __init__(self, server: str | None = None, *, token: str | None = None, timeout: float = 30.0, transport=None):
        self.base_url = resolve_server(server)
        token = token if token is not None else os.environ.get("FLOWDAPT_TOKEN")
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.base_url, headers=_headers(token), timeout=timeout, transport=transport)

    def _do(self, call: _Call) -> Any:
        timeout = None if call.path.endswith("/run") and call.method == "POST" else self.timeout
        try:
            response = self._http.request(
                call.method,
                call.path,
                params=call.params,
                content=json.dumps(call.body).encode() if call.has_body else None,
                headers=call.request_headers(),
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            raise _connection_error(self.base_url, exc) from None
        _raise_for(response)
        return call.parse(response)

    def apply(self, resource: Resource | Mapping[str, Any], *, dry_run: bool = False) -> tuple[Resource, str]:
        """Create the resource, or update it when one with its name exists: ``(stored, "created"|"updated")``."""
        body = _as_body(resource)
        kind = normalize_kind(body.get("kind", ""))
        try:
            self.get(kind, body["metadata"]["name"])
        except NotFoundError:
            return self.create(body, dry_run=dry_run), "created"
        return self.update(body, dry_run=dry_run), "updated"

    def _stream(self, path: str, params: dict[str, Any]) -> Iterator[Event]:
        """The server-sent events of ``GET path`` until the server closes the stream."""
        try:
            with self._http.stream("GET", path, params=params, timeout=httpx.Timeout(self.timeout, read=None)) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                yield from _parse_sse(response.iter_lines())
        except httpx.TransportError as exc:
            raise _connection_error(self.base_url, exc) from None

    def events(self, *, run: str | None = None, workflow: str | None = None, types: list[str] | None = None) -> Iterator[Event]:
        """Live events until the server closes the stream (iterate; break to stop)."""
        yield from self._stream("/events", _event_params(run, workflow, types))

    def follow_logs(
        self,
        identifier: str,
        *,
        stage: str | None = None,
        level: str | None = None,
        since: datetime | None = None,
        after: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """A run's log records as they come (server-sent events), until the run has ended."""
        params = {**_log_params(stage, level, since, after), "follow": "true"}
        with contextlib.closing(self._stream(f"/runs/{_seg(identifier, 'run')}/logs", params)) as stream:
            for event in stream:
                if event.type == "end":
                    return
                if event.type == "log":
                    yield event.data

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncClient(_Calls):
    """Asynchronous client; same methods as :class:`Client`, awaited."""

    def __init__(self, server: str | None = None, *, token: str | None = None, timeout: float = 30.0, transport=None):
        self.base_url = resolve_server(server)
        token = token if token is not None else os.environ.get("FLOWDAPT_TOKEN")
        self.timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=_headers(token), timeout=timeout, transport=transport)

    async def _do(self, call: _Call) -> Any:  # type: ignore[override]
        timeout = None if call.path.endswith("/run") and call.method == "POST" else self.timeout
        try:
            response = await self._http.request(
                call.method,
                call.path,
                params=call.params,
                content=json.dumps(call.body).encode() if call.has_body else None,
                headers=call.request_headers(),
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            raise _connection_error(self.base_url, exc) from None
        _raise_for(response)
        return call.parse(response)

    async def apply(self, resource: Resource | Mapping[str, Any], *, dry_run: bool = False) -> tuple[Resource, str]:
        body = _as_body(resource)
        kind = normalize_kind(body.get("kind", ""))
        try:
            await self.get(kind, body["metadata"]["name"])
        except NotFoundError:
            return await self.create(body, dry_run=dry_run), "created"
        return await self.update(body, dry_run=dry_run), "updated"

    async def _stream(self, path: str, params: dict[str, Any]) -> AsyncIterator[Event]:
        """The server-sent events of ``GET path`` until the server closes the stream."""
        try:
            async with self._http.stream(
                "GET", path, params=params, timeout=httpx.Timeout(self.timeout, read=None)
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _raise_for(response)
                buffer: list[str] = []
                async for line in response.aiter_lines():
                    buffer.append(line)
                    if line == "":
                        for event in _parse_sse(iter(buffer)):
                            yield event
                        buffer.clear()
        except httpx.TransportError as exc:
            raise _connection_error(self.base_url, exc) from None

    async def events(
        self, *, run: str | None = None, workflow: str | None = None, types: list[str] | None = None
    ) -> AsyncIterator[Event]:
        async for event in self._stream("/events", _event_params(run, workflow, types)):
            yield event

    async def follow_logs(
        self,
        identifier: str,
        *,
        stage: str | None = None,
        level: str | None = None,
        since: datetime | None = None,
        after: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        params = {**_log_params(stage, level, since, after), "follow": "true"}
        stream = self._stream(f"/runs/{_seg(identifier, 'run')}/logs", params)
        try:
            async for event in stream:
                if event.type == "end":
                    return
                if event.type == "log":
                    yield event.data
        finally:
            await stream.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


__all__ = [
    "KINDS",
    "ApiError",
    "AsyncClient",
    "BadRequestError",
    "Client",
    "ConflictError",
    "ConnectionFailedError",
    "Event",
    "ForbiddenError",
    "InvalidRequestError",
    "LogPage",
    "NotFoundError",
    "PayloadTooLargeError",
    "RunPage",
    "ServerError",
    "ServerRun",
    "UnauthorizedError",
    "UnavailableError",
    "InsufficientStorageError",
]
