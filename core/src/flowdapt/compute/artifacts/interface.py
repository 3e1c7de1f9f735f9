"""The original's ``flowdapt.compute.artifacts.interface``."""

from flowdapt.artifacts.interface import METADATA_FILENAME, Artifact, ArtifactFile

#: The original module's name for the metadata file of an artifact (stage code may import it).
_ARTIFACT_METADATA_FILENAME = METADATA_FILENAME

__all__ = ["_ARTIFACT_METADATA_FILENAME", "Artifact", "ArtifactFile"]
