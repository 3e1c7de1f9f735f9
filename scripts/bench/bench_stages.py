"""Stage functions shared by the benchmarks (importable by worker processes of every executor)."""

from __future__ import annotations

import numpy as np


def noop(x):
    return x


def fit_model(x: int):
    """A tiny least-squares model per item: 200 samples x 8 features."""
    rng = np.random.default_rng(x)
    features = rng.normal(size=(200, 8))
    target = features @ rng.normal(size=8) + rng.normal(scale=0.1, size=200)
    coef, *_ = np.linalg.lstsq(features, target, rcond=None)
    return coef
