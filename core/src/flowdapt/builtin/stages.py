"""Built-in stage types: ``simple`` (one call) and ``parameterized`` (one call per item)."""

from __future__ import annotations

from flowdapt.engine.stage_types import MapStageOptions, StageOptions, StageType
from flowdapt.hookspecs import hookimpl

SIMPLE = StageType("simple", maps=False, options_model=StageOptions)
PARAMETERIZED = StageType("parameterized", maps=True, options_model=MapStageOptions)


@hookimpl
def flowdapt_register_stage_types(register):
    register("simple", lambda: SIMPLE)
    register("parameterized", lambda: PARAMETERIZED)
