"""The original's ``flowdapt.compute.artifacts.dataset.arrays``: numpy arrays in artifacts.

``array_to_artifact()`` / ``array_from_artifact()`` are object store hooks; the numpy handlers
write ``partition-<i>.npy`` files, as the original's did, so either reads the other's artifacts.
"""

from __future__ import annotations

import io
from typing import Any

from flowdapt.artifacts import ArtifactFile
from flowdapt.artifacts.handlers import (
    array_from_artifact,
    array_to_artifact,
    numpy_array_from_artifact,
    numpy_array_to_artifact,
)

__all__ = [
    "array_from_artifact",
    "array_to_artifact",
    "numpy_array_from_artifact",
    "numpy_array_to_artifact",
    "read_array_from_artifact",
    "write_array_to_artifact",
]


def read_array_from_artifact(artifact_file: ArtifactFile, format: str = "npy") -> Any:
    """The array in one artifact file (``npy`` or ``npz``)."""
    import numpy

    if format not in ("npy", "npz", "pickle"):
        raise ValueError(f"arrays are read from npy or npz files, not {format!r}")
    return numpy.load(io.BytesIO(artifact_file.read()), allow_pickle=True)


def write_array_to_artifact(file: ArtifactFile, array: Any, format: str = "npy") -> None:
    """Write ``array`` into one artifact file, as ``npy``."""
    import numpy

    if format != "npy":
        raise ValueError(f"arrays are written as 'npy', not {format!r}")
    buffer = io.BytesIO()
    numpy.save(buffer, array)
    file.write(buffer.getvalue())
