"""Compile a workflow into a plan: stages in dependency order, their options parsed, sinks found."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from flowdapt.engine.stage_types import StageType
from flowdapt.engine.validation import check_signatures, parse_stage_options, topological_order
from flowdapt.resources.workflow import Workflow


@dataclass(frozen=True)
class PlannedStage:
    name: str
    target: Any
    type: StageType
    options: BaseModel
    depends_on: tuple[str, ...]
    resources: dict[str, Any]

    @property
    def maps(self) -> bool:
        return self.type.maps

    @property
    def is_root(self) -> bool:
        return not self.depends_on

    @property
    def map_on(self) -> str | None:
        return getattr(self.options, "map_on", None)


@dataclass(frozen=True)
class Plan:
    workflow: Workflow
    stages: dict[str, PlannedStage]  # in topological order
    sinks: tuple[str, ...]

    @property
    def map_stages(self) -> list[str]:
        return [s.name for s in self.stages.values() if s.maps]


def compile_workflow(
    workflow: Workflow,
    stage_types: Mapping[str, StageType],
    *,
    check_callables: bool = False,
    resolve=None,
) -> Plan:
    """Validate the DAG and options; with ``check_callables`` also import targets and check signatures."""
    order = topological_order(workflow)
    options = parse_stage_options(workflow, stage_types)
    if check_callables:
        check_signatures(workflow, options, stage_types, resolve)
    by_name = {s.name: s for s in workflow.spec.stages}
    has_dependents = {dep for s in workflow.spec.stages for dep in s.depends_on}
    stages = {
        name: PlannedStage(
            name=name,
            target=by_name[name].target,
            type=stage_types[by_name[name].type],
            options=options[name],
            depends_on=tuple(by_name[name].depends_on),
            resources=dict(by_name[name].resources),
        )
        for name in order
    }
    sinks = tuple(s.name for s in workflow.spec.stages if s.name not in has_dependents)
    return Plan(workflow, stages, sinks)
