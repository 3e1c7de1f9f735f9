"""Plugin entry point: ships the nowcast workflows, their config and trigger rules.

Applied on request: ``flowdapt plugin install flowdapt-nowcast-example --include-definitions``.
"""

from __future__ import annotations

from importlib.resources import files

from flowdapt.hookspecs import hookimpl


@hookimpl
def flowdapt_resource_definitions():
    return [files(__package__) / "definitions"]
