"""Workflow runs: the original's ``/workflows/...run`` endpoints and our ``/runs`` additions."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from flowdapt.errors import ResourceNotFoundError
from flowdapt.resources.base import to_naive_utc
from flowdapt.resources.run import RunState, WorkflowRun
from flowdapt.server.events import RESOURCE_EVENTS, RUN_EVENTS, Subscriber
from flowdapt.server.http import json_response, read_body
from flowdapt.server.routes.common import ERRORS, object_body, server_of, version_of
from flowdapt.server.schemas import RunLogPage, RunPage, WorkflowRunRead
from flowdapt.server.versioning import SUPPORTED_VERSIONS, render

RUN = "workflow_run"
#: Our own endpoints (/runs/...) always answer with the latest run schema.
RUN_LATEST = SUPPORTED_VERSIONS[RUN][-1]
router = APIRouter(tags=["runs"])
run_responses = {200: {"model": WorkflowRunRead}, **ERRORS}


async def _run_document(request: Request, run: WorkflowRun, include_result: bool = True) -> dict:
    runs = server_of(request).runs
    document = run.model_dump(mode="json", exclude={"owner"})
    document["queue_position"] = runs.queue_position(str(run.uid))
    if include_result and run.result_ref:
        document["result"] = await runs.full_result(run)
    if include_result and run.input_ref:
        document["input"] = await runs.run_input(run)
    return document


def _listed(runs: list[WorkflowRun], service, exclude: set[str]) -> list[dict]:
    """Documents of a page of runs. A run this server drives is shown as it is now (its stored
    record lags up to a progress flush behind), with its ``queue_position`` when it waits for a
    slot; both are looked up in memory, never in the database."""
    positions = service.queue_positions()
    documents = []
    for run in runs:
        active = service.active.get(str(run.uid))
        if active is not None and not active.done:  # (an ended one's result may not be offloaded yet)
            run = active.run
        document = run.model_dump(mode="json", exclude=exclude)
        document["queue_position"] = positions.get(document["uid"])
        documents.append(document)
    return documents


async def _submitted(request: Request, document: dict) -> dict:
    """The answer to a ``wait=false`` start: the pending run, with its place in the queue when it
    waits for a slot. The run's task takes that place on its first step, which runs as soon as
    this handler yields once (asyncio runs ready tasks in the order they were scheduled)."""
    document.pop("owner", None)
    runs = server_of(request).runs
    if document.get("state") == "pending" and runs.find_active(document["uid"]) is not None:
        await asyncio.sleep(0)
    document["queue_position"] = runs.queue_position(document["uid"])
    return document


def _states(state: list[str] | None) -> list[str] | None:
    if not state:
        return None
    names = [s.strip() for item in state for s in item.split(",") if s.strip()]
    valid = {s.value for s in RunState}
    bad = [s for s in names if s not in valid]
    if bad:
        from flowdapt.errors import ValidationError

        raise ValidationError(f"unknown run state(s) {', '.join(bad)}; use {', '.join(sorted(valid))}", field="state")
    return names


# Registered before /workflows/{identifier}/run so /workflows/run/<id> is a run lookup.
@router.get("/workflows/run/{identifier}", summary="Get a workflow run by uid or name", responses=run_responses, operation_id="get_workflow_run")
async def get_workflow_run(
    request: Request,
    identifier: str,
    include_result: bool = Query(True, description="inline a result kept outside the database"),
):
    version = version_of(request, RUN)
    run = await server_of(request).runs.get(identifier)
    return json_response(render(RUN, version, await _run_document(request, run, include_result)), RUN, version)


@router.delete("/workflows/run/{identifier}", summary="Delete a finished workflow run", responses=run_responses, operation_id="delete_workflow_run")
async def delete_workflow_run(request: Request, identifier: str):
    version = version_of(request, RUN)
    run = await server_of(request).runs.delete(identifier)
    return json_response(render(RUN, version, await _run_document(request, run, include_result=False)), RUN, version)


@router.post(
    "/workflows/{identifier}/run",
    summary="Run a workflow",
    description=(
        "The body is the run input: a JSON object whose keys are passed to the root stages as keyword "
        "arguments. With wait=true (default) the response comes when the run ends; with wait=false "
        "the pending run comes back at once. An `Idempotency-Key` header (1 to 255 printable "
        "characters) makes the request safe to send again after a timeout or a 5xx: a request whose "
        "key started a run already answers with that run instead of starting another."
    ),
    responses={**run_responses, 503: {"description": "Draining, or no compute service"}},
    openapi_extra=object_body("run input (keyword arguments of the root stages)"),
    operation_id="run_workflow",
)
async def run_workflow(
    request: Request,
    identifier: str,
    namespace: str | None = Query(None, description="object-store namespace (default compute.default_namespace)"),
    wait: bool = Query(True, description="wait for the run to end"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", description="a key the client chose for this run: sent again, it answers with the run it started"),
):
    version = version_of(request, RUN)
    run_input = await read_body(request, default={}, what="the run input")
    server = server_of(request)
    run = await server.runs.submit(identifier, run_input, namespace=namespace, wait=wait, source="api", idempotency_key=idempotency_key)
    if isinstance(run, dict):
        return json_response(render(RUN, version, await _submitted(request, run)), RUN, version)
    return json_response(render(RUN, version, await _run_document(request, run)), RUN, version)


RERUN_DESCRIPTION = (
    "Runs the run's workflow again with the run's input, in its namespace. The optional body "
    '`{"input": {...}}` is merged over the old input (its keys replace the old ones). The new run has '
    "`source: rerun` and `rerun_of: <the old run's uid>`. `wait` as for a new run."
)


async def _rerun(request: Request, identifier: str, wait: bool) -> dict:
    body = await read_body(request, default={}, what="the rerun request")
    if not isinstance(body, dict):
        from flowdapt.errors import ValidationError

        raise ValidationError('the body must be a JSON object: {"input": {...}}', field="body")
    run = await server_of(request).runs.rerun(identifier, body.get("input"), wait=wait)
    if isinstance(run, dict):
        return await _submitted(request, run)
    return await _run_document(request, run)


@router.post(
    "/workflows/run/{identifier}/rerun",
    summary="Run a workflow run again",
    description=RERUN_DESCRIPTION,
    responses={**run_responses, 503: {"description": "Draining, or no compute service"}},
    openapi_extra=object_body('{"input": {...}}: input keys to change'),
    operation_id="rerun_workflow_run",
)
async def rerun_workflow_run(request: Request, identifier: str, wait: bool = Query(True, description="wait for the run to end")):
    version = version_of(request, RUN)
    return json_response(render(RUN, version, await _rerun(request, identifier, wait)), RUN, version)


@router.get(
    "/workflows/{identifier}/parameters",
    summary="The run input a workflow takes",
    description=(
        "The keyword parameters of the workflow's root stages (a map stage's item is not one; its "
        "`map_on` key is): `{workflow, parameters: [{name, required, default?, annotation, stages}]}`. "
        "`default` is present only when the parameter has one (JSON data, or `{repr: ...}`); "
        "`annotation` is the type annotation as text, or null. A UI builds a start-run form from it."
    ),
    responses=ERRORS,
    operation_id="get_workflow_parameters",
)
async def workflow_parameters(request: Request, identifier: str):
    from flowdapt.engine.prepare import root_parameters

    server = server_of(request)
    workflow = await server.store.get("workflow", identifier)
    if workflow is None:
        raise ResourceNotFoundError(f"Resource not found: no workflow with uid or name {identifier!r}")
    plan = server.runs.plan_for(workflow)
    return json_response({"workflow": workflow.metadata.name, "parameters": root_parameters(plan)})


@router.get(
    "/workflows/{identifier}/run",
    summary="List a workflow's runs, newest first",
    responses={200: {"model": list[WorkflowRunRead]}, **ERRORS},
    operation_id="list_workflow_runs",
)
async def list_workflow_runs(request: Request, identifier: str, limit: int = Query(10, ge=0, le=10_000)):
    version = version_of(request, RUN)
    server = server_of(request)
    workflow = await server.store.get("workflow", identifier)
    if workflow is None:
        raise ResourceNotFoundError(f"Resource not found: no workflow with uid or name {identifier!r}")
    runs = await server.store.list_runs(workflow=workflow.metadata.name, limit=limit) if server.runs.persist else []
    documents = _listed(runs, server.runs, {"owner"})
    return json_response(render(RUN, version, documents), RUN, version)


@router.get("/runs", summary="List runs across workflows", responses={200: {"model": RunPage}, **ERRORS}, operation_id="list_runs")
async def list_runs(
    request: Request,
    workflow: str | None = Query(None, description="workflow name"),
    state: list[str] | None = Query(None, description="run state(s); repeat or comma-separate"),
    since: datetime | None = Query(None, description="runs started at or after (ISO; naive means UTC)"),
    limit: int = Query(50, ge=0, le=10_000),
    offset: int = Query(0, ge=0, le=2**63 - 1, description="runs to skip (at most 2**63-1, SQLite's integer range)"),
    include_result: bool = Query(True, description="false leaves each run's result out (lists that show no results)"),
):
    version_of(request, "run_list")
    server = server_of(request)
    states = _states(state)
    since_naive = to_naive_utc(since) if since else None
    if server.runs.persist:
        runs = await server.store.list_runs(workflow=workflow, state=states, since=since_naive, limit=limit, offset=offset)
        total = await server.store.count_runs(workflow=workflow, state=states, since=since_naive)
    else:
        runs, total = [], 0
    return json_response(
        {
            "items": _listed(runs, server.runs, {"owner"} if include_result else {"owner", "result"}),
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


@router.get("/runs/{identifier}", summary="Get a run", responses=run_responses, operation_id="get_run")
async def get_run(request: Request, identifier: str, include_result: bool = Query(True)):
    run = await server_of(request).runs.get(identifier)
    return json_response(await _run_document(request, run, include_result), RUN, RUN_LATEST)


@router.get("/runs/{identifier}/result", summary="The full result of a run", responses=ERRORS, operation_id="get_run_result")
async def get_run_result(request: Request, identifier: str):
    server = server_of(request)
    run = await server.runs.get(identifier)
    return json_response(await server.runs.full_result(run))


LOGS_DESCRIPTION = (
    "What the run's stages printed (stdout, stderr) and logged (`logging` records at `logs.level` and "
    "above), in order, each with its stage, map item, time, stream, level and logger. Filters: stage, "
    "level (at least), since (time), after (seq). With follow=true or `Accept: text/event-stream` the "
    "answer is a stream of server-sent events: `log` events (id = seq, data = one record) for the "
    "records so far and then new ones while the run is active, and an `end` event when it has ended. "
    "404 for an unknown or deleted run."
)


async def _run_logs(
    request: Request,
    identifier: str,
    stage: str | None,
    level: str | None,
    since: datetime | None,
    after: int | None,
    limit: int,
    follow: bool,
):
    from datetime import UTC

    from flowdapt.engine.logs import level_number
    from flowdapt.errors import ValidationError
    from flowdapt.server.run_logs import follow as follow_logs

    runs = server_of(request).runs
    try:
        min_level = level_number(level) if level not in (None, "") else None
    except ValueError as exc:
        raise ValidationError(str(exc), field="level") from None
    since_epoch = to_naive_utc(since).replace(tzinfo=UTC).timestamp() if since else None
    wants_stream = follow or "text/event-stream" in request.headers.get("accept", "")
    if wants_stream:
        run = await runs.get(identifier)  # 404 before the stream starts
        return StreamingResponse(
            follow_logs(runs, str(run.uid), stage=stage, min_level=min_level, after_seq=after, since=since_epoch),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    run, records = await runs.read_logs(
        identifier, stage=stage, min_level=min_level, after_seq=after, since=since_epoch, limit=limit
    )
    return json_response(
        {
            "run": str(run.uid),
            "name": run.name,
            "state": run.state.value,
            "items": [r.to_json() for r in records],
            "last_seq": records[-1].seq if records else after,
        }
    )


_LOG_RESPONSES = {200: {"model": RunLogPage, "content": {"text/event-stream": {}}}, **ERRORS}


@router.get("/runs/{identifier}/logs", summary="A run's logs", description=LOGS_DESCRIPTION, responses=_LOG_RESPONSES, operation_id="get_run_logs")
async def get_run_logs(
    request: Request,
    identifier: str,
    stage: str | None = Query(None, description="only this stage"),
    level: str | None = Query(None, description="at least this level: DEBUG, INFO, WARNING, ERROR (prints count as INFO, stderr as WARNING)"),
    since: datetime | None = Query(None, description="records at or after this time (ISO; naive means UTC)"),
    after: int | None = Query(None, ge=0, le=2**63 - 1, description="records after this seq (the last_seq of a previous page)"),
    limit: int = Query(1000, ge=1, le=100_000),
    follow: bool = Query(False, description="stream as server-sent events until the run ends"),
):
    return await _run_logs(request, identifier, stage, level, since, after, limit, follow)


@router.get(
    "/workflows/run/{identifier}/logs",
    summary="A run's logs (beside /workflows/run/{identifier})",
    description=LOGS_DESCRIPTION,
    responses=_LOG_RESPONSES,
    operation_id="get_workflow_run_logs",
)
async def get_workflow_run_logs(
    request: Request,
    identifier: str,
    stage: str | None = Query(None, description="only this stage"),
    level: str | None = Query(None, description="at least this level"),
    since: datetime | None = Query(None, description="records at or after this time (ISO; naive means UTC)"),
    after: int | None = Query(None, ge=0, le=2**63 - 1, description="records after this seq"),
    limit: int = Query(1000, ge=1, le=100_000),
    follow: bool = Query(False, description="stream as server-sent events until the run ends"),
):
    return await _run_logs(request, identifier, stage, level, since, after, limit, follow)


@router.get("/runs/{identifier}/input", summary="The full input of a run", responses=ERRORS, operation_id="get_run_input")
async def get_run_input(request: Request, identifier: str):
    server = server_of(request)
    run = await server.runs.get(identifier)
    return json_response(await server.runs.run_input(run))


@router.post(
    "/runs/{identifier}/rerun",
    summary="Run a run again",
    description=RERUN_DESCRIPTION,
    responses={**run_responses, 503: {"description": "Draining, or no compute service"}},
    openapi_extra=object_body('{"input": {...}}: input keys to change'),
    operation_id="rerun_run",
)
async def rerun_run(request: Request, identifier: str, wait: bool = Query(True, description="wait for the run to end")):
    return json_response(await _rerun(request, identifier, wait), RUN, RUN_LATEST)


@router.post(
    "/runs/{identifier}/cancel",
    summary="Cancel a run",
    description="Stops the run's tasks on the executor; the run ends as cancelled. 409 when it already ended.",
    responses={**run_responses, 409: {"description": "The run already ended"}},
    operation_id="cancel_run",
)
async def cancel_run(request: Request, identifier: str):
    run = await server_of(request).runs.cancel(identifier)
    return json_response(await _run_document(request, run), RUN, RUN_LATEST)


@router.delete("/runs/{identifier}", summary="Delete a finished run", responses=run_responses, operation_id="delete_run")
async def delete_run(request: Request, identifier: str):
    run = await server_of(request).runs.delete(identifier)
    return json_response(await _run_document(request, run, include_result=False), RUN, RUN_LATEST)


@router.get(
    "/events",
    summary="Server-sent events: runs, stages and resources",
    description=(
        "A text/event-stream of events: " + ", ".join(RUN_EVENTS + RESOURCE_EVENTS) + ". Each has an id, a type "
        "and JSON data (run events: uid, name, workflow, state, and the stage record for stage events). "
        "Filter with run, workflow and types."
    ),
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
    operation_id="events",
)
async def events(
    request: Request,
    run: str | None = Query(None, description="only this run (uid or name)"),
    workflow: str | None = Query(None, description="only runs of this workflow"),
    types: list[str] | None = Query(None, description="event types; repeat or comma-separate"),
):
    wanted = None
    if types:
        wanted = frozenset(t.strip() for item in types for t in item.split(",") if t.strip())
    subscriber = Subscriber(types=wanted, run=run, workflow=workflow)
    hub = server_of(request).events
    return StreamingResponse(
        hub.stream(subscriber),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
