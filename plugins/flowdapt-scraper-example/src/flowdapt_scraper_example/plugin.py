"""Plugin entry point: ships the scraper workflows, their config and schedule.

Applied on request: ``flowdapt plugin install flowdapt-scraper-example --include-definitions``.
"""

from __future__ import annotations

from importlib.resources import files

from flowdapt.hookspecs import hookimpl


@hookimpl
def flowdapt_resource_definitions():
    return [files(__package__) / "definitions"]
