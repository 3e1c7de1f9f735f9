"""Object store: share values between stages and runs, by key, in a namespace.

``put``/``get``/``delete``/``exists``/``keys``/``clear`` work the same inside a stage on every
executor and outside a run (tests, notebooks). Where a value lives is the *strategy*:

- ``cluster_memory``: fast and shared by every worker, bounded (size limit, TTL, LRU eviction),
  not meant to outlive the deployment. Backend from ``cluster_memory.backend`` (``auto``: ``lmdb`` on one
  machine; ``ray``/``dask`` on their clusters; ``memory`` in-process).
- ``artifact``: a file per value under ``storage`` (local disk, S3...): persistent, slower.
- ``fallback`` (the default, ``object_store.default_strategy``): cluster memory first; artifacts
  when cluster memory cannot hold the value (too big, full) or does not have the key (evicted,
  expired, or a fresh deployment). With ``write_through`` (``object_store.write_through`` or per
  call) every put goes to both, so values survive restarts and a get after a restart warms
  cluster memory again.

The namespace defaults to the run's namespace inside a stage, else ``compute.default_namespace``.
A missing key raises :class:`ObjectNotFoundError`, a ``KeyError`` that names key and namespace.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import orjson

from flowdapt.engine.context import current_run_context
from flowdapt.errors import ResourceNotFoundError
from flowdapt.object_store.base import (
    ClusterMemory,
    ClusterMemoryFullError,
    check_key,
    check_namespace,
)
from flowdapt.settings import get_settings

log = logging.getLogger(__name__)


class Strategy(StrEnum):
    """Where the object store keeps a value (see the module docstring)."""

    FALLBACK = "fallback"
    ARTIFACT = "artifact"
    CLUSTER_MEMORY = "cluster_memory"


class ObjectNotFoundError(ResourceNotFoundError, KeyError, FileNotFoundError):
    """No value under this key in this namespace (in any place the strategy looks).

    A ``KeyError``, and also what code written for the original catches: there a missing object
    raised ``FileNotFoundError`` (no artifact), and its plugins catch ``ResourceNotFoundError``.
    """

    def __init__(self, key: str, namespace: str | None = None, where: str | None = None):
        self.key = key
        self.namespace = namespace
        self.where = where
        if namespace is None:  # rebuilt from a message only (a stage's error, raised in the caller)
            super().__init__(key)
        else:
            super().__init__(f"no object '{key}' in namespace '{namespace}' (looked in {where})")

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return type(self), (self.key, self.namespace, self.where)


# -- cluster memory backend, one per process and configuration ------------------------------------

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


def reset_cluster_memory() -> None:
    """Close and forget this process's backends (tests; after changing settings)."""
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
    global _artifact_sides, _last_side
    _artifact_sides = {}
    _last_side = None


# -- artifacts side ---------------------------------------------------------------------------------

_KEY_PREFIX = "_k_"


def artifact_name(key: str) -> str:
    """The artifact that holds a key: the key itself when it is a valid artifact name (as in the
    original), else a reversible encoding of it."""
    from flowdapt.artifacts.interface import NAME_PATTERN

    if NAME_PATTERN.match(key) and not key.startswith(_KEY_PREFIX):
        return key
    return _KEY_PREFIX + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def key_of_artifact(name: str) -> str:
    if not name.startswith(_KEY_PREFIX):
        return name
    encoded = name[len(_KEY_PREFIX) :]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


