"""Stage functions of scripts/bench/executors.py (importable by Ray and Dask workers)."""

from __future__ import annotations

from bench_stages import fit_model


def fit_and_put(x: int):
    """Fit a tiny least-squares model and put its coefficients in the object store."""
    from flowdapt import object_store

    object_store.put(f"model-{x}", fit_model(x))
    return x


def noop_chunk(items):
    return [x for x in items]


def fit_chunk(items):
    return [fit_model(x) for x in items]


def fit_and_put_chunk(items):
    """The raw baseline doing the same work as ``fit_and_put``: fit and the same object store put."""
    return [fit_and_put(x) for x in items]
