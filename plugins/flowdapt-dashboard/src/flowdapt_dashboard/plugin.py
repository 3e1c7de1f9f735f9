"""The ``dashboard`` plugin: mounts the web dashboard on the API server at ``/ui``."""

from __future__ import annotations

from flowdapt.hookspecs import hookimpl


@hookimpl
def flowdapt_api_routers():
    # Imported here, not at module level: every `flowdapt` command loads plugins, and only the
    # server needs FastAPI.
    from flowdapt_dashboard.routes import create_router

    return [create_router()]
