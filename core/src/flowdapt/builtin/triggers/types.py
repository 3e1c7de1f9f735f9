"""Trigger types: how a rule decides when it fires.

A type is registered through ``flowdapt_register_trigger_types`` (``factory()`` returns the type).
Two families exist, and the trigger service drives each differently:

- :class:`ScheduleTriggerType`: ``compile(spec)`` returns a :class:`Schedule`; the service sleeps until
  its next due time (no polling) and fires once per due time across servers.
- :class:`ConditionTriggerType`: ``compile(spec)`` returns a predicate over an event's dict; the
  service evaluates it on every event it receives, from a cache (no database query per event).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Protocol

from flowdapt.builtin.triggers.conditions import compile_condition
from flowdapt.builtin.triggers.cron import CronSchedule
from flowdapt.builtin.triggers.errors import RuleError
from flowdapt.resources.trigger import TriggerRuleSpec


class Schedule(Protocol):
    def next_after(self, after: datetime) -> datetime | None:
        """The first due time strictly after ``after`` (aware UTC in, aware UTC out)."""

    def last_due(self, since: datetime, now: datetime) -> datetime | None:
        """The latest due time in ``(since, now]``, or None."""


class TriggerType(abc.ABC):
    family: ClassVar[str]

    @abc.abstractmethod
    def compile(self, spec: TriggerRuleSpec) -> Any:
        """Check ``spec`` (raise :class:`RuleError` naming the field) and return its compiled form."""


class ScheduleTriggerType(TriggerType):
    family = "schedule"

    @abc.abstractmethod
    def compile(self, spec: TriggerRuleSpec) -> Schedule: ...


class ConditionTriggerType(TriggerType):
    family = "condition"

    @abc.abstractmethod
    def compile(self, spec: TriggerRuleSpec) -> Callable[[Mapping[str, Any]], Any]: ...


class CronTriggerType(ScheduleTriggerType):
    """``type: schedule``: ``rule`` is a cron string or a list of them; ``timezone`` and ``misfire``."""

    def compile(self, spec: TriggerRuleSpec) -> CronSchedule:
        rule = spec.rule
        if not (isinstance(rule, str) or (isinstance(rule, list) and all(isinstance(r, str) for r in rule))):
            raise RuleError("spec.rule", "a schedule rule is a cron string or a list of cron strings")
        return CronSchedule.parse(rule, spec.timezone)


class DslConditionTriggerType(ConditionTriggerType):
    """``type: condition``: ``rule`` is an expression of the condition DSL."""

    def compile(self, spec: TriggerRuleSpec):
        if not isinstance(spec.rule, Mapping) or not spec.rule:
            raise RuleError("spec.rule", "a condition rule is a non-empty mapping like {eq: [{var: type}, ...]}")
        if spec.timezone:
            raise RuleError("spec.timezone", "only schedule rules take a time zone")
        return compile_condition(spec.rule, "spec.rule")
