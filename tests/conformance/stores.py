"""Document stores the conformance suite (``test_document_store.py``) runs against.

**Adding a store** (e.g. the PostgreSQL plugin): append a :class:`StoreBackend` to
``STORE_BACKENDS`` below. The suite builds every store the way the server does, through the plugin
system: ``plugins.create("document_stores", backend.name, backend.options(app_dir), settings)``.
``options(app_dir)`` gets a fresh temporary app dir per test and must return options that point
at an *empty, isolated* store (a new file, a new database or schema named after the dir, ...):
two stores built from the same options must see the same data. ``available()`` returns a reason
to skip (plugin not installed, server unreachable) or None. For example::

    STORE_BACKENDS.append(StoreBackend(
        name="postgres",
        options=lambda app_dir: {"dsn": os.environ["FLOWDAPT_TEST_POSTGRES_DSN"], "schema": f"t_{app_dir.name}"},
        plugins=None,                      # None: load installed plugins through their entry points
        available=postgres_reachable,
    ))

``test_every_registered_store_is_covered`` fails when an installed plugin registers a document
store that has no entry here, so a new store cannot skip the suite by accident.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowdapt.plugins import BUILTIN_PLUGINS, PluginSystem, create_plugin_system
from flowdapt.settings import load_settings


@dataclass(frozen=True)
class StoreBackend:
    #: The name it is registered under (``database.backend``).
    name: str
    #: ``database.options`` for one test, given that test's temporary app dir.
    options: Callable[[Path], dict[str, Any]] = field(default=lambda app_dir: {})
    #: A new store built from the same options sees what an earlier one wrote (close/reopen).
    persistent: bool = True
    #: Several store objects, in threads or in other processes, may use the same data at once.
    shared: bool = True
    #: Plugin modules to load (``create_plugin_system(plugins=...)``); None loads entry points.
    plugins: tuple[Any, ...] | None = tuple(BUILTIN_PLUGINS)
    #: A reason to skip this backend here, or None when it can run.
    available: Callable[[], str | None] = field(default=lambda: None)
    #: Extra test ids, e.g. ``sqlite-default-path``; defaults to ``name``.
    id: str | None = None

    @property
    def test_id(self) -> str:
        return self.id or self.name

    def plugin_system(self) -> PluginSystem:
        if self.plugins is None:
            return create_plugin_system()
        return create_plugin_system(load_entry_points=False, plugins=list(self.plugins))

    def make(self, app_dir: Path):
        """A new, unopened store for ``app_dir`` (call it again for a second handle on the same data)."""
        settings = load_settings(app_dir=app_dir, config_file="-", create=False)
        return self.plugin_system().create("document_stores", self.name, self.options(app_dir), settings)

    def spec(self, app_dir: Path) -> str:
        """JSON that ``_store_worker.py`` turns into the same store in another process."""
        return json.dumps(
            {
                "name": self.name,
                "app_dir": str(app_dir),
                "options": self.options(app_dir),
                "plugins": None if self.plugins is None else [list(p) if isinstance(p, tuple) else p for p in self.plugins],
            }
        )


STORE_BACKENDS: list[StoreBackend] = [
    # The default: no options at all, so the file is <app_dir>/flowdapt.db.
    StoreBackend(name="sqlite"),
    StoreBackend(name="memory", persistent=False, shared=False),
]


def selected_backends() -> list[StoreBackend]:
    """``FLOWDAPT_TEST_STORES=sqlite,postgres`` narrows the run to some backends."""
    wanted = os.environ.get("FLOWDAPT_TEST_STORES")
    if not wanted:
        return list(STORE_BACKENDS)
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    return [b for b in STORE_BACKENDS if b.name in names or b.test_id in names]
