"""Read resources from YAML/JSON text, files and folders, with errors that name resource and field."""

from __future__ import annotations

import os
import string
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from flowdapt.errors import ValidationError
from flowdapt.resources import KINDS
from flowdapt.resources.base import Resource
from flowdapt.resources.parsing import (
    DEFAULT_LIMITS,
    DocumentSyntaxError,
    ParseLimits,
    load_json,
    load_yaml_all,
)

RESOURCE_SUFFIXES = (".yaml", ".yml", ".json")

#: Plural and short forms accepted wherever a kind is named (CLI, files).
KIND_ALIASES: dict[str, str] = {
    "workflow": "workflow",
    "workflows": "workflow",
    "wf": "workflow",
    "config": "config",
    "configs": "config",
    "trigger_rule": "trigger_rule",
    "trigger_rules": "trigger_rule",
    "trigger": "trigger_rule",
    "triggers": "trigger_rule",
}


def normalize_kind(kind: Any, *, resource: str | None = None) -> str:
    if not isinstance(kind, str) or kind.lower() not in KIND_ALIASES:
        raise ValidationError(
            f"unknown kind {kind!r} (expected one of: {', '.join(KINDS)})", resource=resource, field="kind"
        )
    return KIND_ALIASES[kind.lower()]


def format_pydantic_error(exc: PydanticValidationError, *, resource: str | None = None) -> ValidationError:
    """One ValidationError naming the first failing field, listing the rest."""
    errors = exc.errors()
    parts = []
    for err in errors:
        loc = format_loc(err["loc"])
        msg = err["msg"]
        if err.get("type") == "missing":
            msg = "field required"
        parts.append(f"{loc}: {msg}" if loc else msg)
    first_loc = format_loc(errors[0]["loc"]) if errors else None
    error = ValidationError("; ".join(parts), resource=resource)
    error.field = first_loc
    return error


def format_loc(loc: Iterable[Any]) -> str:
    """A pydantic error location as a field path: ``spec.stages[0].options.retries``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def describe(data: Mapping[str, Any], default_kind: str | None = None) -> str:
    kind = data.get("kind", default_kind) or "resource"
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return f"{kind}/{name}" if name else str(kind)


def parse_resource(data: Any, *, kind: str | None = None, source: str | None = None) -> Resource:
    """Validate one resource mapping. ``kind`` forces (and checks) the kind, as an endpoint does."""
    where = source or "resource"
    if not isinstance(data, Mapping):
        raise ValidationError(f"a resource must be a mapping with kind, metadata and spec, got {type(data).__name__}", resource=where)
    data = dict(data)
    data.pop("version", None)  # flowctl files may carry `version: v1alpha1`
    label = describe(data, kind)
    if source:
        label = f"{source}: {label}"
    given = data.get("kind")
    if kind is not None:
        expected = normalize_kind(kind)
        if given is not None and normalize_kind(given, resource=label) != expected:
            raise ValidationError(f"expected kind {expected!r}, got {given!r}", resource=label, field="kind")
        data["kind"] = expected
    else:
        if given is None:
            raise ValidationError("field required", resource=label, field="kind")
        data["kind"] = normalize_kind(given, resource=label)
    model = KINDS[data["kind"]]
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise format_pydantic_error(exc, resource=label) from None


def substitute_env(text: str, env: Mapping[str, str] | None = None) -> str:
    """``$VAR`` / ``${VAR}`` from the environment; unknown names are left as they are."""
    return string.Template(text).safe_substitute(env if env is not None else os.environ)


def load_documents(
    text: str, *, source: str = "<text>", env: bool = True, limits: ParseLimits = DEFAULT_LIMITS
) -> list[dict[str, Any]]:
    """Every document of a YAML (or JSON) text, skipping empty ones. Bounded like API bodies."""
    if env:
        text = substitute_env(text)
    try:
        if source.endswith(".json"):
            docs = [load_json(text, limits=limits, what=source)]
        else:
            docs = load_yaml_all(text, limits=limits, what=source)
    except DocumentSyntaxError as exc:
        raise ValidationError(f"not valid YAML/JSON: {exc.reason}", resource=source) from None
    out = []
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, list):  # a JSON/YAML list of resources
            out.extend(doc)
        else:
            out.append(doc)
    return out


def read_text(path: Path) -> str:
    """A resource file's text; a file that is not UTF-8 is a ValidationError naming it."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"not a UTF-8 text file (byte {exc.start}: {exc.reason}); save it as UTF-8", resource=str(path)
        ) from None
    except OSError as exc:
        raise ValidationError(f"cannot read: {exc.strerror or exc}", resource=str(path)) from None


def iter_resource_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in RESOURCE_SUFFIXES and p.is_file())
        elif path.exists():
            yield path
        else:
            raise ValidationError("no such file or directory", resource=str(path))


def load_resources(paths: Iterable[str | Path]) -> list[Resource]:
    """Parse every resource in the given files/folders. All are validated before any is returned."""
    resources: list[Resource] = []
    for path in iter_resource_files(paths):
        for doc in load_documents(read_text(path), source=str(path)):
            resources.append(parse_resource(doc, source=str(path)))
    return resources
