"""The module the `flowdapt.plugins` entry point names: the hooks this plugin implements.

See the hooks reference of Flowdapt's docs (docs/hooks.md) for every hook a plugin can implement:
executors, stage types, stores, event buses, trigger types, actions, API routers, CLI commands,
lifecycle hooks. This template implements one: the resources it ships.
"""

from __future__ import annotations

from importlib.resources import files

from flowdapt.hookspecs import hookimpl


@hookimpl
def flowdapt_resource_definitions():
    """The workflows, configs and trigger rules under definitions/, applied on request with
    `flowdapt plugin install {{ cookiecutter.__distribution_name }} --include-definitions`."""
    return [files(__package__) / "definitions"]
