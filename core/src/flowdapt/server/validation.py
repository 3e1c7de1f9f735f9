"""Apply-time checks: a resource is stored only when it could run. Nothing is written on error."""

from __future__ import annotations

from flowdapt.engine.prepare import check_run_input, compile_checked
from flowdapt.errors import ValidationError
from flowdapt.plugins import PluginSystem
from flowdapt.resources.base import Resource
from flowdapt.resources.trigger import TriggerRule
from flowdapt.resources.workflow import Workflow
from flowdapt.settings import Settings

__all__ = ["check_run_input", "compile_checked", "validate_resource"]


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
