"""Plugin entry point: ships the ask workflow and its config.

Applied on request: ``flowdapt plugin install flowdapt-ask-example --include-definitions``.
"""

from __future__ import annotations

from importlib.resources import files

from flowdapt.hookspecs import hookimpl


@hookimpl
def flowdapt_resource_definitions():
    return [files(__package__) / "definitions"]
