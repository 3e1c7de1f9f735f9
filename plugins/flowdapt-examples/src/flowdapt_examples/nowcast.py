"""Stages of the example nowcast workflow: one small model per city, trained in parallel.

Plain Python functions: no decorators, no Ray or Dask objects. The data is generated, so the
example runs anywhere without downloads.
"""

from __future__ import annotations

import zlib

import numpy as np

from flowdapt.compute.resources.workflow.context import get_run_context


def list_cities(n_cities: int = 500) -> list[str]:
    """The root stage receives the run input as keyword arguments."""
    return [f"city-{i:04d}" for i in range(n_cities)]


def train_city(city: str) -> dict:
    """Called once per city (a parameterized stage): fit a least-squares nowcast model."""
    config = get_run_context().config
    n_samples = int(config.get("samples_per_city", 200))
    n_features = int(config.get("features", 8))
    rng = np.random.default_rng(zlib.crc32(city.encode()))
    features = rng.normal(size=(n_samples, n_features))
    true_coef = rng.normal(size=n_features)
    temperature = features @ true_coef + rng.normal(scale=0.1, size=n_samples)
    coef, *_ = np.linalg.lstsq(features, temperature, rcond=None)
    rmse = float(np.sqrt(np.mean((features @ coef - temperature) ** 2)))
    return {"city": city, "rmse": rmse}


def summarize(models: list[dict]) -> dict:
    """Fan-in: receives the list of every city's result, in city order."""
    worst = max(models, key=lambda m: m["rmse"])
    return {
        "models": len(models),
        "mean_rmse": round(sum(m["rmse"] for m in models) / len(models), 4),
        "worst_city": worst["city"],
    }
