"""Every hook spec is annotated with types that exist, and importing the specs stays cheap."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing

from flowdapt import hookspecs


def _specs():
    return [
        (name, fn)
        for name, fn in vars(hookspecs).items()
        if name.startswith("flowdapt_") and hasattr(fn, "flowdapt_spec")
    ]


def _type_checking_names() -> dict[str, object]:
    """What hookspecs imports under TYPE_CHECKING, imported for real."""
    from fastapi import APIRouter
    from pydantic import BaseModel
    from typer import Typer

    from flowdapt.plugins import PluginSystem
    from flowdapt.resources.base import Resource
    from flowdapt.resources.run import WorkflowRun
    from flowdapt.resources.workflow import Workflow
    from flowdapt.server.core import FlowdaptServer
    from flowdapt.settings import Settings
    from flowdapt.value_handlers import ValueHandler

    return {
        "APIRouter": APIRouter,
        "BaseModel": BaseModel,
        "Typer": Typer,
        "ValueHandler": ValueHandler,
        "WorkflowRun": WorkflowRun,
        "Workflow": Workflow,
        "FlowdaptServer": FlowdaptServer,
        "Settings": Settings,
        "Resource": Resource,
        "PluginSystem": PluginSystem,
    }


def test_every_parameter_and_return_of_every_hook_spec_is_annotated_with_a_real_type():
    names = _type_checking_names()
    specs = _specs()
    assert len(specs) >= 16
    for name, fn in specs:
        signature = inspect.signature(fn)
        assert signature.return_annotation is not inspect.Signature.empty, f"{name} has no return annotation"
        for param in signature.parameters.values():
            assert param.annotation is not inspect.Parameter.empty, f"{name}({param.name}) is not annotated"
        hints = typing.get_type_hints(fn, globalns=vars(hookspecs), localns=names)  # raises on a bad name
        assert set(hints) == {*signature.parameters, "return"}


def test_registration_hooks_take_the_register_protocol():
    names = _type_checking_names()
    for name, fn in _specs():
        if name.startswith("flowdapt_register_"):
            hint = typing.get_type_hints(fn, globalns=vars(hookspecs), localns=names)["register"]
            assert hint in (hookspecs.Register, hookspecs.RegisterArtifactHandler), name


def test_the_register_callback_the_core_hands_out_takes_the_protocols_arguments():
    import types

    from pydantic import BaseModel

    from flowdapt.plugins import create_plugin_system

    class Options(BaseModel):
        level: int = 1

    seen: list[object] = []
    plugin = types.ModuleType("typed_probe")

    @hookspecs.hookimpl
    def flowdapt_register_executors(register: hookspecs.Register) -> None:
        seen.append(register)
        register(name="probe", factory=lambda options, settings: options.level, options_model=Options)

    plugin.flowdapt_register_executors = flowdapt_register_executors
    system = create_plugin_system(load_entry_points=False, plugins=[plugin])
    assert system.create("executors", "probe", {"level": 3}, None) == 3
    protocol = inspect.signature(hookspecs.Register.__call__)
    callback = inspect.signature(seen[0])
    for param in list(protocol.parameters)[1:]:  # after self
        assert param in callback.parameters, f"register() lacks {param}"


def test_importing_the_hook_specs_loads_neither_the_server_nor_the_cli():
    code = (
        "import sys, flowdapt.hookspecs; "
        "print(sorted(m for m in ('fastapi', 'typer', 'flowdapt.server', 'flowdapt.cli.main') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
