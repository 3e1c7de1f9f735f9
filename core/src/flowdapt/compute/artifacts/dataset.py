"""The original's ``flowdapt.compute.artifacts.dataset``: array and data frame value hooks and
the handler registry."""

from flowdapt.artifacts.handlers import (
    array_from_artifact,
    array_to_artifact,
    dataframe_from_artifact,
    dataframe_to_artifact,
    get_handler_func,
    register_handler,
)

__all__ = [
    "array_from_artifact",
    "array_to_artifact",
    "dataframe_from_artifact",
    "dataframe_to_artifact",
    "get_handler_func",
    "register_handler",
]
