"""Resources that plugins ship: what ``flowdapt_resource_definitions`` hooks return, parsed.

A plugin's hook returns a list whose items are resource mappings, YAML/JSON texts, or paths
(``pathlib.Path``, ``importlib.resources`` files, or strings ending in ``.yaml/.yml/.json``) of a
file or of a folder that is read recursively. Every resource is validated before any is returned,
so a plugin with one bad file applies nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowdapt.errors import ValidationError
from flowdapt.resources.base import Resource
from flowdapt.resources.loader import RESOURCE_SUFFIXES, load_documents, parse_resource

HOOK_NAME = "flowdapt_resource_definitions"


@dataclass(frozen=True)
class PluginDefinition:
    """One resource a plugin ships, with where it came from."""

    plugin: str
    resource: Resource
    source: str

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def name(self) -> str:
        return self.resource.metadata.name


def _is_path_like(item: Any) -> bool:
    if isinstance(item, Path):
        return True
    # importlib.resources Traversable (files inside an installed or zipped package)
    return hasattr(item, "read_text") and hasattr(item, "is_dir") and hasattr(item, "iterdir")


def _walk(item: Any) -> Iterator[Any]:
    """Resource files under a path or Traversable, sorted, recursively."""
    if item.is_dir():
        for child in sorted(item.iterdir(), key=lambda c: c.name):
            yield from _walk(child)
    elif any(item.name.endswith(suffix) for suffix in RESOURCE_SUFFIXES):
        yield item


def parse_definition_items(items: Iterable[Any], *, plugin: str) -> list[PluginDefinition]:
    """Parse what one plugin's hook returned. Raises ValidationError naming the plugin and file."""
    out: list[PluginDefinition] = []
    for index, item in enumerate(items or []):
        where = f"plugin {plugin!r}"
        if isinstance(item, Resource):
            out.append(PluginDefinition(plugin, item, f"{where}[{index}]"))
            continue
        if isinstance(item, Mapping):
            out.append(PluginDefinition(plugin, parse_resource(item, source=f"{where}[{index}]"), f"{where}[{index}]"))
            continue
        if isinstance(item, str) and "\n" not in item and item.endswith(RESOURCE_SUFFIXES):
            item = Path(item)
        if _is_path_like(item):
            if isinstance(item, Path) and not item.exists():
                raise ValidationError(f"{where} lists a definitions file that does not exist", resource=str(item))
            for file in _walk(item):
                source = f"{where}: {file}"
                for doc in load_documents(file.read_text(), source=str(file.name)):
                    out.append(PluginDefinition(plugin, parse_resource(doc, source=source), source))
            continue
        if isinstance(item, str):
            for doc in load_documents(item, source=f"{where}[{index}]"):
                out.append(PluginDefinition(plugin, parse_resource(doc, source=f"{where}[{index}]"), f"{where}[{index}]"))
            continue
        raise ValidationError(
            f"{where}: {HOOK_NAME} returned a {type(item).__name__}; expected a resource mapping, "
            "a YAML text or a path"
        )
    return out


def collect_definitions(plugin_system, plugins: Iterable[str] | None = None) -> list[PluginDefinition]:
    """Resources shipped by the loaded plugins (or only those named in ``plugins``).

    Raises ValidationError if a named plugin is unknown or not loaded, or a definition is invalid.
    """
    wanted = set(plugins) if plugins is not None else None
    if wanted is not None:
        for name in sorted(wanted):
            info = plugin_system.plugins.get(name)
            if info is None:
                raise ValidationError(f"no plugin named {name!r} is installed (see `flowdapt plugin list`)")
            if not info.loaded:
                why = info.error or "it is disabled"
                raise ValidationError(f"plugin {name!r} is not loaded: {why}")
    out: list[PluginDefinition] = []
    caller = getattr(plugin_system.hook, HOOK_NAME)
    for impl in reversed(caller.get_hookimpls()):  # pluggy lists them last-registered first
        name = plugin_system.manager.get_name(impl.plugin) or repr(impl.plugin)
        if wanted is not None and name not in wanted:
            continue
        try:
            items = impl.function()
        except Exception as exc:  # a plugin bug must name the plugin
            raise ValidationError(f"plugin {name!r}: {HOOK_NAME} raised {type(exc).__name__}: {exc}") from exc
        out.extend(parse_definition_items(items or [], plugin=name))
    return out


__all__ = ["HOOK_NAME", "PluginDefinition", "collect_definitions", "parse_definition_items"]
