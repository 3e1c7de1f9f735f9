"""``flowdapt.compute.artifacts``: the original's import path for artifacts (and its
``interface``, ``misc`` and ``dataset`` submodules). Thin aliases of :mod:`flowdapt.artifacts`."""

from flowdapt.artifacts import (
    Artifact,
    ArtifactFile,
    check_if_artifact_exists,
    get_artifact,
    list_artifacts,
    new_artifact,
)

__all__ = [
    "Artifact",
    "ArtifactFile",
    "check_if_artifact_exists",
    "get_artifact",
    "list_artifacts",
    "new_artifact",
]
