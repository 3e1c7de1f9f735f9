"""The ``trigger_rule`` resource: run an action on a cron schedule or when an event matches."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from flowdapt.resources.base import Resource


class TriggerAction(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    target: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("parameters", "params")
    )


class TriggerRuleSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str = "condition"
    rule: dict[str, Any] | list[str] | str
    action: TriggerAction
    #: Schedule options (ours): IANA time zone of the cron expressions, and what to do after downtime.
    timezone: str | None = None
    misfire: Literal["skip", "fire_once"] = "fire_once"


class TriggerRule(Resource):
    kind: Literal["trigger_rule"] = "trigger_rule"
    spec: TriggerRuleSpec
