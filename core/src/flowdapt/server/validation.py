"""Apply-time checks: a resource is stored only when it could run. Nothing is written on error."""

from __future__ import annotations

from flowdapt.engine.prepare import check_run_input, compile_checked
from flowdapt.plugins import PluginSystem
from flowdapt.resources.base import Resource
from flowdapt.resources.workflow import Workflow
from flowdapt.settings import Settings

__all__ = ["check_run_input", "compile_checked", "validate_resource"]


def validate_resource(resource: Resource, settings: Settings, plugins: PluginSystem) -> None:
    if isinstance(resource, Workflow):
        compile_checked(resource, settings, plugins)
        return
    # Every other kind is checked by the plugins that own it (the built-in triggers plugin checks
    # trigger rules); the parsed resource already passed its schema.
    plugins.hook.flowdapt_validate_resource(resource=resource, plugins=plugins)
