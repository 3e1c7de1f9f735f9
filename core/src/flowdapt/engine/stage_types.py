"""Stage types decide how a stage's function is called: once, or once per item of a list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StageOptions(BaseModel):
    """Options every stage type understands."""

    model_config = ConfigDict(extra="forbid")

    retries: int = Field(default=0, ge=0, description="extra attempts after a failed call")
    retry_delay: float = Field(default=0.0, ge=0, description="seconds between attempts")
    timeout: float | None = Field(default=None, gt=0, description="seconds one call may run")


class MapStageOptions(StageOptions):
    """Options of stages that call their function once per item."""

    map_on: str | None = Field(default=None, description="input key holding the list to map over")
    allow_partial_failure: bool = Field(
        default=False, description="keep going when items fail (failures are recorded on the run)"
    )
    chunk_size: int | None = Field(default=None, ge=1, description="items per task (default: sized from workers)")


@dataclass(frozen=True)
class StageType:
    """A stage type: ``maps`` says whether the function is called once per item."""

    name: str
    maps: bool
    options_model: type[BaseModel] = StageOptions

    def parse_options(self, options: dict[str, Any]) -> BaseModel:
        return self.options_model.model_validate(options or {})
