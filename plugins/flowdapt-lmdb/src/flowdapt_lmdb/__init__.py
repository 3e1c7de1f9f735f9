"""LMDB cluster memory for Flowdapt: the default object-store memory on one machine."""

from flowdapt_lmdb.backend import LMDBClusterMemory, LMDBOptions

__all__ = ["LMDBClusterMemory", "LMDBOptions"]
