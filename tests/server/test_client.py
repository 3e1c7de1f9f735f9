"""flowdapt.client: the async client end to end, events, and errors mapped from status codes."""

from __future__ import annotations

import asyncio

import pytest

from flowdapt.client import (
    AsyncClient,
    BadRequestError,
    Client,
    ConflictError,
    ConnectionFailedError,
    InvalidRequestError,
    NotFoundError,
    UnauthorizedError,
    UnavailableError,
)
from flowdapt.resources import Workflow, WorkflowRun
from tests.server.conftest import STAGES, squares_workflow, workflow_doc

pytestmark = pytest.mark.timeout(120)


async def test_async_client_covers_resources_runs_and_events(live):
    async with AsyncClient(live.url) as client:
        assert (await client.ping())["api_version"] == "v1"
        created, action = await client.apply(squares_workflow())
        assert action == "created" and isinstance(created, Workflow)
        assert (await client.apply(squares_workflow()))[1] == "updated"
        assert [w.metadata.name for w in await client.list("workflows")] == ["squares"]

        events: list[str] = []

        async def listen():
            async for event in client.events(workflow="squares"):
                events.append(event.type)
                if event.type == "run_finished":
                    return

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.3)  # let the stream subscribe
        run = await client.run_workflow("squares", {"n": 6})
        await asyncio.wait_for(listener, 10)
        assert isinstance(run, WorkflowRun) and run.result == 55
        assert run.stages["square"].items_done == 6
        assert events[0] == "run_created" and events[-1] == "run_finished"

        pending = await client.run_workflow("squares", {"n": 2}, wait=False)
        assert pending.state == "pending"
        for _ in range(100):
            current = await client.get_run(pending.name)
            if current.state == "finished":
                break
            await asyncio.sleep(0.05)
        assert current.result == 1
        page = await client.list_runs(workflow="squares", state="finished")
        assert page.total == 2 and len(page.items) == 2
        assert len(await client.list_workflow_runs("squares", limit=1)) == 1
        assert await client.run_result(pending.name) == 1
        with pytest.raises(ConflictError):
            await client.cancel_run(pending.name)
        assert (await client.delete_run(pending.name)).uid == pending.uid
        with pytest.raises(NotFoundError) as info:
            await client.get_run(pending.name)
        assert info.value.status_code == 404 and pending.name in info.value.detail
        status = await client.status()
        assert status["services"]["ComputeService"]["status"] == "OK"
        assert "api_request_count" in await client.metrics(max_length=1)
        assert any(p["name"] == "local_executor" for p in await client.plugins())
        assert (await client.delete("workflow", "squares")).metadata.name == "squares"


def test_sync_client_error_mapping(live, make_server):
    with Client(live.url) as client:
        with pytest.raises(BadRequestError) as info:
            client.create(workflow_doc("bad", [{"name": "a", "target": "os.system"}]))
        assert "allowed modules" in info.value.detail
        with pytest.raises(NotFoundError):
            client.get("config", "nope")
        client.create(workflow_doc("adder", [{"name": "add", "target": f"{STAGES}.add"}]))
        with pytest.raises(BadRequestError) as info:
            client.run_workflow("adder", {"a": 1})
        assert "'b'" in info.value.detail
        assert client.run_workflow("adder", {"a": 1, "b": 2}).result == 3
        with pytest.raises(InvalidRequestError):
            client.list_workflow_runs("adder", limit=-1)
        client.drain()
        with pytest.raises(UnavailableError):
            client.run_workflow("adder", {"a": 1, "b": 2})
        client.undrain()
    with pytest.raises(ConnectionFailedError) as info:
        Client("http://127.0.0.1:9").ping()
    assert "cannot reach" in str(info.value.detail)
    secured = make_server({"api.tokens": ["t0k"]})
    with pytest.raises(UnauthorizedError):
        Client(secured.url, token="nope").list("workflows")
    assert Client(secured.url, token="t0k").list("workflows") == []


def test_yaml_bodies(http):
    text = (
        "kind: workflow\nmetadata: {name: from-yaml}\nspec:\n  stages:\n"
        f"    - {{name: make, target: {STAGES}.make}}\n"
    )
    response = http.post("/workflows/", content=text, headers={"Content-Type": "application/yaml"})
    assert response.status_code == 200, response.text
    broken = http.post("/workflows/", content="kind: [unclosed", headers={"Content-Type": "application/yaml"})
    assert broken.status_code == 400 and "not valid YAML" in broken.json()["detail"]
    assert [w["metadata"]["name"] for w in http.get("/workflows/").json()] == ["from-yaml"]
