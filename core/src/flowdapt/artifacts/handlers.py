"""Value handlers: how a Python value is written to an artifact and read back.

A handler is registered for a *value type* (the full type path, e.g. ``numpy.ndarray``,
``pandas.core.frame.DataFrame``) and is recorded as ``value_type`` in the artifact metadata, so
:func:`load_value` restores the right type without being told. Built in:

============================== ==================================== ===========================
value_type                     files                                needs
============================== ==================================== ===========================
``object``                     ``object`` (pickle, protocol 5)      nothing (the default)
``json``                       ``{name}.json``                      nothing
``pickle``                     ``{name}.pkl``                       nothing
``numpy.ndarray``              ``partition-{i}.npy``                numpy
``pandas.DataFrame``           ``partition-{i}.parquet`` (or csv)  pandas (+ pyarrow for parquet)
============================== ==================================== ===========================

The built-in handlers are registered by the built-in plugin ``artifact_handlers``
(:mod:`flowdapt.builtin.artifact_handlers`) through the ``flowdapt_register_artifact_handlers``
hook, the same ``register`` path as executors and stores; other plugins add theirs the same way.
Code may still call the original's :func:`register_handler` (or :func:`register_value_handler`). numpy, pandas and pyarrow are imported only
when a value of theirs is handled: the core does not depend on them.
"""

from __future__ import annotations

import io
import logging
import pickle
from collections.abc import Callable
from typing import Any

import orjson

from flowdapt.artifacts.interface import Artifact
from flowdapt.errors import ConfigurationError
from flowdapt.plugins import get_plugin_system
from flowdapt.value_handlers import (  # noqa: F401 - the handler contract, re-exported here
    FromArtifact,
    ToArtifact,
    ValueHandler,
    registry_name,
    type_path,
)

log = logging.getLogger(__name__)

OBJECT_FILE = "object"
VALUE_TYPE = "value_type"
VALUE_FILE = "value_file"  # the file name the json/pickle hooks used (the original assumed "file")

# Handlers registered by code calling the original's functions (``register_handler``), not by a
# plugin: (executor or "*", value_type, "to_artifact"|"from_artifact") -> fn. They win over a
# plugin's handler for the same type, as the last registration did in the original.
_HANDLER_MAP: dict[tuple[str, str, str], Callable[..., Any]] = {}


def register_handler(executor: str, data_type: str, operation: str, handler: Callable[..., Any]) -> None:
    """The original's registration call: one operation (``to_artifact`` or ``from_artifact``) for
    one executor name (``*`` for any). Plugins use the ``flowdapt_register_artifact_handlers`` hook."""
    if operation not in ("to_artifact", "from_artifact"):
        raise ValueError(f"operation must be 'to_artifact' or 'from_artifact', got {operation!r}")
    _HANDLER_MAP[(executor or "*", data_type, operation)] = handler
    _resolved.clear()


def register_value_handler(
    value_type: str | type, to_artifact: ToArtifact, from_artifact: FromArtifact, *, executor: str = "*"
) -> None:
    """Register both directions for a value type (a type or its full path), from code."""
    name = value_type if isinstance(value_type, str) else type_path(value_type)
    if not name or not callable(to_artifact) or not callable(from_artifact):
        raise ValueError("register_value_handler needs a value type and two callables")
    register_handler(executor, name, "to_artifact", to_artifact)
    register_handler(executor, name, "from_artifact", from_artifact)


def _plugin_registry() -> dict[str, Any]:
    """The ``artifact_handlers`` registry of the process's plugin system (built once per system:
    installing a plugin builds a new one, so its handlers are seen at once)."""
    try:
        return get_plugin_system().registry("artifact_handlers")
    except ConfigurationError:
        raise  # two plugins claim one value type, or one registered nonsense: say so, never guess
    except Exception as exc:  # noqa: BLE001 - artifacts still work with handlers registered in code
        log.debug("artifact handlers from plugins not loaded: %s", exc)
        return {}


