"""Stage functions for tests/test_object_store.py (importable by worker processes)."""

from __future__ import annotations

import os

import numpy as np

from flowdapt.compute import object_store
from flowdapt.compute.resources.workflow.context import get_run_context


def fit(model_id: int) -> np.ndarray:
    """A small least-squares model, the same for the same id in every process."""
    rng = np.random.default_rng(model_id)
    x = rng.random((40, 4))
    y = x @ (np.arange(4.0) + model_id) + rng.normal(0, 0.01, 40)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return coef


def model_ids(n: int = 1000) -> list[int]:
    return list(range(n))


def train(model_id: int) -> int:
    object_store.put(f"model-{model_id}", {"id": model_id, "coef": fit(model_id)})
    return os.getpid()


def serve(model_id: int) -> list:
    model = object_store.get(f"model-{model_id}")
    ok = model["id"] == model_id and bool(np.allclose(model["coef"], fit(model_id), rtol=0, atol=1e-12))
    return [os.getpid(), ok]


def namespace_seen() -> str:
    object_store.put("where-am-i", get_run_context().namespace)
    return object_store.get("where-am-i")
