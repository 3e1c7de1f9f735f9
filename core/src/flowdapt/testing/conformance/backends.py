"""Which backend a conformance suite runs against: a registry name, options and the plugins to load.

A :class:`Backend` is built from a spec string (the ``--flowdapt-executor``,
``--flowdapt-store``, ``--flowdapt-cluster-memory`` and ``--flowdapt-event-bus`` pytest options)
or directly in a plugin's tests. An event bus is picked by the scheme of ``event_bus.url``, so its
spec may be that URL (``nats://127.0.0.1:4222:prefix=t_{unique}``): the scheme is the name and the
URL goes into the ``event_bus.url`` setting the factory reads. The suites create every backend the way the server does, through the plugin registry
(``plugins.create(kind, name, options, settings)``), so the options are validated by the
plugin's own options model; nothing in the suites knows a backend by name.

Option values may hold two placeholders, expanded per test so that each test gets an empty,
isolated backend on a shared server or cluster (two handles built for one test see the same data):

- ``{app_dir}``: the test's fresh temporary app directory;
- ``{unique}``: a short identifier unique to the test (letters and digits, starts with a letter),
  e.g. a PostgreSQL schema or a key prefix: ``postgres:dsn=postgresql://...,schema=t_{unique}``.

What a backend can and cannot do (memory not shared between processes, no size limit, no TTL)
comes from the backend itself: class attributes of the object the factory returns (see
:data:`CAPABILITIES`), or whether its options model has the field the suite needs. A
:class:`Backend` may override them with ``capabilities={...}`` for a backend that cannot say.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Registry kinds the suites cover, by the pytest option that picks them.
OPTIONS: dict[str, str] = {
    "executors": "--flowdapt-executor",
    "document_stores": "--flowdapt-store",
    "cluster_memory": "--flowdapt-cluster-memory",
    "event_buses": "--flowdapt-event-bus",
}

#: Capabilities a suite asks about, per kind, with the default assumed when the backend object
#: has no such attribute. Absent capabilities make the suite skip (never weaken) a test.
CAPABILITIES: dict[str, dict[str, Any]] = {
    "document_stores": {
        # A new store built from the same options sees what an earlier one wrote (close/reopen).
        "persistent": True,
        # Several store objects built from the same options, in threads or other processes, use
        # the same data at once.
        "shared": True,
        # claim_runs/renew_leases/.../heartbeat_server: the durable run queue and membership.
        "run_queue": False,
    },
    "cluster_memory": {
        # Other OS processes that build the backend from the same options see the same data.
        "shared_between_processes": True,
        # ``put(..., ttl=seconds)`` expires values.
        "supports_ttl": True,
        # ``stats()`` reports exact ``keys``, ``bytes`` and ``evictions``.
        "exact_stats": True,
    },
    "executors": {},
    "event_buses": {
        # Two bus objects built from the same URL and options (two servers) share events: fan-out
        # reaches the subscribers of both, a group or a work queue spans both.
        "shared": True,
        # A group event or work item that a member took but did not finish (closed mid-handler,
        # or died) is delivered again to another member.
        "redelivers": True,
    },
}


def _parse_value(text: str) -> Any:
    """JSON when it parses (numbers, true/false/null, lists, objects), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets and quotes, so ``a=[1,2],b={"x":1}`` stays whole."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [p for p in (part.strip() for part in parts) if p]


#: Where the options start in ``scheme://host:port:key=value``: the first ``:`` before a ``key=`` or ``{``.
_URL_OPTIONS = re.compile(r":(?=\s*(?:\{|[A-Za-z_][\w.-]*\s*=))")


def _split_url_spec(spec: str) -> tuple[str, str, str]:
    """``(name, url, options text)`` of an event bus spec written as its URL."""
    scheme, _, after = spec.partition("://")
    match = _URL_OPTIONS.search(after)
    address, rest = (after[: match.start()], after[match.end() :]) if match else (after, "")
    return scheme.strip().lower(), f"{scheme.strip()}://{address.strip()}", rest


def parse_backend_spec(kind: str, spec: str) -> Backend:
    """``NAME``, ``NAME:key=value,key=value`` or ``NAME:{json object}`` as a :class:`Backend`.

    Values are JSON when they parse (``workers=2``, ``processes=false``, ``pip=["x"]``), else
    strings (``address=127.0.0.1:6379``: only the first colon separates name and options).
    An event bus may also be given by URL, ``SCHEME://ADDRESS[:key=value,...]`` (the options start
    at the first ``:`` followed by ``key=`` or ``{``); the URL becomes its ``event_bus.url``.
    """
    if kind not in OPTIONS:
        raise ValueError(f"unknown backend kind {kind!r}; one of {sorted(OPTIONS)}")
    settings: dict[str, Any] = {}
    if kind == "event_buses" and "://" in spec:
        name, url, rest = _split_url_spec(spec.strip())
        settings["event_bus.url"] = url
    else:
        name, _, rest = spec.strip().partition(":")
    if not name:
        raise ValueError(f"{OPTIONS[kind]} {spec!r}: a backend spec starts with the registered name")
    rest = rest.strip()
    options: dict[str, Any]
    if rest.startswith("{"):
        options = json.loads(rest)
        if not isinstance(options, dict):
            raise ValueError(f"{OPTIONS[kind]} {spec!r}: options must be a JSON object")
    else:
        options = {}
        for item in _split_top_level(rest):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ValueError(f"{OPTIONS[kind]} {spec!r}: expected key=value, got {item!r}")
            options[key.strip()] = _parse_value(value.strip())
    return Backend(kind=kind, name=name, options=options, settings=settings)


