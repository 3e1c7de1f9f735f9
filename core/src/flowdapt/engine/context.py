"""The run context a stage (and anything it calls) reads with :func:`get_run_context`."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from flowdapt.engine.logs import CaptureOptions
from flowdapt.resources.run import WorkflowRun
from flowdapt.resources.workflow import Workflow


@dataclass
class RunContext:
    input: dict[str, Any]
    config: dict[str, Any]
    namespace: str
    executor: str
    definition: Workflow
    run: WorkflowRun
    #: Extra values executors attach (e.g. cluster-memory connection details); not for stage code.
    extras: dict[str, Any] = field(default_factory=dict)
    #: What the workers capture of the stages' output (``logs`` settings); None: nothing.
    capture: CaptureOptions | None = None

    # The original exposed a pydantic model; keep dict-style access working for old stage code.
    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


_current: ContextVar[RunContext | None] = ContextVar("flowdapt_run_context", default=None)


def get_run_context() -> RunContext:
    """The context of the stage being run. Raises RuntimeError outside a stage."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("No active WorkflowRunContext")
    return ctx


def current_run_context() -> RunContext | None:
    """The context of the stage being run, or None outside a stage."""
    return _current.get()


def set_run_context(ctx: RunContext | None):
    """Set the context; returns a token for ``reset_run_context``."""
    return _current.set(ctx)


def reset_run_context(token) -> None:
    _current.reset(token)
