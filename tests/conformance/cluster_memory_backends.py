"""Cluster-memory backends the conformance suite (``test_cluster_memory.py``) runs against.

**Adding a backend** (the Ray and Dask plugins): append a :class:`ClusterMemoryBackend` to
``CLUSTER_MEMORY_BACKENDS``. The suite builds every backend the way the object store does,
through the plugin system: ``plugins.create("cluster_memory", backend.name,
backend.options(app_dir), settings)`` with ``settings = load_settings(app_dir=app_dir)``.
``options(app_dir)`` gets a fresh temporary app dir per test and must return options that give an
*empty, isolated* memory; two backends built from the same options must see the same data
(in this process, and in other processes when ``shared_between_processes``). ``available()``
returns a reason to skip (plugin not installed, cluster unreachable) or None. For example::

    CLUSTER_MEMORY_BACKENDS.append(ClusterMemoryBackend(
        name="ray",
        options=lambda app_dir: {"address": os.environ["FLOWDAPT_TEST_RAY_ADDRESS"],
                                 "actor_name": f"cm-{app_dir.name}"},
        plugins=None,                     # None: load installed plugins through their entry points
        available=ray_reachable,
        supports_ttl=False,
        size_limit=None,
    ))

Capabilities a backend may lack are flags, so the suite skips (never weakens) those tests.
``test_every_registered_backend_is_covered`` fails when an installed plugin registers a
cluster-memory backend that has no entry here.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowdapt.plugins import BUILTIN_PLUGINS, PluginSystem, create_plugin_system
from flowdapt.settings import load_settings


def _lmdb_missing() -> str | None:
    if importlib.util.find_spec("flowdapt_lmdb") is None:
        return "flowdapt-lmdb is not installed"
    return None


@dataclass(frozen=True)
class ClusterMemoryBackend:
    #: The name it is registered under (``cluster_memory.backend``).
    name: str
    #: ``cluster_memory.options`` for one test, given that test's temporary app dir.
    options: Callable[[Path], dict[str, Any]] = field(default=lambda app_dir: {})
    #: Other OS processes that build the backend from the same options see the same data.
    shared_between_processes: bool = True
    #: ``put(..., ttl=seconds)`` expires values.
    supports_ttl: bool = True
    #: The option that bounds the bytes held (``max_size``), with ``eviction: lru|none``; None if not.
    size_limit: str | None = "max_size"
    #: ``stats()`` reports exact ``keys`` and ``bytes``.
    exact_stats: bool = True
    #: Plugin modules to load (``create_plugin_system(plugins=...)``); None loads entry points.
    plugins: tuple[Any, ...] | None = tuple(BUILTIN_PLUGINS)
    #: A reason to skip this backend here, or None when it can run.
    available: Callable[[], str | None] = field(default=lambda: None)
    #: Test id; defaults to ``name``.
    id: str | None = None

    @property
    def test_id(self) -> str:
        return self.id or self.name

    def plugin_system(self) -> PluginSystem:
        if self.plugins is None:
            return create_plugin_system()
        return create_plugin_system(load_entry_points=False, plugins=list(self.plugins))

    def make(self, app_dir: Path, **extra_options: Any):
        """A backend for ``app_dir`` (call it again for a second handle on the same data)."""
        settings = load_settings(app_dir=app_dir, config_file="-", create=False)
        options = {**self.options(app_dir), **extra_options}
        return self.plugin_system().create("cluster_memory", self.name, options, settings)

    def spec(self, app_dir: Path, **extra_options: Any) -> str:
        """JSON that ``_cluster_memory_worker.py`` turns into the same backend in another process."""
        return json.dumps(
            {
                "name": self.name,
                "app_dir": str(app_dir),
                "options": {**self.options(app_dir), **extra_options},
                "plugins": None
                if self.plugins is None
                else [list(p) if isinstance(p, tuple) else p for p in self.plugins],
            }
        )


CLUSTER_MEMORY_BACKENDS: list[ClusterMemoryBackend] = [
    ClusterMemoryBackend(name="memory", shared_between_processes=False),
    # The default on one machine; no options, so the environment is <app_dir>/cluster_memory.lmdb.
    ClusterMemoryBackend(
        name="lmdb",
        plugins=(*BUILTIN_PLUGINS, ("lmdb", "flowdapt_lmdb.plugin")),
        available=_lmdb_missing,
    ),
]


def selected_backends() -> list[ClusterMemoryBackend]:
    """``FLOWDAPT_TEST_CLUSTER_MEMORY=lmdb,ray`` narrows the run to some backends."""
    wanted = os.environ.get("FLOWDAPT_TEST_CLUSTER_MEMORY")
    if not wanted:
        return list(CLUSTER_MEMORY_BACKENDS)
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    return [b for b in CLUSTER_MEMORY_BACKENDS if b.name in names or b.test_id in names]


# -- Ray and Dask (flowdapt-ray, flowdapt-dask) ---------------------------------------------------
# Each test gets its own key prefix (from its app dir) on one shared cluster, so memories are
# empty and isolated without starting a cluster per test; other processes connect by address.


def _plugin_missing(module: str, dist: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if importlib.util.find_spec(module) is None:
            return f"{dist} is not installed"
        return None

    return check


def _prefix(app_dir: Path) -> str:
    import hashlib

    return "t" + hashlib.sha1(str(app_dir).encode()).hexdigest()[:16]


def _ray_options(app_dir: Path) -> dict[str, Any]:
    from executor_clusters import ray_address

    return {"address": ray_address(), "prefix": _prefix(app_dir)}


def _dask_options(app_dir: Path) -> dict[str, Any]:
    from executor_clusters import dask_address

    return {"address": dask_address(), "prefix": _prefix(app_dir)}


CLUSTER_MEMORY_BACKENDS.extend(
    [
        ClusterMemoryBackend(
            name="ray",
            options=_ray_options,
            plugins=(*BUILTIN_PLUGINS, ("ray", "flowdapt_ray.plugin")),
            available=_plugin_missing("flowdapt_ray", "flowdapt-ray"),
            size_limit=None,
        ),
        ClusterMemoryBackend(
            name="dask",
            options=_dask_options,
            plugins=(*BUILTIN_PLUGINS, ("dask", "flowdapt_dask.plugin")),
            available=_plugin_missing("flowdapt_dask", "flowdapt-dask"),
            size_limit=None,
        ),
    ]
)
