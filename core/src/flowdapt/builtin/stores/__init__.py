"""Built-in document stores: SQLite (default) and in-memory."""

from __future__ import annotations

from flowdapt.hookspecs import hookimpl


@hookimpl
def flowdapt_register_document_stores(register):
    from flowdapt.builtin.stores.memory import MemoryStore, MemoryStoreOptions
    from flowdapt.builtin.stores.sqlite import SQLiteStore, SQLiteStoreOptions

    register("sqlite", lambda options, settings=None: SQLiteStore.from_options(options, settings), SQLiteStoreOptions)
    register("memory", lambda options, settings=None: MemoryStore(), MemoryStoreOptions)
