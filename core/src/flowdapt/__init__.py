"""Flowdapt: orchestrate adaptive machine-learning workflows of plain Python functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.100"

if TYPE_CHECKING:  # pragma: no cover
    from flowdapt.api import execute_workflow, execute_workflow_async
    from flowdapt.engine.context import get_run_context

__all__ = ["__version__", "execute_workflow", "execute_workflow_async", "get_run_context"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import flowdapt` in a worker stays cheap.
    if name in ("execute_workflow", "execute_workflow_async"):
        from flowdapt import api

        return getattr(api, name)
    if name == "get_run_context":
        from flowdapt.engine.context import get_run_context

        return get_run_context
    raise AttributeError(f"module 'flowdapt' has no attribute {name!r}")
