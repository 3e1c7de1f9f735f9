"""Errors in a trigger rule, located by field so the API's 400 names where the problem is."""

from __future__ import annotations


class RuleError(ValueError):
    """A rule that cannot be compiled. ``field`` is a dotted path (``spec.rule.and[1].eq``)."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")