class _ArtifactSide:
    """Artifacts of the object store for one storage configuration."""

    def __init__(self, params: dict[str, Any]):
        from flowdapt.artifacts import storage_defaults
        from flowdapt.artifacts.interface import Artifact, get_filesystem

        _, protocol, base_path, fs_params = storage_defaults("x", **params)
        self.protocol = protocol
        self.base_path = base_path
        self.fs = get_filesystem(protocol, **fs_params)
        self.local = protocol in ("file", "local")
        self._Artifact = Artifact

    def path(self, key: str, namespace: str) -> str:
        return self._Artifact._get_full_path(self.base_path, namespace, artifact_name(key))

    def exists(self, key: str, namespace: str) -> bool:
        path = self.path(key, namespace)
        return os.path.isdir(path) if self.local else self.fs.exists(path)

    def open(self, key: str, namespace: str, *, create: bool = False):
        name = artifact_name(key)
        if self.exists(key, namespace):
            return self._Artifact(name, namespace, base_path=self.base_path, _fs=self.fs, _checked=True)
        if not create:
            raise ObjectNotFoundError(key, namespace, "artifacts")
        try:
            return self._Artifact.new_artifact(name, namespace, base_path=self.base_path, _fs=self.fs)
        except FileExistsError:
            return self._Artifact(name, namespace, base_path=self.base_path, _fs=self.fs, _checked=True)

    def delete(self, key: str, namespace: str) -> bool:
        if not self.exists(key, namespace):
            return False
        try:
            self.fs.rm(self.path(key, namespace), recursive=True)
        except FileNotFoundError:
            return False
        return True

    def artifacts(self, namespace: str):
        return self._Artifact.list_artifacts(namespace, base_path=self.base_path, _fs=self.fs)

    def keys(self, namespace: str) -> list[str]:
        """Keys of values written through a value hook (artifacts with a ``value_type``)."""
        return [
            key_of_artifact(a.name) for a in self.artifacts(namespace) if a.get_meta("value_type") is not None
        ]

    def clear(self, namespace: str) -> None:
        for artifact in self.artifacts(namespace):
            if artifact.get_meta("value_type") is not None:
                try:
                    artifact.delete()
                except FileNotFoundError:
                    pass


_artifact_sides: dict[tuple, _ArtifactSide] = {}


_last_side: tuple[Any, int, _ArtifactSide] | None = None  # (settings, pid, side) for default params


def _artifacts(params: dict[str, Any] | None) -> _ArtifactSide:
    global _last_side
    settings = get_settings()
    last = _last_side
    if not params and last is not None and last[0] is settings and last[1] == _pid:
        return last[2]
    token = orjson.dumps(
        [str(settings.app_dir), settings.storage.model_dump(), params or {}],
        option=orjson.OPT_SORT_KEYS,
        default=str,
    )
    key = (os.getpid(), token)
    side = _artifact_sides.get(key)
    if side is None:
        side = _ArtifactSide(dict(params or {}))
        _artifact_sides[key] = side
    if not params:
        _last_side = (settings, os.getpid(), side)
    return side


# -- defaults -------------------------------------------------------------------------------------


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


def _backend_label(backend: str | None) -> str:
    name = backend or get_settings().cluster_memory.backend
    try:
        from flowdapt.plugins import get_plugin_system

        return get_plugin_system().resolve("cluster_memory", name)
    except Exception:  # noqa: BLE001 - only a label for a message
        return name


# -- the API --------------------------------------------------------------------------------------


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
        _save_artifact(key, value, namespace, save_artifact_hook, artifact_params)
        return
    through = _write_through(write_through)
    try:
        _backend(backend, cluster_memory_params).put(key, value, namespace=namespace, ttl=ttl)
    except ClusterMemoryFullError as exc:
        log.debug("object %s/%s goes to artifacts: %s", namespace, key, exc)
        _save_artifact(key, value, namespace, save_artifact_hook, artifact_params)
        return
    except (KeyError, ValueError, TypeError, NotImplementedError) as exc:
        # A backend that cannot hold this kind of value (e.g. Dask publishes only collections).
        log.debug("object %s/%s goes to artifacts: %s: %s", namespace, key, type(exc).__name__, exc)
        _save_artifact(key, value, namespace, save_artifact_hook, artifact_params)
        return
    side = _artifacts(artifact_params)
    if through:
        _save_artifact(key, value, namespace, save_artifact_hook, artifact_params, side=side)
    elif side.exists(key, namespace):
        # An older value of this key went to artifacts (it did not fit then): it must not come
        # back once this one leaves cluster memory.
        side.delete(key, namespace)


