"""The ``postgres`` plugin: registers the PostgreSQL document store (``database.backend: postgres``).

Only the options model is imported here; the store (and psycopg) when one is made.
"""

from __future__ import annotations

from flowdapt.hookspecs import hookimpl
from flowdapt_postgres.options import PostgresStoreOptions


def create(options: PostgresStoreOptions, settings=None):
    from flowdapt_postgres.store import PostgresStore

    return PostgresStore(options)


@hookimpl
def flowdapt_register_document_stores(register):
    register("postgres", create, PostgresStoreOptions)
