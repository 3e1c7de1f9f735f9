"""``flowdapt.builtins.utils``: the original's pandas helpers for time-series stage code.

Conventions they share with the original: a frame's time column is ``date``; feature columns start
with ``%`` and label columns with ``&``. Needs pandas (``pip install pandas``).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from flowdapt.lib.logger import get_logger
from flowdapt.lib.utils.misc import dict_to_list_string

logger = get_logger(__name__)

__all__ = [
    "artifact_name_from_dict",
    "dummy_pandas_df",
    "extract_features_and_labels",
    "find_features",
    "find_labels",
    "get_current_threads_all_procs",
    "get_data_frequency",
    "get_data_gap",
    "get_total_system_threads",
    "load_historical_data_from_feather",
    "merge_dataframes",
    "path_from_string",
    "remove_none_columns",
    "remove_rows_with_nans",
    "save_historical_data_to_feather",
    "shift_and_add_features",
    "string_to_uuid",
    "update_historic_data",
]


def find_labels(dataframe: pd.DataFrame) -> list:
    """Names of the label columns (starting with ``&``)."""
    return [c for c in dataframe.columns if str(c).startswith("&")]


def find_features(dataframe: pd.DataFrame) -> list:
    """Names of the feature columns (starting with ``%``)."""
    return [c for c in dataframe.columns if str(c).startswith("%")]


def dummy_pandas_df(rows: int, cols: int, withnans: bool = True) -> pd.DataFrame:
    """Random data for tests: feature columns ``%-0``... and a last column ``&-a`` as the label."""
    df = pd.DataFrame(np.random.rand(rows, cols) * 35)
    df.columns = [f"%-{i}" for i in range(cols - 1)] + ["&-a"]
    return df.mask(df < 0.01) if withnans else df


def _feather_path(metadata: dict[str, Any], save_path: str) -> Path:
    parts, stem = dict_to_list_string(metadata)
    return Path(save_path, *parts) / f"{stem}.feather"


def save_historical_data_to_feather(data: pd.DataFrame, metadata: dict[str, Any], save_path: str) -> bool:
    """Write ``data`` to ``save_path/<metadata values...>/<values joined by _>.feather``."""
    path = _feather_path(metadata, save_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data.to_feather(path)
    return path.is_file()


def load_historical_data_from_feather(
    metadata: dict[str, Any], save_path: str, num_points: int = -1
) -> pd.DataFrame | None:
    """The frame saved for ``metadata`` (its last ``num_points`` rows if >= 0), or None (logged)."""
    path = _feather_path(metadata, save_path)
    try:
        df = pd.read_feather(path)
    except Exception as exc:
        logger.warning(f"Unable to load feather from {path.parent}. {exc}")
        return None
    return df if num_points < 0 else df.tail(num_points)


def get_data_frequency(df: pd.DataFrame) -> timedelta:
    """The time between the frame's last two ``date`` values, taken as its sampling interval."""
    return pd.to_timedelta(df["date"].iloc[-1] - df["date"].iloc[-2])


def update_historic_data(
    metadata: dict[str, Any], incoming_df: pd.DataFrame, save_path: str
) -> tuple[bool, int]:
    """Append ``incoming_df`` to the saved frame (rows from its first date on replace the old ones).

    Returns ``(saved, intervals between the old last row and the first new one)``; ``(False, 0)``
    when there is nothing to add or no saved frame.
    """
    if incoming_df.empty:
        return False, 0
    existing = load_historical_data_from_feather(metadata, save_path, -1)
    if existing is None:
        return False, 0
    first_new = incoming_df["date"].iloc[0]
    gap = (first_new - existing["date"].iloc[-1]) / get_data_frequency(existing)
    if gap > 1:
        logger.warning("Gap in data, should redownload from scratch.")
    merged = pd.concat([existing[existing["date"] < first_new], incoming_df], ignore_index=True)
    if not save_historical_data_to_feather(merged, metadata, save_path):
        logger.warning(f"Unable to save dataframe to feather at {save_path}, {metadata}")
    return True, gap


def path_from_string(s: str) -> Path:
    """``a_b_c`` as the path ``a/b/c``."""
    return Path(*s.split("_"))


