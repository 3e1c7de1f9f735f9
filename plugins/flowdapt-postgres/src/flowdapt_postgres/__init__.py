"""PostgreSQL document store for Flowdapt (``database.backend: postgres``)."""

from flowdapt_postgres.store import PostgresStore, PostgresStoreOptions, StoreClosedError

__all__ = ["PostgresStore", "PostgresStoreOptions", "StoreClosedError"]
