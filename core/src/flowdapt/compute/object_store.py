"""``from flowdapt.compute import object_store`` keeps working: the original's import path.

Same call signatures as the original (``namespace=""``, ``artifact_only=True``, ``executor``,
``save_artifact_hook``/``load_artifact_hook``, ``cluster_memory_params``, ``artifact_params``);
they are the functions of :mod:`flowdapt.object_store`.
"""

from flowdapt.object_store import (
    ObjectNotFoundError,
    Strategy,
    clear,
    default_load_hook,
    default_save_hook,
    delete,
    exists,
    get,
    keys,
    put,
    stats,
)

__all__ = [
    "ObjectNotFoundError",
    "Strategy",
    "clear",
    "default_load_hook",
    "default_save_hook",
    "delete",
    "exists",
    "get",
    "keys",
    "put",
    "stats",
]
