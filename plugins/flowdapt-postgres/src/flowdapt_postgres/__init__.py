"""PostgreSQL document store for Flowdapt (``database.backend: postgres``)."""

from __future__ import annotations

from typing import Any

from flowdapt_postgres.options import PostgresStoreOptions

__all__ = ["PostgresStore", "PostgresStoreOptions", "StoreClosedError"]


def __getattr__(name: str) -> Any:
    # The store imports psycopg: only when it is asked for (the plugin's entry point stays cheap).
    if name in ("PostgresStore", "StoreClosedError"):
        from flowdapt_postgres import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
