"""``X-API-Version`` / ``Accept`` negotiation, as the original API does it, minus its 500s.

A client names the version of a resource type either with ``X-API-Version: <type>.<version>``
or with ``Accept: application/vnd.flowdapt.ai.<type>.<version>+json[; q=x]``. Neither present:
the latest version. ``flowdapt-sdk`` writes ``vnd.flowdapt.<type>`` (no ``.ai``) in Accept for
some types; that form is accepted too.

``v1alpha1`` is the original's schema, which its clients (flowctl, flowdapt-sdk, the TypeScript
SDK and the dashboard built on it) validate strictly: the TypeScript SDK throws on an enum value it
does not know. Where our documents carry values that schema lacks, a newer version (the default)
carries them and a *downgrade* registered with :func:`downgrade` turns our document into one the
older schema accepts (:func:`render`), so every route answers through the same mechanism.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from flowdapt.errors import FlowdaptError

API_VERSION = "v1"

#: Resource type -> supported DTO versions, oldest first (the last is the latest).
SUPPORTED_VERSIONS: dict[str, tuple[str, ...]] = {
    "workflow": ("v1alpha1",),
    # v1alpha2: our run record as is (state ``cancelled``); v1alpha1 reads a cancelled run as failed.
    "workflow_run": ("v1alpha1", "v1alpha2"),
    # v1alpha2 (also the SDK's name for create with an ignored ``spec.new``): ``selector`` may be null;
    # v1alpha1 readers (the TypeScript SDK) require an object.
    "config": ("v1alpha1", "v1alpha2"),
    "trigger_rule": ("v1alpha1",),
    # v1alpha2: the executor's dashboard_url with its scheme; v1alpha1: without (the original's
    # dashboard prefixes "http://" to what Ray reported, "127.0.0.1:8265").
    "system": ("v1alpha1", "v1alpha2"),
    # v1alpha2: ``name`` is the plugin's entry-point name; v1alpha1: the distribution's, as the original.
    "plugin": ("v1alpha1", "v1alpha2"),
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


Downgrade = Callable[[dict[str, Any]], dict[str, Any]]
_DOWNGRADES: dict[tuple[str, str], Downgrade] = {}


def downgrade(resource_type: str, version: str) -> Callable[[Downgrade], Downgrade]:
    """Register how one document of ``resource_type`` is shown to a client of ``version``.

    The function gets our (latest) document as plain JSON data and returns the document that
    version's schema accepts; it must not change its argument (documents may be cached).
    """

    def register(function: Downgrade) -> Downgrade:
        _DOWNGRADES[(resource_type, version)] = function
        return function

    return register


def has_downgrade(resource_type: str, version: str) -> bool:
    return (resource_type, version) in _DOWNGRADES


def render(resource_type: str, version: str, document: Any) -> Any:
    """``document`` (or each document of a list) as ``version`` of ``resource_type`` shows it."""
    function = _DOWNGRADES.get((resource_type, version))
    if function is None:
        return document
    if isinstance(document, list):
        return [function(item) if isinstance(item, dict) else item for item in document]
    return function(document) if isinstance(document, dict) else document


# -- what v1alpha1 clients cannot read ------------------------------------------------------

#: Run states the original's schema knows (flowdapt-ts-sdk: z.enum of these four).
V1ALPHA1_RUN_STATES = frozenset({"pending", "running", "finished", "failed"})


@downgrade("workflow_run", "v1alpha1")
def _run_v1alpha1(run: dict[str, Any]) -> dict[str, Any]:
    """A cancelled run reads as failed, with the cancellation as its ``[type, message]`` result."""
    state = run.get("state")
    if state in V1ALPHA1_RUN_STATES:
        return run
    error = run.get("error") or {}
    shown = {**run, "state": "failed"}
    result = run.get("result")
    if not (isinstance(result, list) and len(result) == 2 and all(isinstance(x, str) for x in result)):
        shown["result"] = [error.get("type") or "RunCancelledError", error.get("message") or f"run {state}"]
    return shown


@downgrade("config", "v1alpha1")
def _config_v1alpha1(config: dict[str, Any]) -> dict[str, Any]:
    """No selector reads as a name selector with no value: it selects nothing either way."""
    spec = config.get("spec")
    if not isinstance(spec, dict) or spec.get("selector") is not None:
        return config
    return {**config, "spec": {**spec, "selector": {"kind": None, "type": "name", "value": None}}}


@downgrade("system", "v1alpha1")
def _system_v1alpha1(status: dict[str, Any]) -> dict[str, Any]:
    """``dashboard_url`` as Ray reported it to the original (host:port, no scheme)."""
    compute = (status.get("services") or {}).get("ComputeService")
    environment = compute.get("environment") if isinstance(compute, dict) else None
    url = environment.get("dashboard_url") if isinstance(environment, dict) else None
    if not isinstance(url, str) or "://" not in url:
        return status
    environment = {**environment, "dashboard_url": url.split("://", 1)[1]}
    services = {**status["services"], "ComputeService": {**compute, "environment": environment}}
    return {**status, "services": services}
