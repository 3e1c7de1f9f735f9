"""The artifact side of the object store: a directory artifact per key under ``storage`` (local
disk, S3...), written and read through the value handlers of :mod:`flowdapt.artifacts.handlers`.
``flowdapt.artifacts`` is imported on first use, so a process that only uses cluster memory never
loads fsspec."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

import orjson

from flowdapt.object_store.errors import ObjectNotFoundError
from flowdapt.settings import get_settings

_pid = os.getpid()  # kept current across fork, so the default-params path makes no getpid() call


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)

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


class ArtifactSide:
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


_artifact_sides: dict[tuple, ArtifactSide] = {}


_last_side: tuple[Any, int, ArtifactSide] | None = None  # (settings, pid, side) for default params


def artifacts_for(params: dict[str, Any] | None) -> ArtifactSide:
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
        side = ArtifactSide(dict(params or {}))
        _artifact_sides[key] = side
    if not params:
        _last_side = (settings, os.getpid(), side)
    return side


def forget_sides() -> None:
    """Forget this process's storage configurations (after changing settings)."""
    global _artifact_sides, _last_side
    _artifact_sides = {}
    _last_side = None


def save_artifact(key, value, namespace, hook, params, side: ArtifactSide | None = None) -> None:
    from flowdapt.artifacts.handlers import OBJECT_FILE, VALUE_TYPE, dumps_object

    side = side or artifacts_for(params)
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


def load_artifact(key, namespace, hook, params) -> Any:
    from flowdapt.artifacts.handlers import load_value

    artifact = artifacts_for(params).open(key, namespace)
    try:
        return (hook or load_value)(artifact)
    except FileNotFoundError as exc:  # deleted by another process while we read it
        raise ObjectNotFoundError(key, namespace, "artifacts") from exc


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
