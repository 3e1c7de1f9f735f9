"""Loop protection: a rule that fires from its own chain (its action led, through runs and events,
back to itself) more than ``triggers.loop_max_fires`` times in ``triggers.loop_window`` seconds is
held back until the window has room again."""

from __future__ import annotations

from flowdapt.builtin.triggers.rule_state import RuleState


def admit(state: RuleState, chain: list[str], now: float, window: float, max_fires: int) -> tuple[bool, str | None]:
    """Whether ``state`` may fire for an event whose trigger chain is ``chain``, at ``now`` (epoch
    seconds). The message is set only when the rule has just become rate limited: report it once."""
    if state.name not in chain:
        return True, None
    cyclic = state.cyclic
    while cyclic and cyclic[0] <= now - window:
        cyclic.popleft()
    if len(cyclic) < max_fires:
        cyclic.append(now)
        state.rate_limited = False
        return True, None
    if state.rate_limited:
        return False, None
    state.rate_limited = True
    message = (
        f"rule {state.name!r} triggers itself (chain: {' -> '.join(chain + [state.name])}) and fired "
        f"{len(cyclic)} times in {window:g}s; further firings from this loop are held back"
    )
    state.last_error = message
    return False, message