def reload_plugin_handlers() -> None:
    """Kept for callers of earlier versions: plugin handlers are read from the plugin system's
    registry, which a reload (``set_plugin_system``, ``flowdapt plugin install``) replaces."""


# (executor, value_type, operation) -> (the registry it was resolved against, handler or None).
# A new plugin system brings a new registry object, and register_handler clears it.
_resolved: dict[tuple[str, str, str], tuple[Any, Callable[..., Any] | None]] = {}


def _resolve(executor: str, data_type: str, operation: str) -> Callable[..., Any] | None:
    registry = _plugin_registry()
    key = (executor, data_type, operation)
    hit = _resolved.get(key)
    if hit is not None and hit[0] is registry:
        return hit[1]
    handler: Callable[..., Any] | None = None
    for scope in (executor, "*") if executor not in ("", "*") else ("*",):
        direct = _HANDLER_MAP.get((scope, data_type, operation))
        if direct is not None:
            handler = direct
            break
        registration = registry.get(registry_name(data_type, scope))
        if registration is not None:
            handler = _checked(getattr(registration.factory, operation), registration)
            break
    _resolved[key] = (registry, handler)
    return handler


def get_handler_func(executor: str, data_type: str, operation: str) -> Callable[..., Any]:
    """The handler for an executor (falling back to ``*``), value type and operation."""
    handler = _resolve(executor, data_type, operation)
    if handler is None:
        raise ValueError(
            f"No handler found for executor '{executor}', data type '{data_type}', and operation '{operation}'. "
            "Install the plugin that handles this type, or register one with the "
            "flowdapt_register_artifact_handlers hook (docs/hooks.md)"
        )
    return handler


def _checked(handler: Callable[..., Any], registration: Any) -> Callable[..., Any]:
    """The handler, with its options validated by the plugin's options model first."""

    def call(*args: Any, **options: Any) -> Any:
        if options:
            registration.parse_options(options)  # an error names the plugin and the option
        return handler(*args, **options)

    return call


def find_value_type(value: Any, executor: str = "*") -> str | None:
    """The registered value type for ``value``: its own type or the nearest base class."""
    for kind in type(value).__mro__:
        name = type_path(kind)
        if _resolve(executor, name, "to_artifact") is not None:
            return name
    return None


def _current_executor() -> str:
    from flowdapt.engine.context import current_run_context

    ctx = current_run_context()
    return ctx.executor if ctx is not None else "*"


# -- generic save/load -------------------------------------------------------------------------


def save_value(artifact: Artifact, value: Any, *, executor: str = "", **options: Any) -> str:
    """Write ``value`` with the handler registered for its type (``object``/pickle when none);
    returns the value type recorded in the metadata."""
    executor = executor or _current_executor()
    value_type = find_value_type(value, executor)
    if value_type is None:
        save_object(artifact, value)
        return "object"
    handler = get_handler_func(executor, value_type, "to_artifact")
    artifact.clear()
    artifact.set_meta(VALUE_TYPE, value_type)
    handler(artifact, value, **options)
    return value_type


def load_value(artifact: Artifact, *, executor: str = "", **options: Any) -> Any:
    """Read the value of an artifact with the handler named by its ``value_type``."""
    value_type = artifact.get_meta(VALUE_TYPE)
    if value_type is None:
        if artifact.has_file(OBJECT_FILE):
            return load_object(artifact)
        raise ValueError(
            f"artifact {artifact.uri} has no value_type in its metadata: it was not written by a value "
            "hook, so there is no way to know how to read it. Read its files with get_file()."
        )
    if value_type == "object":
        return load_object(artifact)
    handler = get_handler_func(executor or _current_executor(), value_type, "from_artifact")
    return handler(artifact, **options)


def dumps_object(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=5)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle

        return cloudpickle.dumps(value, protocol=5)


