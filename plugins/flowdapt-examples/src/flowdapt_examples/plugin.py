"""Plugin entry point: ships the example workflow and its config as resource definitions."""

from __future__ import annotations

from importlib.resources import files

from flowdapt.hookspecs import hookimpl


@hookimpl
def flowdapt_resource_definitions():
    return [files("flowdapt_examples").joinpath("nowcast.yaml").read_text()]
