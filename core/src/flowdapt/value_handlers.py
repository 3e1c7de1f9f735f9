"""The contract an artifact value handler is registered under: :class:`ValueHandler` and the names
it takes in the ``artifact_handlers`` registry.

It sits below both the plugin manager (which adapts ``register(value_type, ...)`` calls into
registry entries) and :mod:`flowdapt.artifacts.handlers` (which looks handlers up when a value is
saved or loaded), so neither imports the other to learn the shape of a handler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ToArtifact = Callable[..., None]  # (artifact, value, **options)
FromArtifact = Callable[..., Any]  # (artifact, **options)


@dataclass(frozen=True)
class ValueHandler:
    """How values of one type are written to an artifact and read back: what a plugin registers
    with ``register(value_type, ValueHandler(to_artifact, from_artifact), options_model)`` in
    ``flowdapt_register_artifact_handlers``. ``executor`` limits it to one executor (``"dask"``)."""

    to_artifact: ToArtifact
    from_artifact: FromArtifact
    executor: str = "*"

    def __post_init__(self) -> None:
        if not callable(self.to_artifact) or not callable(self.from_artifact):
            raise ValueError("a ValueHandler needs two callables: to_artifact and from_artifact")


def registry_name(value_type: str, executor: str = "*") -> str:
    """The name a handler has in the ``artifact_handlers`` registry: the value type, with
    ``@executor`` for a handler limited to one executor."""
    return value_type if executor in ("", "*") else f"{value_type}@{executor}"


def type_path(value_or_type: Any) -> str:
    """``module.QualName`` of a value's type (``numpy.ndarray``, ``pandas.core.frame.DataFrame``)."""
    kind = value_or_type if isinstance(value_or_type, type) else type(value_or_type)
    return f"{kind.__module__}.{kind.__qualname__}"
