"""Bounded parsing of resource documents (YAML and JSON), for the API and for files.

Three things an attacker can send in a few hundred bytes are refused here, before anything is
built from the text:

- a YAML alias bomb ("billion laughs"): the composed node graph is small but expands
  exponentially; its expanded size is counted on the graph (linear time) and refused over
  ``max_nodes``; a recursive alias is refused outright;
- nesting deeper than ``max_depth`` (YAML or JSON), which other layers (JSON encoders, the store)
  cannot handle;
- duplicate mapping keys, which YAML would resolve silently (last wins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from flowdapt.errors import ValidationError

#: libyaml's parser when available: fast, and bounded in its own nesting (no Python recursion).
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class ParseLimits:
    """See ``api.max_document_nodes`` and ``api.max_document_depth`` in the settings."""

    max_nodes: int = 100_000
    max_depth: int = 64


DEFAULT_LIMITS = ParseLimits()


class DocumentTooComplexError(ValidationError):
    """A body over a parsing limit: refused before it is built."""

    status_code = 400


class DocumentSyntaxError(ValidationError):
    """Text that is not valid YAML/JSON; ``reason`` is the parser's message."""

    def __init__(self, what: str, language: str, reason: str):
        self.reason = reason
        super().__init__(f"{what} is not valid {language}: {reason}")


class _StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader that refuses duplicate keys (naming the key and line)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=False)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base constructor reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _measure(root: yaml.Node, limits: ParseLimits, what: str) -> None:
    """Expanded node count and depth of a composed graph, each node visited once."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    in_progress: set[int] = set()
    # Iterative post-order walk: (node, children pushed?)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if not expanded:
            if key in size:
                continue
            if key in in_progress:
                raise DocumentTooComplexError(f"{what}: a YAML alias refers to its own anchor (a recursive document)")
            in_progress.add(key)
            stack.append((node, True))
            for child in _children(node):
                if id(child) in in_progress:
                    raise DocumentTooComplexError(f"{what}: a YAML alias refers to its own anchor (a recursive document)")
                if id(child) not in size:
                    stack.append((child, False))
            continue
        in_progress.discard(key)
        children = _children(node)
        total = 1 + sum(size[id(c)] for c in children)
        deepest = 1 + max((depth[id(c)] for c in children), default=0)
        if total > limits.max_nodes:
            raise DocumentTooComplexError(
                f"{what} expands to more than {limits.max_nodes} values (YAML aliases, the value at "
                f"line {node.start_mark.line + 1}); refused (api.max_document_nodes)"
            )
        if deepest > limits.max_depth + 1:
            raise DocumentTooComplexError(
                f"{what} is nested more than {limits.max_depth} levels deep (the value at line "
                f"{node.start_mark.line + 1}); refused (api.max_document_depth)"
            )
        size[key] = total
        depth[key] = deepest


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_yaml_all(text: str | bytes, *, limits: ParseLimits = DEFAULT_LIMITS, what: str = "the document") -> list[Any]:
    """Every document of a YAML stream, within the limits. Raises ValidationError (400)."""
    loader = _StrictLoader(text)
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _measure(node, limits, what)
            docs.append(loader.construct_document(node))
    except yaml.YAMLError as exc:
        raise DocumentSyntaxError(what, "YAML", str(exc)) from None
    except RecursionError:
        raise DocumentTooComplexError(
            f"{what} is nested more than {limits.max_depth} levels deep; refused (api.max_document_depth)"
        ) from None
    finally:
        loader.dispose()
    return docs


def load_yaml(text: str | bytes, *, limits: ParseLimits = DEFAULT_LIMITS, what: str = "the document") -> Any:
    """One YAML document (None when empty); more than one is an error."""
    docs = load_yaml_all(text, limits=limits, what=what)
    if len(docs) > 1:
        raise ValidationError(f"{what} holds {len(docs)} YAML documents; send one")
    return docs[0] if docs else None


def load_json(raw: str | bytes, *, limits: ParseLimits = DEFAULT_LIMITS, what: str = "the document") -> Any:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc).lower() or "recursion" in str(exc).lower():
            raise DocumentTooComplexError(
                f"{what} is nested more than {limits.max_depth} levels deep; refused (api.max_document_depth)"
            ) from None
        raise DocumentSyntaxError(what, "JSON", str(exc)) from None
    check_depth(data, limits.max_depth, what)
    return data


def check_depth(data: Any, max_depth: int, what: str = "the document") -> None:
    """Refuse values nested deeper than ``max_depth`` mappings/lists (iterative: no recursion)."""
    if not isinstance(data, dict | list):
        return
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, level = stack.pop()
        if level > max_depth:
            raise DocumentTooComplexError(
                f"{what} is nested more than {max_depth} levels deep (at {_path_to_depth(data, max_depth)}); "
                "refused (api.max_document_depth)"
            )
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, level + 1))


def _path_to_depth(data: Any, max_depth: int) -> str:
    """The dotted path of the first value nested deeper than ``max_depth`` (for the message:
    the field to fix, e.g. ``spec.data.a.b...``). One depth-first walk, only when the check failed."""
    path: list[str] = []
    iterators = [_items(data)]
    while iterators:
        step = next(iterators[-1], None)
        if step is None:
            iterators.pop()
            if path:
                path.pop()
            continue
        key, child = step
        if isinstance(child, dict | list):
            path.append(key)
            if len(iterators) >= max_depth:
                break
            iterators.append(_items(child))
    shown = path[:6]
    text = ".".join(shown).replace(".[", "[")
    return text + ("..." if len(path) > len(shown) else "")


def _items(value: Any):
    if isinstance(value, dict):
        return ((str(k), v) for k, v in value.items())
    return ((f"[{i}]", v) for i, v in enumerate(value))
