"""The ``postgres`` plugin: registers the PostgreSQL document store (``database.backend: postgres``)."""

from __future__ import annotations

from flowdapt.hookspecs import hookimpl
from flowdapt_postgres.store import PostgresStore, PostgresStoreOptions


def create(options: PostgresStoreOptions, settings=None) -> PostgresStore:
    return PostgresStore(options)


@hookimpl
def flowdapt_register_document_stores(register):
    register("postgres", create, PostgresStoreOptions)
    register("postgresql", create, PostgresStoreOptions)
