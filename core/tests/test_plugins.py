"""The plugin system: discovery, allow/deny lists, broken plugins, registries, option errors."""

from __future__ import annotations

import sys
import types

import pytest
from pydantic import BaseModel

from flowdapt.errors import ConfigurationError, PluginNotFoundError
from flowdapt.hookspecs import hookimpl
from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system


def make_module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    sys.modules[name] = module
    return module


def test_entry_points_find_the_builtins():
    system = create_plugin_system()
    for name, module in BUILTIN_PLUGINS:
        assert system.plugins[name].module == module
        assert system.plugins[name].loaded, system.plugins[name].error
        assert system.plugins[name].distribution == "flowdapt"
    assert "local" in system.names("executors")
    assert {"simple", "parameterized"} <= set(system.names("stage_types"))
    assert {"sqlite", "memory"} <= set(system.names("document_stores"))


def test_only_and_disabled_block_plugins_before_import(monkeypatch):
    import importlib.metadata as md

    imported = []

    class FakeEntryPoint:
        def __init__(self, name):
            self.name, self.value, self.dist = name, f"fake_{name}", None

        def load(self):
            imported.append(self.name)
            raise RuntimeError("must not be imported")

    real = md.entry_points
    monkeypatch.setattr(md, "entry_points", lambda group: [FakeEntryPoint("evil")] if group == "flowdapt.plugins" else real(group=group))
    system = create_plugin_system(disabled=["evil"])
    assert imported == [] and system.plugins["evil"].enabled is False
    system = create_plugin_system(only=["other"])
    assert imported == [] and system.plugins["evil"].enabled is False
    system = create_plugin_system()
    assert imported == ["evil"] and "RuntimeError: must not be imported" in system.plugins["evil"].error


def test_a_plugin_that_fails_to_import_is_reported_and_skipped():
    system = create_plugin_system(load_entry_points=False, plugins=[("broken", "flowdapt_no_such_module_xyz"), *BUILTIN_PLUGINS])
    assert "ModuleNotFoundError" in system.plugins["broken"].error
    assert system.names("executors") == ["local"]


def test_unknown_backend_names_the_package_to_install():
    system = create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))
    with pytest.raises(PluginNotFoundError, match="pip install flowdapt-ray"):
        system.get("executors", "ray")
    with pytest.raises(PluginNotFoundError, match=r"available: local"):
        system.get("executors", "nope")


def test_options_are_validated_by_the_plugins_model():
    system = create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))
    with pytest.raises(ConfigurationError, match=r"executor 'local' \(plugin 'local_executor'\): workers"):
        system.create("executors", "local", {"workers": 0})
    with pytest.raises(ConfigurationError, match="mode"):
        system.create("executors", "local", {"mode": "gpu"})
    executor = system.create("executors", "local", {"use_processes": False})
    assert executor.mode == "thread"


def test_third_party_registration_and_conflicts():
    class Opts(BaseModel):
        level: int = 1

    @hookimpl
    def flowdapt_register_executors(register):
        register("custom", lambda options, settings=None: ("custom", options.level), Opts)

    mod = make_module("fd_test_custom_exec", flowdapt_register_executors=flowdapt_register_executors)
    system = create_plugin_system(load_entry_points=False, plugins=[mod])
    assert system.create("executors", "custom", {"level": 3}) == ("custom", 3)
    assert system.plugins["fd_test_custom_exec"].hooks == ["flowdapt_register_executors"]

    @hookimpl
    def flowdapt_register_executors_dup(register):
        register("custom", lambda options, settings=None: None)

    dup = make_module("fd_test_dup", flowdapt_register_executors=flowdapt_register_executors_dup)
    system = create_plugin_system(load_entry_points=False, plugins=[mod, dup])
    with pytest.raises(ConfigurationError, match="registered by both"):
        _ = system.registries


def test_bad_registration_is_refused():
    @hookimpl
    def flowdapt_register_actions(register):
        register("bad name!", print)

    mod = make_module("fd_test_bad_reg", flowdapt_register_actions=flowdapt_register_actions)
    system = create_plugin_system(load_entry_points=False, plugins=[mod])
    with pytest.raises(ConfigurationError, match="invalid name"):
        _ = system.registries


def test_a_hook_that_raises_marks_the_plugin_broken_but_others_work():
    @hookimpl
    def flowdapt_register_executors(register):
        raise RuntimeError("kaput")

    mod = make_module("fd_test_raiser", flowdapt_register_executors=flowdapt_register_executors)
    system = create_plugin_system(load_entry_points=False, plugins=[mod, *BUILTIN_PLUGINS])
    assert system.names("executors") == ["local"]
    assert "kaput" in system.plugins["fd_test_raiser"].error


def test_unknown_hook_name_is_reported():
    @hookimpl
    def flowdapt_register_executorz(register):
        pass

    mod = make_module("fd_test_typo", flowdapt_register_executorz=flowdapt_register_executorz)
    system = create_plugin_system(load_entry_points=False, plugins=[mod, *BUILTIN_PLUGINS])
    assert "flowdapt_register_executorz" in (system.plugins["fd_test_typo"].error or "")
