"""``flowdapt.lib.utils.misc``: the original's helpers that plugins and flowml call."""

from __future__ import annotations

import importlib
import random
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "dict_to_list_string",
    "flatten_list",
    "generate_name",
    "generate_uuid",
    "get_full_path_type",
    "import_from_string",
    "is_valid_uuid",
]

_import_cache: dict[str, Any] = {}


def import_from_string(path: str, is_module: bool = False, use_cache: bool = False) -> Any:
    """The attribute ``path`` names (``"package.module.Name"``), or the module with ``is_module``.

    As in the original, the module is reloaded on each call unless ``use_cache`` returns the
    object found the first time; a bad path raises ``ImportError``.
    """
    if use_cache and path in _import_cache:
        return _import_cache[path]
    module_path, _, attribute = path.strip().rpartition(".") if not is_module else (path.strip(), "", "")
    if not module_path:
        raise ImportError(f"{path} isn't a valid module path.")
    module = importlib.reload(importlib.import_module(module_path))
    if is_module:
        found: Any = module
    else:
        try:
            found = getattr(module, attribute)
        except AttributeError:
            raise ImportError(f"Module {module_path} does not have a `{attribute}` attribute") from None
    if use_cache:
        _import_cache[path] = found
    return found


# Readable, inoffensive words for generated names (run names, model names).
_ADJECTIVES = (
    "able", "agile", "amber", "ancient", "bold", "brave", "bright", "brisk", "calm", "clever", "cobalt",
    "cosmic", "crimson", "curious", "daring", "eager", "early", "electric", "elegant", "emerald", "epic",
    "fair", "fearless", "fluent", "gentle", "gifted", "golden", "graceful", "grand", "happy", "hidden",
    "honest", "humble", "icy", "jolly", "keen", "kind", "lively", "lucky", "lunar", "magnetic", "mellow",
    "merry", "mighty", "misty", "modest", "noble", "nimble", "olive", "patient", "polar", "proud", "quick",
    "quiet", "radiant", "rapid", "rare", "red", "rustic", "sandy", "serene", "sharp", "shiny", "silent",
    "silver", "simple", "smart", "snowy", "solar", "spry", "steady", "stellar", "stormy", "sunny", "swift",
    "tidy", "tranquil", "true", "vast", "velvet", "vivid", "warm", "wise", "witty", "young", "zesty",
)
_NOUNS = (
    "albatross", "antelope", "aurora", "badger", "beacon", "bison", "canyon", "cedar", "cheetah", "comet",
    "condor", "coral", "crane", "delta", "dolphin", "dune", "eagle", "ember", "falcon", "fern", "finch",
    "fjord", "forest", "fox", "galaxy", "gazelle", "geyser", "glacier", "harbor", "hawk", "heron", "horizon",
    "ibis", "iris", "jaguar", "kestrel", "koala", "lagoon", "lark", "lemur", "lynx", "maple", "meadow",
    "meteor", "nebula", "ocelot", "orca", "osprey", "otter", "owl", "panda", "pebble", "pelican", "pine",
    "planet", "quasar", "raven", "reef", "river", "robin", "sequoia", "sparrow", "spruce", "summit", "swan",
    "thunder", "tiger", "tundra", "valley", "walrus", "willow", "wolf", "wren", "yak", "zebra",
)


def generate_name(size: int = 2) -> str:
    """A random readable name of ``size`` words joined by ``-``: adjectives, then a noun."""
    size = max(1, int(size))
    words = [random.choice(_ADJECTIVES) for _ in range(size - 1)] + [random.choice(_NOUNS)]
    return "-".join(words)


def generate_uuid() -> str:
    return str(uuid.uuid4())


def is_valid_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def dict_to_list_string(d: Mapping[str, Any]) -> tuple[list[str], str]:
    """The dict's truthy values as strings, and the same joined by ``_`` (for file names)."""
    values = [str(value) for value in d.values() if value]
    return values, "_".join(values)


def flatten_list(items: Iterable[Any]) -> list[Any]:
    """Nested lists flattened into one list, in order."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, list):
            out.extend(flatten_list(item))
        else:
            out.append(item)
    return out


def get_full_path_type(obj: Any) -> str:
    """``module.QualName`` of the object's type."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"
