"""``flowdapt.compute.resources.workflow.execute``: the original's ``execute_workflow``, for the
test suites of plugins written for it::

    result = await execute_workflow(workflow, input, namespace="testing", executor=executor,
                                    config=config, return_result=True)

It is a coroutine (ours, :func:`flowdapt.execute_workflow`, is a plain call). Without an
executor it runs on a new thread-pool :class:`~flowdapt.compute.executor.local.LocalExecutor`
(extra keyword arguments go to it, e.g. ``use_processes=True``), as the original did; an
executor that is not running is started and closed here. ``return_result=True`` returns the
result and raises the stage's error when the run fails; otherwise the run record is returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowdapt.engine.executor import Executor
from flowdapt.resources.run import WorkflowRun
from flowdapt.resources.workflow import Workflow

__all__ = ["execute_workflow"]


async def execute_workflow(
    workflow: Mapping[str, Any] | Workflow,
    input: Mapping[str, Any] | None = None,
    *,
    namespace: str = "default",
    return_result: bool = False,
    run: WorkflowRun | None = None,
    executor: Executor | None = None,
    config: Mapping[str, Any] | None = None,
    **params: Any,
) -> WorkflowRun | Any:
    from flowdapt.api import execute_workflow_async, run_error

    if executor is None:
        from flowdapt.compute.executor.local import LocalExecutor

        params.setdefault("use_processes", False)
        executor = LocalExecutor(**params)
    if isinstance(workflow, Mapping) and "kind" not in workflow:
        workflow = {"kind": "workflow", **workflow}
    finished = await execute_workflow_async(
        workflow, input, executor=executor, config=dict(config or {}), namespace=namespace, run=run
    )
    if not return_result:
        return finished
    if finished.state != "finished":
        raise run_error(finished)
    return finished.result