def save_object(artifact: Artifact, value: Any) -> None:
    """The object store's default: the whole value pickled into the file ``object``."""
    data = dumps_object(value)  # before touching the artifact: an unpicklable value changes nothing
    artifact.get_file(OBJECT_FILE, create=True).write(data)
    if artifact.get_meta(VALUE_TYPE) != "object":
        artifact.set_meta(VALUE_TYPE, "object")


def load_object(artifact: Artifact) -> Any:
    try:
        data = artifact.get_file(OBJECT_FILE).read()
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"Artifact {artifact} has no `object` file. It is likely the Artifact has been "
            "corrupted or it was not saved with the default save hook."
        ) from exc
    return pickle.loads(data)


# -- the original's hook factories ----------------------------------------------------------------


def json_to_artifact(name: str = "file") -> Callable[[Artifact, Any], None]:
    """A save hook writing a JSON value to ``{name}.json`` (value_type ``json``)."""

    def _save(artifact: Artifact, value: Any) -> None:
        data = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
        artifact.new_file(f"{name}.json", data)
        artifact.update_meta({VALUE_TYPE: "json", VALUE_FILE: name})

    return _save


def json_from_artifact(name: str = "file") -> Callable[[Artifact], Any]:
    def _load(artifact: Artifact) -> Any:
        _expect(artifact, "json")
        return orjson.loads(artifact.get_file(f"{name}.json").read())

    return _load


def pickle_to_artifact(name: str = "file") -> Callable[[Artifact, Any], None]:
    """A save hook pickling a value to ``{name}.pkl`` (value_type ``pickle``)."""

    def _save(artifact: Artifact, value: Any) -> None:
        artifact.new_file(f"{name}.pkl", dumps_object(value))
        artifact.update_meta({VALUE_TYPE: "pickle", VALUE_FILE: name})

    return _save


def pickle_from_artifact(name: str = "file") -> Callable[[Artifact], Any]:
    def _load(artifact: Artifact) -> Any:
        _expect(artifact, "pickle")
        return pickle.loads(artifact.get_file(f"{name}.pkl").read())

    return _load


def _expect(artifact: Artifact, value_type: str) -> None:
    found = artifact.get_meta(VALUE_TYPE)
    if found != value_type:
        raise ValueError(f"artifact {artifact.uri} holds value_type {found!r}, not {value_type!r}")


def _typed_to_artifact(format: str, executor: str, kwargs: dict[str, Any]) -> Callable[[Artifact, Any], None]:
    def _save(artifact: Artifact, value: Any) -> None:
        run_executor = executor or _current_executor()
        value_type = find_value_type(value, run_executor) or type_path(value)
        handler = get_handler_func(run_executor, value_type, "to_artifact")
        artifact.clear()
        artifact.set_meta(VALUE_TYPE, value_type)
        handler(artifact, value, format=format, **kwargs)

    return _save


def _typed_from_artifact(format: str, executor: str, kwargs: dict[str, Any]) -> Callable[[Artifact], Any]:
    def _load(artifact: Artifact) -> Any:
        value_type = artifact.get_meta(VALUE_TYPE)
        handler = get_handler_func(executor or _current_executor(), value_type, "from_artifact")
        return handler(artifact, format=format, **kwargs)

    return _load


def array_to_artifact(
    format: str = "npy", *, executor: str = "", **kwargs: Any
) -> Callable[[Artifact, Any], None]:
    """A save hook for arrays (numpy, or any array type a plugin registers): ``partition-{i}.npy``."""
    return _typed_to_artifact(format, executor, kwargs)


def array_from_artifact(
    format: str = "npy", *, executor: str = "", **kwargs: Any
) -> Callable[[Artifact], Any]:
    return _typed_from_artifact(format, executor, kwargs)


def dataframe_to_artifact(
    format: str = "parquet", *, executor: str = "", **kwargs: Any
) -> Callable[[Artifact, Any], None]:
    """A save hook for data frames (pandas, or any a plugin registers): ``partition-{i}.parquet|csv``."""
    return _typed_to_artifact(format, executor, kwargs)


