"""The original's ``flowdapt.compute.artifacts.dataset.utils``."""

from __future__ import annotations

from typing import Any

__all__ = ["split_dataframe"]


def split_dataframe(dataframe: Any, n: int) -> list[Any]:
    """``n`` consecutive slices of the frame's rows, the first ``len % n`` one row longer."""
    if n <= 0:
        raise ZeroDivisionError("Cannot split dataframe into zero or negative chunks.")
    size, extra = divmod(len(dataframe), n)
    bounds = [i * size + min(i, extra) for i in range(n + 1)]
    return [dataframe.iloc[bounds[i] : bounds[i + 1]] for i in range(n)]
