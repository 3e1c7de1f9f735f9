"""Stage functions: plain Python, named in workflows by import path (`target`).

Flowdapt passes arguments by position and name, never by decorator:
- a root stage (no `depends_on`) receives the run input as keyword arguments, filtered to the
  parameters it declares;
- a dependent stage receives its dependencies' outputs as positional arguments, in `depends_on` order;
- a `parameterized` (map) stage is called once per item of its first dependency's output, and its
  output is the list of results, in item order. Items run in parallel on the executor's workers.
"""

from __future__ import annotations

from flowdapt import get_run_context


def make_numbers(count: int = 10) -> list[int]:
    """Root stage: `count` comes from the run input (`flowdapt exec ... --input count=5`)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return list(range(count))


def score(number: int) -> float:
    """Map stage: one call per number. `scale` comes from the config resources of this workflow."""
    scale = float(get_run_context().config.get("scale", 1.0))
    return number * number * scale


def summarize(scores: list[float]) -> dict[str, float]:
    """Sink stage: its output is the run's result."""
    total = float(sum(scores))
    return {"count": len(scores), "total": total, "mean": total / len(scores) if scores else 0.0}
