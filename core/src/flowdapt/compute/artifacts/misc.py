"""The original's ``flowdapt.compute.artifacts.misc``: JSON and pickle value hooks."""

from flowdapt.artifacts.handlers import (
    json_from_artifact,
    json_to_artifact,
    pickle_from_artifact,
    pickle_to_artifact,
)

__all__ = ["json_from_artifact", "json_to_artifact", "pickle_from_artifact", "pickle_to_artifact"]
