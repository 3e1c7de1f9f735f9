"""The ``config`` resource: live settings merged into the run context of the workflows it selects."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from flowdapt.resources.base import Resource


class ConfigSelector(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: str | None = None
    type: Literal["name", "annotation"] = "name"
    value: str | dict[str, str] | None = None


class ConfigSpec(BaseModel):
    # `new` (config.v1alpha2 of the SDK) is accepted and ignored.
    model_config = ConfigDict(extra="ignore")

    selector: ConfigSelector | None = None
    data: dict[str, Any]


class Config(Resource):
    kind: Literal["config"] = "config"
    spec: ConfigSpec
