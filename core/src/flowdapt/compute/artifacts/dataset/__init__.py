"""The original's ``flowdapt.compute.artifacts.dataset`` package: array and data frame value hooks
(:mod:`.arrays`, :mod:`.dataframes`), the handler registry (:mod:`.handler`) and :mod:`.utils`.

Thin modules over :mod:`flowdapt.artifacts.handlers`. Importing them does not import numpy or
pandas; the hooks do when they run.
"""

from flowdapt.compute.artifacts.dataset.arrays import array_from_artifact, array_to_artifact
from flowdapt.compute.artifacts.dataset.dataframes import dataframe_from_artifact, dataframe_to_artifact
from flowdapt.compute.artifacts.dataset.handler import get_handler_func, register_handler

__all__ = [
    "array_from_artifact",
    "array_to_artifact",
    "dataframe_from_artifact",
    "dataframe_to_artifact",
    "get_handler_func",
    "register_handler",
]
