"""Artifacts: named folders of files on any fsspec filesystem, with JSON metadata.

Layout: ``{base_path}/artifacts/{namespace}/{name}/``, metadata in ``.artifact.json`` (the
original Flowdapt's layout, so artifacts written by either version are read by both).

Differences from the original, on purpose:

- reading an artifact never writes (the metadata file is created on the first ``set_meta``);
- ``list_files(include_meta=True)`` includes the metadata file (the original returned nothing);
- on the local filesystem, files and metadata are written to a temporary name and renamed, so a
  reader in another process never sees half a file;
- ``uri`` names the filesystem's first protocol (``file://...``), not a tuple of them.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
from fsspec import AbstractFileSystem, filesystem

METADATA_FILENAME = ".artifact.json"
_ARTIFACT_METADATA_FILENAME = METADATA_FILENAME  # the original's name for it
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_\-]+$")

_filesystems: dict[tuple[str, bytes], AbstractFileSystem] = {}


def get_filesystem(protocol: str = "file", **params: Any) -> AbstractFileSystem:
    """An fsspec filesystem, cached per protocol and parameters."""
    protocol = protocol or "file"
    try:
        token = orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return filesystem(protocol, **params)
    key = (protocol, token)
    fs = _filesystems.get(key)
    if fs is None:
        try:
            fs = filesystem(protocol, **params)
        except (ImportError, ValueError) as exc:
            raise ValueError(
                f"artifact storage protocol '{protocol}' is not available: {exc}. "
                f"Install the fsspec package for it (e.g. s3fs for s3, gcsfs for gcs) or set storage.protocol"
            ) from exc
        _filesystems[key] = fs
    return fs


def _protocol_name(fs: AbstractFileSystem) -> str:
    protocol = fs.protocol
    return protocol[0] if isinstance(protocol, tuple | list) else protocol


def is_local_filesystem(fs: AbstractFileSystem) -> bool:
    return _protocol_name(fs) in ("file", "local")


def _in_transaction(fs: AbstractFileSystem) -> bool:
    return bool(getattr(fs, "_intrans", False))


def write_bytes(fs: AbstractFileSystem, path: str, data: bytes | bytearray | memoryview | str) -> None:
    """Write a whole file; atomic (temporary name + rename) on the local filesystem."""
    mode = "w" if isinstance(data, str) else "wb"
    if is_local_filesystem(fs) and not _in_transaction(fs):
        directory = os.path.dirname(path)
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, mode) as handle:
                handle.write(data)
            os.replace(tmp, path)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise FileNotFoundError(f"artifact folder {directory} does not exist (was it deleted?)") from None
        return
    with fs.open(path, mode) as handle:
        handle.write(data)


def file_url_path(namespace: str, name: str, filename: str) -> str:
    """``/artifacts/{namespace}/{name}/files/{filename}``: where the API server serves a file."""
    from urllib.parse import quote

    return f"/artifacts/{quote(namespace, safe='')}/{quote(name, safe='')}/files/{quote(filename, safe='')}"


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class ArtifactFile:
    """One file of an artifact."""

    def __init__(self, filename: str, artifact: Artifact, *, _checked: bool = False):
        self._filename = filename
        self._artifact = artifact
        self._path = f"{artifact.path}/{filename}"
        if not _checked and not artifact._fs.exists(self._path):
            raise FileNotFoundError(f"No file existing with the path `{self._path}`")

    @classmethod
    def new(cls, artifact: Artifact, filename: str, content: Any = None) -> ArtifactFile:
        path = f"{artifact.path}/{filename}"
        if artifact._fs.exists(path):
            raise FileExistsError(f"File already exists with the path `{path}`")
        if content is not None:
            write_bytes(artifact._fs, path, content)
        else:
            artifact._fs.touch(path)
        return cls(filename, artifact, _checked=True)

    def __repr__(self) -> str:
        return f"ArtifactFile<{self._path}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArtifactFile) and other._path == self._path

    def __hash__(self) -> int:
        return hash(self._path)

    @property
    def artifact(self) -> Artifact:
        return self._artifact

    @property
    def name(self) -> str:
        return self._filename

    @property
    def path(self) -> str:
        return self._path

    @property
    def url_path(self) -> str:
        """The API server's path that serves this file (``GET /artifacts/{namespace}/{name}/files/{file}``),
        for a run result to link to, next to its ``path``."""
        return file_url_path(self._artifact.namespace, self._artifact.name, self._filename)

    @contextlib.contextmanager
    def open(self, mode: str = "r"):
        """Open the file (a context manager yielding the fsspec file object)."""
        with self._artifact._fs.open(self._path, mode=mode) as handle:
            yield handle

    def remove(self) -> None:
        self._artifact._fs.rm(self._path)

    def read(self, size: int = -1, mode: str = "rb") -> bytes | str:
        if size == -1 and mode == "rb":
            return self._artifact._fs.cat_file(self._path)
        with self.open(mode=mode) as handle:
            return handle.read(size)

    def write(self, data: str | bytes | bytearray | memoryview) -> None:
        write_bytes(self._artifact._fs, self._path, data)


class Artifact:
    """A named folder of files plus a metadata mapping, in a namespace."""

    def __init__(
        self,
        name: str,
        namespace: str = "",
        protocol: str = "file",
        base_path: str = "",
        params: dict | None = None,
        *,
        _fs: AbstractFileSystem | None = None,
        _checked: bool = False,
    ):
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                "Artifact `name` can only contain alphanumeric characters,"
                f" underscores, and hyphens. Got: `{name}`"
            )
        if _fs is not None and params:
            raise ValueError("Cannot specify both `_fs` and `protocol`/`params`.")
        self._name = name
        self._namespace = namespace or "default"
        self._base_path = base_path.rstrip("/")
        self._fs = _fs or get_filesystem(protocol, **(params or {}))
        self._metadata: dict[str, Any] = {}
        if not _checked and not self._fs.exists(self.path):
            raise FileNotFoundError(
                f"No Artifact existing in namespace `{self.namespace}` with the name `{self.name}` ({self.uri})"
            )

    # -- construction ---------------------------------------------------------------------

    @staticmethod
    def _get_full_path(base_path: str, namespace: str, name: str = "") -> str:
        # Both parts become path segments under the base path: one that is not a plain name
        # (``..``, ``a/b``, empty) could leave it, so it is refused here, where every path is made.
        if not isinstance(namespace, str) or not NAME_PATTERN.fullmatch(namespace):
            raise ValueError(
                "Artifact `namespace` can only contain alphanumeric characters,"
                f" underscores, and hyphens. Got: `{namespace}`"
            )
        if name and not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                "Artifact `name` can only contain alphanumeric characters,"
                f" underscores, and hyphens. Got: `{name}`"
            )
        return f"{base_path.rstrip('/')}/artifacts/{namespace}/{name}"

    @classmethod
    def new_artifact(
        cls,
        name: str,
        namespace: str = "default",
        protocol: str = "file",
        base_path: str = "",
        *,
        _fs: AbstractFileSystem | None = None,
        **params,
    ) -> Artifact:
        """Create a new artifact; FileExistsError when it exists already."""
        if not name:
            raise ValueError("Artifact `name` cannot be empty")
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                "Artifact `name` can only contain alphanumeric characters,"
                f" underscores, and hyphens. Got: `{name}`"
            )
        namespace = namespace or "default"
        fs = _fs or get_filesystem(protocol, **params)
        path = cls._get_full_path(base_path, namespace, name)
        if fs.exists(path):
            raise FileExistsError(f"Artifact `{name}` already exists in namespace `{namespace}`")
        if "s3" in (fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)):
            # Object stores have no folders: a key under the prefix makes the artifact exist.
            fs.touch(f"{path}/{METADATA_FILENAME}")
        else:
            fs.makedirs(path, exist_ok=True)
        return cls(name, namespace, base_path=base_path, _fs=fs, _checked=True)

    @classmethod
    def get_artifact(
        cls, name: str, namespace: str = "", protocol: str = "file", base_path: str = "", **params
    ) -> Artifact:
        """An existing artifact; FileNotFoundError when there is none."""
        return cls(name, namespace, protocol, base_path, params)

    @classmethod
    def list_artifacts(
        cls,
        namespace: str,
        protocol: str = "file",
        base_path: str = "",
        *,
        _fs: AbstractFileSystem | None = None,
        **params,
    ) -> list[Artifact]:
        fs = _fs or get_filesystem(protocol, **params)
        namespace = namespace or "default"
        path = cls._get_full_path(base_path, namespace)
        try:
            entries = fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        out = []
        for entry in sorted(entries, key=lambda e: e["name"]):
            if entry.get("type") != "directory":
                continue
            name = _basename(entry["name"])
            if NAME_PATTERN.fullmatch(name):
                out.append(cls(name, namespace, base_path=base_path, _fs=fs, _checked=True))
        return out

    @classmethod
    def does_exist(
        cls, name: str, namespace: str = "", protocol: str = "file", base_path: str = "", **params
    ) -> bool:
        fs = get_filesystem(protocol, **params)
        return fs.exists(cls._get_full_path(base_path, namespace or "default", name))

    # -- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def base_path(self) -> str:
        return self._base_path

    @property
    def protocol(self) -> str:
        return _protocol_name(self._fs)

    @property
    def filesystem(self) -> AbstractFileSystem:
        return self._fs

    @property
    def path(self) -> str:
        return self._get_full_path(self._base_path, self._namespace, self._name)

    @property
    def uri(self) -> str:
        return f"{self.protocol}://{self.path}"

    @property
    def exists(self) -> bool:
        return self._fs.exists(self.path)

    @property
    def is_empty(self) -> bool:
        if not self.exists:
            return True
        return len(self.list_files()) < 1

    def __repr__(self) -> str:
        return f"Artifact<{self.uri}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Artifact) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __bool__(self) -> bool:
        return not self.is_empty

    def __contains__(self, filename: str) -> bool:
        return self.has_file(filename)

    def __iter__(self) -> Iterator[ArtifactFile]:
        yield from self.list_files()

    # -- metadata -------------------------------------------------------------------------

    def _read_metadata(self) -> dict[str, Any]:
        try:
            raw = self._fs.cat_file(f"{self.path}/{METADATA_FILENAME}")
        except FileNotFoundError:
            raw = b""
        self._metadata = orjson.loads(raw) if raw.strip() else {}
        return self._metadata

    def _persist_metadata(self) -> None:
        write_bytes(self._fs, f"{self.path}/{METADATA_FILENAME}", orjson.dumps(self._metadata))

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata mapping, read from storage (a copy: change it with ``set_meta``)."""
        return dict(self._read_metadata())

    def get_meta(self, key: str, default: Any = None) -> Any:
        return self._read_metadata().get(key, default)

    def set_meta(self, key: str, value: Any) -> None:
        self._read_metadata()
        self._metadata[key] = value
        self._persist_metadata()

    def update_meta(self, values: dict[str, Any]) -> None:
        """Set several metadata keys with one read and one write."""
        self._read_metadata()
        self._metadata.update(values)
        self._persist_metadata()

    def del_meta(self, key: str) -> None:
        self._read_metadata()
        del self._metadata[key]
        self._persist_metadata()

    def __getitem__(self, key: str) -> Any:
        return self.get_meta(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.set_meta(key, value)

    def __delitem__(self, key: str) -> None:
        self.del_meta(key)

    # -- files ----------------------------------------------------------------------------

    def _ensure_exists(self) -> None:
        if not self.exists:
            raise FileNotFoundError(f"No Artifact existing with the path `{self.path}`")

    def list_files(self, include_meta: bool = False) -> list[ArtifactFile]:
        self._ensure_exists()
        files = []
        for entry in sorted(self._fs.ls(self.path, detail=True), key=lambda e: e["name"]):
            if entry.get("type") == "directory":
                continue
            filename = _basename(entry["name"])
            if filename == METADATA_FILENAME and not include_meta:
                continue
            if filename.startswith(".") and filename.endswith(".tmp"):
                continue  # another process's write in progress
            files.append(ArtifactFile(filename, self, _checked=True))
        return files

    def get_file(self, filename: str, create: bool = False) -> ArtifactFile:
        self._ensure_exists()
        try:
            return ArtifactFile(filename, self)
        except FileNotFoundError:
            if create:
                return self.new_file(filename)
            raise

    def new_file(self, filename: str, content: Any = None, *, exist_ok: bool = True) -> ArtifactFile:
        self._ensure_exists()
        try:
            return ArtifactFile.new(self, filename, content)
        except FileExistsError:
            if not exist_ok:
                raise
            file = ArtifactFile(filename, self, _checked=True)
            if content is not None:
                file.write(content)
            return file

    def delete_file(self, filename: str) -> None:
        self._ensure_exists()
        self.get_file(filename).remove()

    def has_file(self, filename: str) -> bool:
        return self._fs.exists(f"{self.path}/{filename}")

    def delete(self) -> None:
        """Delete the artifact with all its files."""
        self._ensure_exists()
        self._fs.rm(self.path, recursive=True)

    def clear(self) -> None:
        """Delete every file and the metadata, keeping the (empty) artifact."""
        self._ensure_exists()
        for file in self.list_files(include_meta=True):
            file.remove()
        self._metadata = {}

    @contextlib.contextmanager
    def transaction(self):
        """Defer file writes until the block ends (fsspec transaction); nothing is written if it
        raises. The transaction belongs to the filesystem object, which is shared in a process:
        keep transactions short and do not run two at once in different threads."""
        self._ensure_exists()
        with self._fs.transaction:
            yield self
