"""The object store's calls (``put``/``get``/``delete``/``exists``/``keys``/``clear``/``stats``):
pick the strategy and namespace, then go to cluster memory (:mod:`.memory`), artifacts
(:mod:`.artifact_side`) or both."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from flowdapt.engine.context import current_run_context
from flowdapt.object_store.artifact_side import artifacts_for, forget_sides, load_artifact, save_artifact
from flowdapt.object_store.base import ClusterMemory, ClusterMemoryFullError, check_key, check_namespace
from flowdapt.object_store.errors import ObjectNotFoundError
from flowdapt.object_store.memory import backend_label, close_backends, cluster_memory
from flowdapt.settings import get_settings

log = logging.getLogger("flowdapt.object_store")


class Strategy(StrEnum):
    """Where the object store keeps a value (see the module docstring)."""

    FALLBACK = "fallback"
    ARTIFACT = "artifact"
    CLUSTER_MEMORY = "cluster_memory"


Strategy.__module__ = "flowdapt.object_store"  # its public home, as before the split


def reset_cluster_memory() -> None:
    """Close and forget this process's backends (tests; after changing settings)."""
    close_backends()
    forget_sides()


def resolve_namespace(namespace: str | None = None) -> str:
    """``namespace``, else the run's namespace inside a stage, else ``compute.default_namespace``."""
    if namespace:
        return namespace
    ctx = current_run_context()
    if ctx is not None and ctx.namespace:
        return ctx.namespace
    return get_settings().compute.default_namespace


_FALLBACK, _ARTIFACT, _CLUSTER_MEMORY = Strategy.FALLBACK, Strategy.ARTIFACT, Strategy.CLUSTER_MEMORY
_STRATEGIES: dict[Any, Strategy] = {**{s.value: s for s in Strategy}, **{s: s for s in Strategy}}


def _strategy(strategy: Strategy | str | None, artifact_only: bool) -> Strategy:
    if artifact_only:
        return Strategy.ARTIFACT
    if strategy is None:
        strategy = get_settings().object_store.default_strategy
    try:
        return _STRATEGIES[strategy]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown object store strategy {strategy!r}: use one of " + ", ".join(s.value for s in Strategy)
        ) from None


def _write_through(value: bool | None) -> bool:
    if value is not None:
        return value
    return get_settings().object_store.write_through


def _backend(backend: str | None, params: dict[str, Any] | None) -> ClusterMemory:
    return cluster_memory(backend=backend, options=params or None)


def put(
    key: str,
    value: Any,
    *,
    namespace: str | None = None,
    strategy: Strategy | str | None = None,
    ttl: float | None = None,
    write_through: bool | None = None,
    backend: str | None = None,
    artifact_only: bool = False,
    executor: str | None = None,
    save_artifact_hook: Callable[[Any, Any], Any] | None = None,
    cluster_memory_params: dict[str, Any] | None = None,
    artifact_params: dict[str, Any] | None = None,
) -> None:
    """Store ``value`` under ``key``.

    ``ttl`` (seconds) bounds its life in cluster memory (artifacts keep values until deleted).
    ``write_through`` (fallback strategy) also writes the artifact, so the value survives a
    restart. ``save_artifact_hook(artifact, value)`` decides how the artifact is written
    (default: the whole value pickled into the file ``object``; see ``flowdapt.artifacts`` for
    parquet/npy/json hooks). ``executor`` is accepted for compatibility: the cluster memory is
    the configured one (``backend`` picks another).
    """
    check_key(key)
    namespace = resolve_namespace(namespace)
    check_namespace(namespace)
    chosen = _strategy(strategy, artifact_only)
    if chosen is _CLUSTER_MEMORY:
        _backend(backend, cluster_memory_params).put(key, value, namespace=namespace, ttl=ttl)
        return
    if chosen is _ARTIFACT:
        save_artifact(key, value, namespace, save_artifact_hook, artifact_params)
        return
    through = _write_through(write_through)
    try:
        _backend(backend, cluster_memory_params).put(key, value, namespace=namespace, ttl=ttl)
    except ClusterMemoryFullError as exc:
        log.debug("object %s/%s goes to artifacts: %s", namespace, key, exc)
        save_artifact(key, value, namespace, save_artifact_hook, artifact_params)
        return
    except (KeyError, ValueError, TypeError, NotImplementedError) as exc:
        # A backend that cannot hold this kind of value (e.g. Dask publishes only collections).
        log.debug("object %s/%s goes to artifacts: %s: %s", namespace, key, type(exc).__name__, exc)
        save_artifact(key, value, namespace, save_artifact_hook, artifact_params)
        return
    side = artifacts_for(artifact_params)
    if through:
        save_artifact(key, value, namespace, save_artifact_hook, artifact_params, side=side)
    elif side.exists(key, namespace):
        # An older value of this key went to artifacts (it did not fit then): it must not come
        # back once this one leaves cluster memory.
        side.delete(key, namespace)


