"""The original's ``flowdapt.compute.artifacts.dataset.dataframes``: data frames in artifacts.

``dataframe_to_artifact(format="parquet")`` / ``dataframe_from_artifact(...)`` are object store
hooks; the pandas handlers write ``partition-<i>.parquet|csv`` files, as the original's did.
"""

from __future__ import annotations

import io
from typing import Any

from flowdapt.artifacts import ArtifactFile
from flowdapt.artifacts.handlers import (
    dataframe_from_artifact,
    dataframe_to_artifact,
    pandas_dataframe_from_artifact,
    pandas_dataframe_to_artifact,
)

__all__ = [
    "dataframe_from_artifact",
    "dataframe_to_artifact",
    "pandas_dataframe_from_artifact",
    "pandas_dataframe_to_artifact",
    "read_dataframe_from_artifact",
    "write_dataframe_to_artifact",
]


def read_dataframe_from_artifact(file: ArtifactFile, format: str = "parquet") -> Any:
    """The data frame in one artifact file (``parquet``, ``csv`` or ``orc``)."""
    import pandas

    readers = {"parquet": pandas.read_parquet, "csv": pandas.read_csv, "orc": pandas.read_orc}
    if format not in readers:
        raise ValueError(f"data frames are read from parquet, csv or orc, not {format!r}")
    return readers[format](io.BytesIO(file.read()))


def write_dataframe_to_artifact(file: ArtifactFile, dataframe: Any, format: str = "parquet") -> None:
    """Write ``dataframe`` into one artifact file (``parquet`` or ``csv``)."""
    buffer = io.BytesIO()
    if format == "parquet":
        dataframe.to_parquet(buffer)
    elif format == "csv":
        dataframe.to_csv(buffer)
    else:
        raise ValueError(f"data frames are written as 'parquet' or 'csv', not {format!r}")
    file.write(buffer.getvalue())
