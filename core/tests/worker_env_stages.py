"""A stage that reports how a worker process sized its native thread pools."""

from __future__ import annotations

import os

NAMES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def native_threads(x=None) -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in NAMES}
