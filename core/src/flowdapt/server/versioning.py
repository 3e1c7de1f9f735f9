"""``X-API-Version`` / ``Accept`` negotiation, as the original API does it, minus its 500s.

A client names the version of a resource type either with ``X-API-Version: <type>.<version>``
or with ``Accept: application/vnd.flowdapt.ai.<type>.<version>+json[; q=x]``. Neither present:
the latest version. ``flowdapt-sdk`` writes ``vnd.flowdapt.<type>`` (no ``.ai``) in Accept for
some types; that form is accepted too.
"""

from __future__ import annotations

import re
from functools import lru_cache

from flowdapt.errors import FlowdaptError

API_VERSION = "v1"

#: Resource type -> supported DTO versions, oldest first (the last is the latest).
SUPPORTED_VERSIONS: dict[str, tuple[str, ...]] = {
    "workflow": ("v1alpha1",),
    "workflow_run": ("v1alpha1",),
    "config": ("v1alpha1",),
    "trigger_rule": ("v1alpha1",),
    "system": ("v1alpha1",),
    "plugin": ("v1alpha1",),
    "plugin.files": ("v1alpha1",),
    "metrics": ("v1alpha1",),
    "run_list": ("v1alpha1",),
}

_VERSION = r"(v\d+(?:alpha\d+|beta\d+|\.\d+)?)"


class BadVersionError(FlowdaptError):
    status_code = 400


@lru_cache(maxsize=64)
def _header_re(resource_type: str) -> re.Pattern[str]:
    return re.compile(re.escape(resource_type) + r"\." + _VERSION + r"$")


@lru_cache(maxsize=64)
def _accept_re(resource_type: str) -> re.Pattern[str]:
    return re.compile(r"application/vnd\.flowdapt(?:\.ai)?\." + re.escape(resource_type) + r"\." + _VERSION + r"\+json")


def _accept_versions(accept: str, resource_type: str) -> list[str]:
    """Versions named in an Accept header for this type, best quality first."""
    pattern = _accept_re(resource_type)
    found: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        match = pattern.fullmatch(media)
        if not match:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        found.append((-quality, position, match.group(1)))
    return [version for _, _, version in sorted(found)]


def negotiate(
    resource_type: str,
    header: str | None,
    accept: str | None,
    supported: tuple[str, ...] | None = None,
) -> str:
    """The DTO version to use, or BadVersionError (400) naming what was asked and what exists."""
    supported = supported or SUPPORTED_VERSIONS[resource_type]
    if header:
        match = _header_re(resource_type).match(header.strip())
        if not match:
            raise BadVersionError(
                f"Invalid API version header {header!r}: expected '{resource_type}.<version>', "
                f"e.g. '{resource_type}.{supported[-1]}'"
            )
        version = match.group(1)
        if version not in supported:
            raise BadVersionError(
                f"Unsupported API Versions requested {{{version!r}}} for {resource_type}; "
                f"supported: {', '.join(supported)}"
            )
        return version
    if accept and "vnd.flowdapt" in accept:
        requested = _accept_versions(accept, resource_type)
        for version in requested:
            if version in supported:
                return version
        if requested:
            raise BadVersionError(
                f"Unsupported API Versions requested {set(requested)} for {resource_type}; "
                f"supported: {', '.join(supported)}"
            )
    return supported[-1]


def content_type(resource_type: str, version: str) -> str:
    return f"application/vnd.flowdapt.ai.{resource_type}.{version}+json"