def _save_artifact(key, value, namespace, hook, params, side: _ArtifactSide | None = None) -> None:
    from flowdapt.artifacts.handlers import OBJECT_FILE, VALUE_TYPE, dumps_object

    side = side or _artifacts(params)
    if hook is None:
        data = dumps_object(value)  # first: a value that cannot be pickled leaves no artifact behind
        artifact = side.open(key, namespace, create=True)
        artifact.get_file(OBJECT_FILE, create=True).write(data)
        if artifact.get_meta(VALUE_TYPE) != "object":
            artifact.set_meta(VALUE_TYPE, "object")
        return
    existed = side.exists(key, namespace)
    artifact = side.open(key, namespace, create=True)
    try:
        hook(artifact, value)
    except BaseException:
        if not existed:
            side.delete(key, namespace)
        raise


def _load_artifact(key, namespace, hook, params) -> Any:
    from flowdapt.artifacts.handlers import load_value

    artifact = _artifacts(params).open(key, namespace)
    try:
        return (hook or load_value)(artifact)
    except FileNotFoundError as exc:  # deleted by another process while we read it
        raise ObjectNotFoundError(key, namespace, "artifacts") from exc


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
        return _load_artifact(key, namespace, load_artifact_hook, artifact_params)
    memory = _backend(backend, cluster_memory_params)
    if chosen is _CLUSTER_MEMORY:
        try:
            return memory.get(key, namespace=namespace)
        except KeyError:
            raise ObjectNotFoundError(key, namespace, f"cluster memory ({_backend_label(backend)})") from None
    failure: Exception | None = None
    try:
        return memory.get(key, namespace=namespace)
    except KeyError:
        pass
    except Exception as exc:  # noqa: BLE001 - an unreachable backend: the artifact may still serve
        failure = exc
    try:
        value = _load_artifact(key, namespace, load_artifact_hook, artifact_params)
    except ObjectNotFoundError:
        if failure is not None:
            raise failure from None
        raise ObjectNotFoundError(
            key, namespace, f"cluster memory ({_backend_label(backend)}) and artifacts"
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
        deleted = _artifacts(artifact_params).delete(key, namespace) or deleted
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
    return _artifacts(artifact_params).exists(key, namespace)


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
        found.update(_artifacts(artifact_params).keys(namespace))
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
        _artifacts(artifact_params).clear(namespace)


def stats(*, backend: str | None = None) -> dict[str, Any]:
    """Cluster-memory figures (keys, bytes, evictions...) and the object-store settings."""
    settings = get_settings()
    return {
        "default_strategy": settings.object_store.default_strategy,
        "write_through": settings.object_store.write_through,
        "cluster_memory": cluster_memory(backend=backend).stats(),
    }


def default_save_hook(serializer: Any = None) -> Callable[[Any, Any], None]:
    """The original's default save hook: the value pickled into the artifact file ``object``."""
    if serializer is None:
        from flowdapt.artifacts.handlers import save_object

        return save_object

    def _save(artifact, value) -> None:
        artifact.get_file("object", create=True).write(serializer.dumps(value))
        artifact["value_type"] = "object"

    return _save


def default_load_hook(serializer: Any = None) -> Callable[[Any], Any]:
    """The original's default load hook (reads any value type when no serializer is given)."""
    if serializer is None:
        from flowdapt.artifacts.handlers import load_value

        return load_value

    def _load(artifact) -> Any:
        return serializer.loads(artifact.get_file("object").read())

    return _load


__all__ = [
    "ClusterMemory",
    "ClusterMemoryFullError",
    "ObjectNotFoundError",
    "Strategy",
    "artifact_name",
    "clear",
    "cluster_memory",
    "default_load_hook",
    "default_save_hook",
    "delete",
    "exists",
    "get",
    "keys",
    "put",
    "reset_cluster_memory",
    "resolve_namespace",
    "stats",
]
