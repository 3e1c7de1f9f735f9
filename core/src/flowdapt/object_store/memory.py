"""Cluster memory of this process: one backend per process and configuration, created through
the plugin registry ``cluster_memory`` on first use and cached, with a fast path for the default."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import orjson

from flowdapt.object_store.base import ClusterMemory
from flowdapt.settings import get_settings

log = logging.getLogger("flowdapt.object_store")


_pid = os.getpid()  # kept current across fork, so the hot path makes no getpid() call


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)

_backends: dict[tuple, ClusterMemory] = {}
_backends_lock = threading.Lock()
_last: tuple[Any, int, ClusterMemory] | None = None  # (settings, pid, backend): the hot path


def cluster_memory(
    settings=None, *, backend: str | None = None, options: dict[str, Any] | None = None
) -> ClusterMemory:
    """The cluster-memory backend of this process for the given (default: current) settings.

    Created through the plugin registry ``cluster_memory`` on first use and cached per process,
    backend name, options and app dir. ``backend``/``options`` override the settings.
    """
    global _last
    settings = settings or get_settings()
    pid = _pid
    last = _last
    if backend is None and not options and last is not None and last[0] is settings and last[1] == pid:
        return last[2]
    from flowdapt.plugins import get_plugin_system

    plugins = get_plugin_system(settings)
    # ``auto`` and the name it stands for are one backend: one instance (one LMDB environment).
    configured = plugins.resolve("cluster_memory", settings.cluster_memory.backend)
    name = plugins.resolve("cluster_memory", backend) if backend else configured
    merged = dict(settings.cluster_memory.options) if name == configured else {}
    merged.update(options or {})
    key = (pid, name, str(settings.app_dir), orjson.dumps(merged, option=orjson.OPT_SORT_KEYS, default=str))
    with _backends_lock:
        instance = _backends.get(key)
        if instance is None:
            instance = plugins.create("cluster_memory", name, merged, settings)
            _backends[key] = instance
    if backend is None and not options:
        _last = (settings, pid, instance)
    return instance


def backend_label(backend: str | None) -> str:
    name = backend or get_settings().cluster_memory.backend
    try:
        from flowdapt.plugins import get_plugin_system

        return get_plugin_system().resolve("cluster_memory", name)
    except Exception:  # noqa: BLE001 - only a label for a message
        return name


def close_backends() -> None:
    """Close and forget this process's backends."""
    global _last
    with _backends_lock:
        backends = [b for k, b in _backends.items() if k[0] == os.getpid()]
        _backends.clear()
        _last = None
    for instance in backends:
        try:
            instance.close()
        except Exception as exc:  # noqa: BLE001 - closing is best effort
            log.debug("closing cluster memory %s failed: %s", instance, exc)