def dataframe_from_artifact(
    format: str = "parquet", *, executor: str = "", **kwargs: Any
) -> Callable[[Artifact], Any]:
    return _typed_from_artifact(format, executor, kwargs)


# -- built-in numpy and pandas handlers ------------------------------------------------------------


def _partitions(artifact: Artifact, suffix: str) -> list:
    files = [f for f in artifact.list_files() if f.name.startswith("partition-") and f.name.endswith(suffix)]

    def index(file) -> int:
        try:
            return int(file.name[len("partition-") : -len(suffix)])
        except ValueError:
            return 0

    return sorted(files, key=index)


def numpy_array_to_artifact(artifact: Artifact, value: Any, format: str = "npy", num_parts: int = 1) -> None:
    import numpy

    if format != "npy":
        raise ValueError(f"numpy arrays are written as 'npy', not {format!r}")
    parts = numpy.array_split(value, num_parts) if num_parts > 1 else [value]
    for i, part in enumerate(parts):
        buffer = io.BytesIO()
        numpy.save(buffer, part, allow_pickle=part.dtype.hasobject)
        artifact.new_file(f"partition-{i}.npy", buffer.getbuffer())


def numpy_array_from_artifact(artifact: Artifact, format: str = "npy") -> Any:
    import numpy

    _expect(artifact, "numpy.ndarray")
    files = _partitions(artifact, f".{format}")
    if not files:
        raise ValueError(f"Artifact '{artifact.name}' does not contain any files ending in '.{format}'")
    arrays = [numpy.load(io.BytesIO(f.read()), allow_pickle=True) for f in files]
    return arrays[0] if len(arrays) == 1 else numpy.concatenate(arrays)


def pandas_dataframe_to_artifact(
    artifact: Artifact, value: Any, format: str = "parquet", num_parts: int = 1
) -> None:
    if format not in ("parquet", "csv"):
        raise ValueError(f"data frames are written as 'parquet' or 'csv', not {format!r}")
    size = len(value)
    step = max(-(-size // max(num_parts, 1)), 1)
    chunks = [value.iloc[i : i + step] for i in range(0, size, step)] or [value]
    for i, chunk in enumerate(chunks):
        buffer = io.BytesIO()
        if format == "parquet":
            try:
                chunk.to_parquet(buffer)
            except ImportError as exc:
                raise ImportError(
                    f"writing a DataFrame as parquet needs pyarrow: pip install pyarrow ({exc})"
                ) from exc
        else:
            chunk.to_csv(buffer)
        artifact.new_file(f"partition-{i}.{format}", buffer.getbuffer())


def pandas_dataframe_from_artifact(artifact: Artifact, format: str = "parquet") -> Any:
    import pandas

    files = _partitions(artifact, f".{format}")
    if not files:
        raise ValueError(f"Artifact '{artifact.name}' does not contain any files ending in '.{format}'")
    readers = {
        "parquet": lambda data: pandas.read_parquet(io.BytesIO(data)),
        "csv": lambda data: pandas.read_csv(io.BytesIO(data), index_col=0),
        "orc": lambda data: pandas.read_orc(io.BytesIO(data)),
    }
    try:
        read = readers[format]
    except KeyError:
        raise ValueError(f"data frames are read from parquet, csv or orc, not {format!r}") from None
    frames = [read(f.read()) for f in files]
    return frames[0] if len(frames) == 1 else pandas.concat(frames)


def by_file_name(factory: Callable[[str], Callable[..., Any]]) -> Callable[..., Any]:
    """A value handler from a hook factory taking a file name (``json_to_artifact``): the file
    is the ``name`` option, else the one recorded when the value was written, else ``file``."""

    def call(artifact: Artifact, *args: Any, name: str = "", **_: Any) -> Any:
        if not name:
            name = "file" if args else artifact.get_meta(VALUE_FILE, "file")
        return factory(name)(artifact, *args)

    return call