def get(
    key: str,
    *,
    namespace: str | None = None,
    strategy: Strategy | str | None = None,
    write_through: bool | None = None,
    backend: str | None = None,
    artifact_only: bool = False,
    executor: str | None = None,
    load_artifact_hook: Callable[[Any], Any] | None = None,
    cluster_memory_params: dict[str, Any] | None = None,
    artifact_params: dict[str, Any] | None = None,
) -> Any:
    """The value stored under ``key``; :class:`ObjectNotFoundError` (a KeyError) when there is none.

    Artifacts are read with ``load_artifact_hook(artifact)``, by default the handler named by
    the artifact's ``value_type`` metadata (so a DataFrame saved as parquet comes back a DataFrame).
    """
    namespace = resolve_namespace(namespace)
    chosen = _strategy(strategy, artifact_only)
    if chosen is _ARTIFACT:
        return load_artifact(key, namespace, load_artifact_hook, artifact_params)
    memory = _backend(backend, cluster_memory_params)
    if chosen is _CLUSTER_MEMORY:
        try:
            return memory.get(key, namespace=namespace)
        except KeyError:
            raise ObjectNotFoundError(key, namespace, f"cluster memory ({backend_label(backend)})") from None
    failure: Exception | None = None
    try:
        return memory.get(key, namespace=namespace)
    except KeyError:
        pass
    except Exception as exc:  # noqa: BLE001 - an unreachable backend: the artifact may still serve
        failure = exc
    try:
        value = load_artifact(key, namespace, load_artifact_hook, artifact_params)
    except ObjectNotFoundError:
        if failure is not None:
            raise failure from None
        raise ObjectNotFoundError(
            key, namespace, f"cluster memory ({backend_label(backend)}) and artifacts"
        ) from None
    if failure is None and _write_through(write_through):
        try:  # warm cluster memory again (after a restart or an eviction)
            memory.put(key, value, namespace=namespace)
        except Exception as exc:  # noqa: BLE001 - the value was served; caching it is optional
            log.debug("could not cache %s/%s in cluster memory: %s", namespace, key, exc)
    return value


def delete(
    key: str,
    *,
    namespace: str | None = None,
    strategy: Strategy | str | None = None,
    backend: str | None = None,
    artifact_only: bool = False,
    executor: str | None = None,
    cluster_memory_params: dict[str, Any] | None = None,
    artifact_params: dict[str, Any] | None = None,
) -> bool:
    """Delete the value (from both places under ``fallback``); True when something was deleted."""
    namespace = resolve_namespace(namespace)
    chosen = _strategy(strategy, artifact_only)
    deleted = False
    if chosen is not _ARTIFACT:
        deleted = bool(_backend(backend, cluster_memory_params).delete(key, namespace=namespace))
    if chosen is not _CLUSTER_MEMORY:
        deleted = artifacts_for(artifact_params).delete(key, namespace) or deleted
    return deleted


def exists(
    key: str,
    *,
    namespace: str | None = None,
    strategy: Strategy | str | None = None,
    backend: str | None = None,
    artifact_only: bool = False,
    executor: str | None = None,
    load_artifact_hook: Callable[[Any], Any] | None = None,
    cluster_memory_params: dict[str, Any] | None = None,
    artifact_params: dict[str, Any] | None = None,
) -> bool:
    """True when ``get`` would find the key."""
    namespace = resolve_namespace(namespace)
    chosen = _strategy(strategy, artifact_only)
    if chosen is not _ARTIFACT and _backend(backend, cluster_memory_params).exists(key, namespace=namespace):
        return True
    if chosen is _CLUSTER_MEMORY:
        return False
    return artifacts_for(artifact_params).exists(key, namespace)


def keys(
    namespace: str | None = None,
    *,
    strategy: Strategy | str | None = None,
    backend: str | None = None,
    cluster_memory_params: dict[str, Any] | None = None,
    artifact_params: dict[str, Any] | None = None,
) -> list[str]:
    """Keys of a namespace, sorted (cluster memory and/or artifacts, by strategy)."""
    namespace = resolve_namespace(namespace)
    chosen = _strategy(strategy, False)
    found: set[str] = set()
    if chosen is not _ARTIFACT:
        found.update(_backend(backend, cluster_memory_params).keys(namespace))
    if chosen is not _CLUSTER_MEMORY:
        found.update(artifacts_for(artifact_params).keys(namespace))
    return sorted(found)


def clear(
    namespace: str | None = None,
    *,
    strategy: Strategy | str | None = None,
    backend: str | None = None,
    cluster_memory_params: dict[str, Any] | None = None,
    artifact_params: dict[str, Any] | None = None,
) -> None:
    """Delete every value of a namespace (default: the current one). Under ``artifact`` and
    ``fallback`` this removes the namespace's artifacts that hold values (those with a
    ``value_type``), not artifacts a stage built file by file."""
    namespace = resolve_namespace(namespace)
    chosen = _strategy(strategy, False)
    if chosen is not _ARTIFACT:
        _backend(backend, cluster_memory_params).clear(namespace)
    if chosen is not _CLUSTER_MEMORY:
        artifacts_for(artifact_params).clear(namespace)


def stats(*, backend: str | None = None) -> dict[str, Any]:
    """Cluster-memory figures (keys, bytes, evictions...) and the object-store settings."""
    settings = get_settings()
    return {
        "default_strategy": settings.object_store.default_strategy,
        "write_through": settings.object_store.write_through,
        "cluster_memory": cluster_memory(backend=backend).stats(),
    }
