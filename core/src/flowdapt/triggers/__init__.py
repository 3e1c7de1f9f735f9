"""Trigger rules: cron schedules and event conditions that run actions.

- :mod:`.conditions`: the condition DSL, compiled once per rule.
- :mod:`.cron`: cron expressions with time zones.
- :mod:`.types` / :mod:`.actions`: the trigger types and actions plugins register.
- :mod:`.rules`: :func:`validate_trigger_rule`, the apply-time check (field-level errors).
- :mod:`.service`: :class:`TriggerService`, which fires the rules.

Submodules load on first use, so the CLI's ``trigger`` command group costs nothing at start-up.
"""

from typing import Any

__all__ = ["CompiledRule", "compile_rule", "validate_trigger_rule"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from flowdapt.triggers import rules

        return getattr(rules, name)
    raise AttributeError(f"module 'flowdapt.triggers' has no attribute {name!r}")
