"""Compile a trigger rule against the registered trigger types and actions.

:func:`validate_trigger_rule` is what the server's apply path calls: it raises
:class:`flowdapt.errors.ValidationError` (a 400) whose ``field`` names the problem: a bad cron
expression (``spec.rule[0]``), an unknown operator or a wrong argument count
(``spec.rule.and[1].eq``), an unknown action (``spec.action.target``), bad action parameters
(``spec.action.parameters.workflow``), an unknown time zone (``spec.timezone``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from flowdapt.builtin.triggers.actions import ACTION_ALIASES
from flowdapt.builtin.triggers.conditions import check_vars
from flowdapt.builtin.triggers.errors import RuleError
from flowdapt.builtin.triggers.types import ConditionTriggerType, ScheduleTriggerType, TriggerType
from flowdapt.errors import PluginNotFoundError, ValidationError
from flowdapt.resources.trigger import TriggerRule


@dataclass
class CompiledRule:
    rule: TriggerRule
    type: TriggerType
    family: str  # "schedule" | "condition"
    compiled: Any  # a Schedule or a predicate
    action_name: str
    action: Any  # the registered action callable
    params: BaseModel

    @property
    def name(self) -> str:
        return self.rule.metadata.name


def _label(rule: TriggerRule) -> str:
    return f"trigger_rule/{rule.metadata.name}"


def _plugins(plugins):
    if plugins is None:
        from flowdapt.plugins import get_plugin_system

        plugins = get_plugin_system()
    return plugins


def action_name(target: str) -> str:
    return ACTION_ALIASES.get(target, target)


def compile_rule(rule: TriggerRule, plugins=None) -> CompiledRule:
    """Check every part of ``rule`` and return it compiled. Raises ValidationError naming the field."""
    plugins = _plugins(plugins)
    label = _label(rule)
    spec = rule.spec
    types = plugins.registry("trigger_types")
    registration = types.get(spec.type)
    if registration is None:
        raise ValidationError(
            f"unknown trigger type {spec.type!r} (available: {', '.join(sorted(types)) or 'none'})",
            resource=label,
            field="spec.type",
        )
    trigger_type = registration.factory()
    try:
        compiled = trigger_type.compile(spec)
    except RuleError as exc:
        raise ValidationError(exc.reason, resource=label, field=exc.field) from None
    if isinstance(trigger_type, ScheduleTriggerType):
        family = "schedule"
    elif isinstance(trigger_type, ConditionTriggerType):
        family = "condition"
    else:
        raise ValidationError(
            f"trigger type {spec.type!r} (plugin {registration.plugin!r}) is neither a schedule nor a condition type",
            resource=label,
            field="spec.type",
        )

    name = action_name(spec.action.target)
    try:
        action = plugins.get("actions", name)
    except PluginNotFoundError:
        available = ", ".join(plugins.names("actions")) or "none"
        hint = (
            " A rule cannot name an import path: actions must be registered by a plugin"
            " (flowdapt_register_actions)."
            if "." in name or ":" in name
            else ""
        )
        raise ValidationError(
            f"unknown action {spec.action.target!r} (available: {available}).{hint}",
            resource=label,
            field="spec.action.target",
        ) from None
    parameters = spec.action.parameters
    try:
        check_vars(parameters, "spec.action.parameters")
    except RuleError as exc:
        raise ValidationError(exc.reason, resource=label, field=exc.field) from None
    try:
        params = action.options_model.model_validate(parameters)
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            accepted = ", ".join(action.options_model.model_fields) or "none"
            message = f"unknown parameter for action {name!r} (accepted: {accepted})"
        elif err["type"] == "missing":
            message = f"required by action {name!r}"
        else:
            message = err["msg"]
        field = "spec.action.parameters" + (f".{loc}" if loc else "")
        raise ValidationError(message, resource=label, field=field) from None
    return CompiledRule(
        rule=rule,
        type=trigger_type,
        family=family,
        compiled=compiled,
        action_name=name,
        action=action.factory,
        params=params,
    )


def validate_trigger_rule(rule: TriggerRule | Mapping[str, Any], plugins=None) -> TriggerRule:
    """Apply-time check; returns the parsed rule. Raises ValidationError (400) naming the field."""
    if not isinstance(rule, TriggerRule):
        from flowdapt.resources.loader import parse_resource

        rule = parse_resource(rule, kind="trigger_rule")  # type: ignore[assignment]
    compile_rule(rule, plugins)  # type: ignore[arg-type]
    return rule  # type: ignore[return-value]
