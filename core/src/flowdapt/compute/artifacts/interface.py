"""The original's ``flowdapt.compute.artifacts.interface``."""

from flowdapt.artifacts.interface import _ARTIFACT_METADATA_FILENAME, Artifact, ArtifactFile

__all__ = ["_ARTIFACT_METADATA_FILENAME", "Artifact", "ArtifactFile"]