def merge_dataframes(df: pd.DataFrame, df_inc: pd.DataFrame, prefer_new: bool = True) -> pd.DataFrame:
    """``df`` followed by the rows of ``df_inc``, by ``date``.

    With ``prefer_new`` the incoming rows replace ``df``'s rows from the first incoming date on;
    without, only incoming rows later than ``df``'s last date are added. As in the original, an
    empty ``df_inc`` returns ``(False, 0)``, not a frame.
    """
    if len(df_inc.index) == 0:
        return (False, 0)  # type: ignore[return-value]
    last_old = df["date"].iloc[-1]
    first_new = df_inc["date"].iloc[0]
    if (first_new - last_old) / get_data_frequency(df) > 1:
        logger.warning("Gap in data, should redownload from scratch.")
    if prefer_new:
        head, tail = df[df["date"] < first_new], df_inc
    else:
        head, tail = df, df_inc[df_inc["date"] > last_old]
    return pd.concat([head, tail], ignore_index=True)


def get_data_gap(df: pd.DataFrame, tz: tzinfo | None = None) -> int:
    """How many sampling intervals lie between the frame's last ``date`` and now.

    The last date is naive and read in ``tz`` (UTC: ``timezone.utc``), as in the original.
    """
    last = pd.Timestamp(df.iloc[-1]["date"])
    last = last.tz_localize(tz) if last.tzinfo is None else last.tz_convert(tz)
    now = datetime.now(tz=tz)
    interval = get_data_frequency(df)
    rows = int((now - last) / interval)
    if rows > 0:
        logger.info(f"Gap in data, downloading {rows} points.")
        logger.info(f"Last data point: {last}, current time: {now} tf_delta: {interval}, row_difference: {rows}")
    else:
        logger.info("No gap in data, pulling from memory/storage.")
    return rows


def extract_features_and_labels(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(features, labels)``: the ``%`` columns and the ``&`` columns (an error is logged if either is empty)."""
    labels = df.filter(find_labels(df))
    features = df.filter(find_features(df))
    if labels.empty:
        logger.error("No labels found")
    if features.empty:
        logger.error("No features found")
    return features, labels


def remove_rows_with_nans(df: pd.DataFrame) -> pd.DataFrame:
    """The rows without any NaN (how many were dropped is logged)."""
    keep = ~df.isna().any(axis=1)
    dropped = int((~keep).sum())
    if dropped:
        logger.warning(f"Dropped {dropped} from dataset due to NaNs")
    return df[keep]


def remove_none_columns(df: pd.DataFrame, threshold: int = 40) -> pd.DataFrame:
    """Without the columns that are all NaN or have more than ``threshold`` NaNs."""
    before = len(df.columns)
    df = df.dropna(axis=1, thresh=len(df.index) - threshold).dropna(axis=1, how="all")
    logger.info(f"Removed {before - len(df.columns)} columns due to NaNs")
    return df


def shift_and_add_features(df: pd.DataFrame, shifts: int, cols: list) -> pd.DataFrame:
    """``df`` plus ``cols`` shifted by 1 .. ``shifts - 1`` rows, named ``<col>_shift-<n>``."""
    shifted = [df[cols].shift(n).add_suffix(f"_shift-{n}") for n in range(1, shifts)]
    return pd.concat([df, *shifted], axis=1) if shifted else df


def get_current_threads_all_procs() -> int:
    """Threads of this process and all its children."""
    import psutil

    me = psutil.Process()
    total = me.num_threads()
    for child in me.children(recursive=True):
        try:
            total += child.num_threads()
        except psutil.Error:
            pass
    return total


def get_total_system_threads() -> int:
    """Threads of every process on the machine (logged, and returned)."""
    import psutil

    total = 0
    for proc in psutil.process_iter():
        try:
            total += proc.num_threads()
        except psutil.Error:
            pass
    logger.info(f"Total number of processes in the system: {len(psutil.pids())}")
    logger.info(f"Total number of threads consumed by processes in the system: {total}")
    return total


def artifact_name_from_dict(d: dict) -> str:
    """A name for an artifact (or object store key) from a dict's truthy values, joined by ``_``:
    URL-quoted, then ``%`` and characters that paths cannot hold dropped and dots made ``_``, so
    ``{"city": "Los Angeles", "n": 1.5}`` gives ``Los20Angeles_1_5``, the original's name."""
    _, joined = dict_to_list_string(d)
    name = quote(joined)
    name = re.sub(r'[\\/:*?"<>|]', "", name)
    name = re.sub(r"\s+", "-", name)
    return name.replace("%", "").replace(" ", "_").replace(".", "_")


def string_to_uuid(s: str) -> str:
    """A stable UUID (v5, DNS namespace) for a string."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, s))
