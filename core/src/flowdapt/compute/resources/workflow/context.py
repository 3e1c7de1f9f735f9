"""``from flowdapt.compute.resources.workflow.context import get_run_context`` keeps working."""

from flowdapt.engine.context import RunContext as WorkflowRunContext
from flowdapt.engine.context import get_run_context

__all__ = ["WorkflowRunContext", "get_run_context"]
