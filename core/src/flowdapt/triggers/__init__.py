"""Trigger rules: cron schedules and event conditions that run actions.

- :mod:`.conditions`: the condition DSL, compiled once per rule.
- :mod:`.cron`: cron expressions with time zones.
- :mod:`.types` / :mod:`.actions`: the trigger types and actions plugins register.
- :mod:`.rules`: :func:`validate_trigger_rule`, the apply-time check (field-level errors).
- :mod:`.service`: :class:`TriggerService`, which fires the rules.
"""

from flowdapt.triggers.rules import CompiledRule, compile_rule, validate_trigger_rule

__all__ = ["CompiledRule", "compile_rule", "validate_trigger_rule"]
