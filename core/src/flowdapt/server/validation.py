"""Apply-time checks: a resource is stored only when it could run. Nothing is written on error."""

from __future__ import annotations

import inspect
from typing import Any

from flowdapt.api import allowed_target_prefixes, stage_types
from flowdapt.engine.plan import Plan, compile_workflow
from flowdapt.engine.validation import check_stage_resources, check_targets
from flowdapt.engine.worker import resolve
from flowdapt.errors import ValidationError
from flowdapt.plugins import PluginSystem
from flowdapt.resources.base import Resource
from flowdapt.resources.trigger import TriggerRule
from flowdapt.resources.workflow import Workflow
from flowdapt.settings import Settings


def compile_checked(workflow: Workflow, settings: Settings, plugins: PluginSystem) -> Plan:
    """DAG, stage types and options, targets inside the allowed modules, importable, callable
    with what the engine passes them."""
    check_targets(workflow, allowed_prefixes=allowed_target_prefixes(settings, plugins), importable=True)
    check_stage_resources(workflow)
    return compile_workflow(workflow, stage_types(plugins), check_callables=True, resolve=lambda t: resolve(t)[0])


def _check_trigger_rule(rule: TriggerRule, plugins: PluginSystem) -> None:
    label = f"trigger_rule/{rule.metadata.name}"
    spec = rule.spec
    types = plugins.registries["trigger_types"]
    if types:
        registration = types.get(spec.type)
        if registration is None:
            raise ValidationError(
                f"unknown trigger type {spec.type!r} (available: {', '.join(sorted(types))})",
                resource=label,
                field="spec.type",
            )
        trigger_type = registration.factory()
        validate = getattr(trigger_type, "validate", None) or getattr(trigger_type, "validate_rule", None)
        if callable(validate):
            try:
                validate(spec.rule)
            except ValidationError:
                raise
            except (ValueError, TypeError, KeyError) as exc:
                raise ValidationError(str(exc), resource=label, field="spec.rule") from None
    elif spec.type == "schedule":
        if not isinstance(spec.rule, list) or not all(isinstance(s, str) and s.strip() for s in spec.rule):
            raise ValidationError("a schedule rule is a list of cron strings", resource=label, field="spec.rule")
    elif spec.type == "condition":
        if not isinstance(spec.rule, dict) or not spec.rule:
            raise ValidationError("a condition rule is a non-empty mapping", resource=label, field="spec.rule")
    actions = plugins.registries["actions"]
    if actions:
        target = spec.action.target
        name = target.rsplit(".", 1)[-1] if target.startswith("flowdapt.triggers.") else target
        registration = actions.get(name)
        if registration is None:
            raise ValidationError(
                f"unknown action {target!r} (available: {', '.join(sorted(actions))})",
                resource=label,
                field="spec.action.target",
            )
        registration.parse_options(spec.action.parameters)


def validate_resource(resource: Resource, settings: Settings, plugins: PluginSystem) -> None:
    if isinstance(resource, Workflow):
        compile_checked(resource, settings, plugins)
        return
    try:
        checked = any(plugins.hook.flowdapt_validate_resource(resource=resource, plugins=plugins))
        if isinstance(resource, TriggerRule) and not checked:
            # No plugin owns trigger rules here (the built-in triggers plugin is off): the basics.
            _check_trigger_rule(resource, plugins)
    except ValidationError:
        raise
    except Exception as exc:  # e.g. ConfigurationError from an action's options model
        if not isinstance(resource, TriggerRule):
            raise
        raise ValidationError(str(exc), resource=f"trigger_rule/{resource.metadata.name}", field="spec.action.parameters") from None


_required_cache: dict[Any, tuple[list[str], bool]] = {}


def _required_inputs(fn: Any, maps: bool) -> list[str]:
    key = (id(fn), maps)
    hit = _required_cache.get(key)
    if hit is not None and hit[1] is True:
        return hit[0]
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []
    if maps:  # the item is the first positional argument
        for i, p in enumerate(params):
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                params = params[:i] + params[i + 1 :]
                break
    required = [
        p.name
        for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)
    ]
    _required_cache[key] = (required, True)
    return required


def check_run_input(plan: Plan, run_input: dict[str, Any]) -> None:
    """Root stages get the run input as keyword arguments: each must find its required ones."""
    label = f"workflow/{plan.workflow.metadata.name}"
    for stage in plan.stages.values():
        if not stage.is_root:
            continue
        if stage.map_on and stage.map_on not in run_input:
            raise ValidationError(
                f"stage {stage.name!r} maps over input key {stage.map_on!r}, which the run input lacks "
                f"(given: {', '.join(sorted(run_input)) or 'nothing'})",
                resource=label,
                field="input",
            )
        fn = resolve(stage.target)[0]
        missing = [name for name in _required_inputs(fn, stage.maps) if name not in run_input]
        if missing:
            raise ValidationError(
                f"stage {stage.name!r} ({stage.target if isinstance(stage.target, str) else 'callable'}) "
                f"needs input {', '.join(repr(m) for m in missing)}, which the run input lacks "
                f"(given: {', '.join(sorted(run_input)) or 'nothing'})",
                resource=label,
                field="input",
            )
