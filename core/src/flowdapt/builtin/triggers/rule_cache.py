"""The trigger service's in-memory rules: compiled once when applied, found by uid or name, with
the condition rules kept in a tuple the event path walks without a lookup."""

from __future__ import annotations

import logging

from flowdapt.builtin.triggers.rule_state import LAST_RUN, RuleState
from flowdapt.builtin.triggers.rules import compile_rule
from flowdapt.errors import ValidationError
from flowdapt.resources.trigger import TriggerRule

log = logging.getLogger("flowdapt.triggers")


class RuleCache:
    def __init__(self, plugins):
        self.plugins = plugins
        self.rules: dict[str, RuleState] = {}
        self._by_name: dict[str, str] = {}
        #: The active condition rules, in cache order: what each event is evaluated against.
        self.conditions: tuple[RuleState, ...] = ()

    def upsert(self, rule: TriggerRule) -> tuple[RuleState, bool]:
        """Add or replace a rule; returns its state and whether it changed (an unchanged rule only
        takes a newer last fire). A rule that does not compile is kept, inactive, with its error."""
        uid = str(rule.metadata.uid)
        raw = rule.metadata.annotations.get(LAST_RUN)
        state = self.rules.get(uid)
        if state is not None and state.rule.metadata.updated_at == rule.metadata.updated_at and state.rule.spec == rule.spec:
            state.note_stored_last_run(raw)
            if state.name != rule.metadata.name:
                self._by_name.pop(state.name, None)
                self._by_name[rule.metadata.name] = uid
            state.rule = rule
            return state, False
        try:
            compiled = compile_rule(rule, self.plugins)
            error = None
        except ValidationError as exc:
            compiled, error = None, str(exc)
            log.warning("trigger rule %s is not active: %s", rule.metadata.name, exc)
        except Exception as exc:  # noqa: BLE001 - one unreadable rule never stops the others
            compiled, error = None, f"cannot be compiled: {type(exc).__name__}: {exc}"[:500]
            log.error("trigger rule %s is not active: %s", rule.metadata.name, error)
        new = RuleState(rule=rule, compiled=compiled, error=error)
        if state is not None:
            # Keep what this server knows: a PUT must not make a fired due time fire again.
            new.last_fire, new.last_raw, new.fires = state.last_fire, state.last_raw, state.fires
            new.cyclic, new.last_error = state.cyclic, state.last_error
            new.pending_history = state.pending_history
            new.history_raw, new.history_known = state.history_raw, state.history_known
            new.history_lock = state.history_lock
            self._by_name.pop(state.name, None)
        new.note_stored_last_run(raw)
        self.rules[uid] = new
        self._by_name[rule.metadata.name] = uid
        self._refresh()
        return new, True

    def remove(self, uid: str) -> bool:
        """Forget a rule; True when it was cached."""
        state = self.rules.pop(uid, None)
        if state is None:
            return False
        if self._by_name.get(state.name) == uid:
            self._by_name.pop(state.name, None)
        self._refresh()
        return True

    def _refresh(self) -> None:
        self.conditions = tuple(s for s in self.rules.values() if s.family == "condition")

    def find(self, identifier: str) -> RuleState | None:
        state = self.rules.get(identifier)
        if state is None:
            uid = self._by_name.get(identifier)
            state = self.rules.get(uid) if uid else None
        return state