def unique_for(app_dir: Path | str) -> str:
    """The ``{unique}`` of a test: stable for its app dir, different between tests."""
    return "t" + hashlib.sha1(str(app_dir).encode()).hexdigest()[:16]


def _expand(value: Any, app_dir: Path) -> Any:
    if isinstance(value, str):
        return value.replace("{app_dir}", str(app_dir)).replace("{unique}", unique_for(app_dir))
    if isinstance(value, list):
        return [_expand(v, app_dir) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, app_dir) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Backend:
    """One backend of one registry kind, as the suites build it."""

    #: Registry kind: ``executors``, ``document_stores``, ``cluster_memory`` or ``event_buses``.
    kind: str
    #: The name it is registered under (what ``executor.backend``/``database.backend``/... name).
    name: str
    #: Its options (``{app_dir}``/``{unique}`` expanded per test).
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Plugin modules to load: ``create_plugin_system(load_entry_points=False, plugins=...)``
    #: with import paths or ``(name, import path)`` pairs; None loads the installed entry points.
    plugins: tuple[Any, ...] | None = None
    #: Directories put on ``sys.path`` before the plugins are imported, here and in the worker
    #: processes the suites start (for a plugin module that is not installed, e.g. in tests/).
    sys_path: tuple[str, ...] = ()
    #: Capabilities that override what the backend object declares (see ``CAPABILITIES``).
    capabilities: Mapping[str, Any] = field(default_factory=dict)
    #: Dotted settings keys for the suite's app dir (the executor suite: ``cluster_memory.backend``;
    #: an event bus: ``event_bus.url``, by default ``NAME://``). ``{app_dir}``/``{unique}`` expand.
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: Test id; defaults to the name.
    id: str | None = None

    @property
    def test_id(self) -> str:
        return self.id or self.name

    def options_for(self, app_dir: Path, **extra: Any) -> dict[str, Any]:
        return {**_expand(dict(self.options), Path(app_dir)), **extra}

    def settings_for(self, app_dir: Path) -> dict[str, Any]:
        """The settings overrides the backend's factory sees (an event bus: its ``event_bus.url``)."""
        overrides = _expand(dict(self.settings), Path(app_dir))
        if self.kind == "event_buses":
            overrides.setdefault("event_bus.url", f"{self.name}://")
        return overrides

    def plugin_system(self):
        from flowdapt.plugins import create_plugin_system

        for path in reversed(self.sys_path):
            if path not in sys.path:
                sys.path.insert(0, path)
        if self.plugins is None:
            return create_plugin_system()
        return create_plugin_system(load_entry_points=False, plugins=list(self.plugins))

    def registration(self):
        """The registry entry (factory, options model, plugin); raises when nothing registered it."""
        return self.plugin_system().get(self.kind, self.name)

    def has_option(self, option: str) -> bool:
        """Whether the backend's options model has ``option`` (e.g. ``max_size``)."""
        return option in self.registration().options_model.model_fields

    def make(self, app_dir: Path, settings: Any = None, **extra_options: Any) -> Any:
        """A new backend object for ``app_dir``; call again for a second handle on the same data."""
        from flowdapt.settings import load_settings

        if settings is None:
            settings = load_settings(
                app_dir=app_dir, config_file="-", overrides=self.settings_for(app_dir) or None, create=False
            )
        return self.plugin_system().create(self.kind, self.name, self.options_for(app_dir, **extra_options), settings)

    def capability(self, instance: Any, name: str) -> Any:
        """``name`` from the overrides, else the backend object's attribute, else the default."""
        if name in self.capabilities:
            return self.capabilities[name]
        return getattr(instance, name, CAPABILITIES.get(self.kind, {}).get(name))

    def spec(self, app_dir: Path, **extra_options: Any) -> str:
        """JSON that the suites' worker processes turn into the same backend (:func:`from_spec`)."""
        return json.dumps(
            {
                "kind": self.kind,
                "name": self.name,
                "app_dir": str(app_dir),
                "options": self.options_for(app_dir, **extra_options),
                "plugins": None
                if self.plugins is None
                else [list(p) if isinstance(p, tuple) else p for p in self.plugins],
                "sys_path": list(self.sys_path),
                "settings": self.settings_for(app_dir),
            }
        )


def from_spec(spec: Mapping[str, Any]) -> Any:
    """The backend object a worker process builds from :meth:`Backend.spec`."""
    from flowdapt.settings import load_settings

    backend = Backend(
        kind=spec["kind"],
        name=spec["name"],
        options=spec["options"],
        plugins=None if spec["plugins"] is None else tuple(tuple(p) if isinstance(p, list) else p for p in spec["plugins"]),
        sys_path=tuple(spec.get("sys_path", ())),
    )
    settings = load_settings(
        app_dir=spec["app_dir"], config_file="-", overrides=spec.get("settings") or None, create=False
    )
    return backend.plugin_system().create(backend.kind, backend.name, dict(backend.options), settings)
