"""Built-in plugin ``artifact_handlers``: the artifact value handlers the core ships.

``json`` and ``pickle`` (the original's ``json_to_artifact``/``pickle_to_artifact`` files),
``numpy.ndarray`` (``partition-{i}.npy``) and pandas data frames (``partition-{i}.parquet|csv``).
numpy, pandas and pyarrow are imported only when a value of theirs is handled: the core does not
depend on them. Registered through the same ``register`` callback as every plugin's handlers.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flowdapt.artifacts import handlers as h
from flowdapt.hookspecs import hookimpl


class NamedFileOptions(BaseModel):
    """``name``: the file's stem (``{name}.json``/``{name}.pkl``); read back from the metadata."""

    name: str = Field(default="", description="file stem; default 'file' (or the one recorded when written)")


class PartitionedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = Field(default="", description="file format: npy (arrays), parquet or csv (data frames; orc to read)")
    num_parts: int = Field(default=1, ge=1, description="files to split the value into when writing")


@hookimpl
def flowdapt_register_artifact_handlers(register):
    register("json", h.ValueHandler(h.by_file_name(h.json_to_artifact), h.by_file_name(h.json_from_artifact)), NamedFileOptions)
    register("pickle", h.ValueHandler(h.by_file_name(h.pickle_to_artifact), h.by_file_name(h.pickle_from_artifact)), NamedFileOptions)
    register("numpy.ndarray", h.ValueHandler(h.numpy_array_to_artifact, h.numpy_array_from_artifact), PartitionedOptions)
    frames = h.ValueHandler(h.pandas_dataframe_to_artifact, h.pandas_dataframe_from_artifact)
    # pandas >= 3 reports its classes as ``pandas.DataFrame``; older versions (and the original
    # Flowdapt's metadata) as ``pandas.core.frame.DataFrame``. Either name reads back.
    register("pandas.core.frame.DataFrame", frames, PartitionedOptions)
    register("pandas.DataFrame", frames, PartitionedOptions)
