"""Checks a workflow must pass before it is stored or run. Each error names the resource and field.

It lives in the engine, not in ``resources/``, because the checks are the engine's own rules (how a
target resolves, what a stage type accepts, what a stage may ask of a cluster); the resource models
below stay free of them."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from flowdapt.engine.stage_resources import parse_stage_resources
from flowdapt.engine.stage_types import StageType
from flowdapt.engine.targets import (
    Signature,
    TargetNotFoundError,
    import_target,
    is_valid_target,
    target_allowed,
)
from flowdapt.errors import StageError, ValidationError
from flowdapt.resources.loader import format_loc
from flowdapt.resources.workflow import Workflow


def topological_order(workflow: Workflow) -> list[str]:
    """Stage names in dependency order (definition order among peers). Validates names and edges."""
    label = f"workflow/{workflow.metadata.name}"
    stages = workflow.spec.stages
    index: dict[str, int] = {}
    for i, stage in enumerate(stages):
        if stage.name in index:
            raise ValidationError(
                f"duplicate stage name {stage.name!r} (also stage {index[stage.name]})",
                resource=label,
                field=f"spec.stages[{i}].name",
            )
        index[stage.name] = i
    for i, stage in enumerate(stages):
        seen = set()
        for dep in stage.depends_on:
            if dep not in index:
                raise ValidationError(
                    f"unknown stage {dep!r} (stages: {', '.join(index)})",
                    resource=label,
                    field=f"spec.stages[{i}].depends_on",
                )
            if dep == stage.name:
                raise ValidationError("a stage cannot depend on itself", resource=label, field=f"spec.stages[{i}].depends_on")
            if dep in seen:
                raise ValidationError(f"{dep!r} is listed twice", resource=label, field=f"spec.stages[{i}].depends_on")
            seen.add(dep)
    # Kahn's algorithm, stable in definition order.
    remaining = {s.name: len(s.depends_on) for s in stages}
    dependents: dict[str, list[str]] = {s.name: [] for s in stages}
    for s in stages:
        for dep in s.depends_on:
            dependents[dep].append(s.name)
    ready = [s.name for s in stages if remaining[s.name] == 0]
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for child in dependents[name]:
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
        ready.sort(key=index.__getitem__)
    if len(order) != len(stages):
        cycle = _find_cycle({s.name: list(s.depends_on) for s in stages if s.name not in order})
        raise ValidationError(
            f"dependency cycle: {' -> '.join(cycle)}", resource=label, field="spec.stages"
        )
    return order


def _find_cycle(graph: dict[str, list[str]]) -> list[str]:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return visiting[visiting.index(node):] + [node]
        if node in done or node not in graph:
            return None
        visiting.append(node)
        for dep in graph[node]:
            found = visit(dep)
            if found:
                return found
        visiting.pop()
        done.add(node)
        return None

    for node in graph:
        found = visit(node)
        if found:
            return found
    return list(graph)


def parse_stage_options(workflow: Workflow, stage_types: Mapping[str, StageType]) -> dict[str, BaseModel]:
    """Check each stage's type and options; returns the parsed options per stage."""
    label = f"workflow/{workflow.metadata.name}"
    parsed: dict[str, BaseModel] = {}
    for i, stage in enumerate(workflow.spec.stages):
        stage_type = stage_types.get(stage.type)
        if stage_type is None:
            raise ValidationError(
                f"unknown stage type {stage.type!r} (available: {', '.join(sorted(stage_types))})",
                resource=label,
                field=f"spec.stages[{i}].type",
            )
        try:
            options = stage_type.parse_options(stage.options)
        except PydanticValidationError as exc:
            err = exc.errors()[0]
            raise ValidationError(
                err["msg"] if err["type"] != "extra_forbidden" else f"unknown option for a {stage.type} stage",
                resource=label,
                field=f"spec.stages[{i}].options.{format_loc(err['loc'])}",
            ) from None
        if stage_type.maps and not stage.depends_on and not getattr(options, "map_on", None):
            raise ValidationError(
                "a parameterized stage needs a dependency to map over or options.map_on naming an input key",
                resource=label,
                field=f"spec.stages[{i}]",
            )
        parsed[stage.name] = options
    return parsed


def check_targets(
    workflow: Workflow,
    *,
    allowed_prefixes: list[str] | None = None,
    importable: bool = False,
) -> None:
    """Targets must be import paths inside the allowed prefixes; optionally also importable."""
    label = f"workflow/{workflow.metadata.name}"
    for i, stage in enumerate(workflow.spec.stages):
        target = stage.target
        field = f"spec.stages[{i}].target"
        if callable(target) and not isinstance(target, str):
            continue
        if not is_valid_target(target):
            raise ValidationError(
                f"{target!r} is not an import path like 'package.module.function'", resource=label, field=field
            )
        if allowed_prefixes is not None and not target_allowed(target, allowed_prefixes):
            raise ValidationError(
                f"{target!r} is outside the allowed modules ({', '.join(allowed_prefixes) or 'none'}); "
                "put stage code in a plugin or in user_modules/, or add its package to settings.allowed_targets",
                resource=label,
                field=field,
            )
        if importable:
            try:
                import_target(target, allowed_prefixes)
            except TargetNotFoundError as exc:
                raise ValidationError(str(exc), resource=label, field=field) from None


_RESOURCE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]*$")


def check_stage_resources(workflow: Workflow) -> None:
    """Stage ``resources`` are non-negative finite amounts (sizes for memory) under names a
    cluster can declare; a bad one is refused at apply time, not when a cluster first sees it."""
    label = f"workflow/{workflow.metadata.name}"
    for i, stage in enumerate(workflow.spec.stages):
        for name, value in (stage.resources or {}).items():
            field = f"spec.stages[{i}].resources.{name}"
            if not isinstance(name, str) or not _RESOURCE_NAME_RE.fullmatch(name) or len(name) > 100:
                raise ValidationError(
                    f"invalid resource name {name!r} (cpus, gpus, memory, or a custom label like 'special')",
                    resource=label,
                    field=field,
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise ValidationError(f"{value!r} is not a finite amount", resource=label, field=field)
            try:
                parsed = parse_stage_resources(stage.name, {name: value})
            except StageError as exc:
                reason = exc.exc_message.split(": ", 1)[-1]
                raise ValidationError(reason, resource=label, field=field) from None
            if any(not math.isfinite(v) for v in parsed.values()):
                raise ValidationError(f"{value!r} is not a finite amount", resource=label, field=field)


def check_signatures(
    workflow: Workflow,
    options: Mapping[str, BaseModel],
    stage_types: Mapping[str, StageType],
    resolve: Callable[[Any], Callable[..., Any]],
) -> None:
    """Each stage function must accept what the engine will pass it."""
    label = f"workflow/{workflow.metadata.name}"
    for i, stage in enumerate(workflow.spec.stages):
        try:
            fn = resolve(stage.target)
        except TargetNotFoundError as exc:
            raise ValidationError(str(exc), resource=label, field=f"spec.stages[{i}].target") from None
        sig = Signature.of(fn)
        maps = stage_types[stage.type].maps
        count = len(stage.depends_on)
        if maps:
            count = count + 1 if getattr(options[stage.name], "map_on", None) else max(count, 1)
        problem = sig.check_positional(count)
        if problem:
            raise ValidationError(
                f"the function {stage.target!r} cannot take its inputs: {problem}",
                resource=label,
                field=f"spec.stages[{i}].target",
            )
        if "context" in sig.keywords:
            raise ValidationError(
                "a stage function may not have a parameter named 'context'; use get_run_context()",
                resource=label,
                field=f"spec.stages[{i}].target",
            )
