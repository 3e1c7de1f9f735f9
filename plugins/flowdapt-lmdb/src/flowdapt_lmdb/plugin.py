"""The ``lmdb`` plugin: registers the LMDB cluster memory (``cluster_memory.backend: lmdb``)."""

from __future__ import annotations

from flowdapt.hookspecs import hookimpl
from flowdapt_lmdb.backend import LMDBClusterMemory, LMDBOptions


def default_path(settings) -> str:
    """``<app_dir>/cluster_memory.lmdb``: every process that shares the app dir shares the memory."""
    if settings is None:
        from flowdapt.settings import get_settings

        settings = get_settings()
    return str(settings.app_dir / "cluster_memory.lmdb")


def create(options: LMDBOptions, settings=None) -> LMDBClusterMemory:
    return LMDBClusterMemory(options.path or default_path(settings), options)


@hookimpl
def flowdapt_register_cluster_memory(register):
    register("lmdb", create, LMDBOptions)
