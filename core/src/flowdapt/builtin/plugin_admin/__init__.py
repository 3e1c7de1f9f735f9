"""Built-in plugin: install and uninstall plugins on a running server.

``POST /plugin/install`` and ``POST /plugin/uninstall`` change the server's environment (uv pip,
else pip), rebuild its plugin system, have the executor replace its workers
(:meth:`Executor.reload_code`) and, on request, apply the resources the plugin ships. Runs in
flight finish on the code they started with; new runs use the new code. No restart.

Installing code is running code, so these endpoints refuse to work unless the server has an API
token configured (``api.token``/``api.tokens``), whatever address it listens on.
"""

from __future__ import annotations

from flowdapt.hookspecs import hookimpl


@hookimpl
def flowdapt_api_routers():
    # FastAPI loads with the router, so a CLI that never serves never imports it.
    from flowdapt.builtin.plugin_admin.routes import router

    return [router]
