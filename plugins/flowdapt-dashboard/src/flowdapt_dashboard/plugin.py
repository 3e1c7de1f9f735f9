"""The ``dashboard`` plugin: mounts the web dashboard on the API server at ``/ui``."""

from __future__ import annotations

from flowdapt.hookspecs import hookimpl
from flowdapt_dashboard.routes import create_router


@hookimpl
def flowdapt_api_routers():
    return [create_router()]
