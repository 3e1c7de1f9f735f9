"""The ``workflow`` resource: stages of plain Python functions wired by ``depends_on``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from flowdapt.resources.base import Resource

STAGE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"


class Stage(BaseModel):
    # Unknown stage keys are ignored, as in the original (its tests pass `required_resources`).
    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    #: Like a resource name, dots allowed: stage names become keys on clusters and in events.
    name: str = Field(min_length=1, max_length=253, pattern=STAGE_NAME_PATTERN)
    #: Import path ``package.module.function`` (or ``package.module:function``); the Python API
    #: also accepts a callable, which is never stored.
    target: str | Callable[..., Any]
    type: str = "simple"
    depends_on: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    resources: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    version: str = ""
    priority: int | None = None

    @field_validator("depends_on", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        return value

    @field_validator("options", "resources", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_serializer("target")
    def _serialize_target(self, target: Any) -> str:
        if isinstance(target, str):
            return target
        module = getattr(target, "__module__", "")
        qualname = getattr(target, "__qualname__", repr(target))
        return f"{module}.{qualname}" if module else qualname


class WorkflowSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    stages: list[Stage] = Field(min_length=1)
    #: Times a run is started again on another compute server when the one running it dies
    #: (its lease expires); 0: the run is recorded failed with the reason.
    retries: int = Field(default=0, ge=0, le=100)
    #: Runs of this workflow one server drives at once (0: no limit); the others wait ``pending``
    #: in order, never refused.
    max_active_runs: int = Field(default=0, ge=0)


class Workflow(Resource):
    kind: Literal["workflow"] = "workflow"
    spec: WorkflowSpec

    def stage(self, name: str) -> Stage:
        for stage in self.spec.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)
