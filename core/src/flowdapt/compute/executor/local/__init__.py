"""The original's ``flowdapt.compute.executor.local``: :class:`LocalExecutor`.

``LocalExecutor(use_processes=True, cpus="auto", cluster_memory_socket_path=...)`` is our local
executor: a process pool (threads with ``use_processes=False``) of ``cpus`` workers. The socket
path is accepted and ignored: cluster memory is the configured backend (LMDB by default), not a
socket server. ``start()``, ``close()``, ``kind`` and ``await environment_info()`` as in the original.
"""

from __future__ import annotations

import os
from typing import Any

from flowdapt.builtin.local_executor import LocalExecutor as _LocalExecutor
from flowdapt.compute.executor.base import EnvironmentInfo

__all__ = ["SOCKET_PATH", "LocalExecutor"]

#: The original's default socket path (unused here).
SOCKET_PATH = "/tmp/flowdapt-cluster-memory.sock"


class LocalExecutor(_LocalExecutor):
    def __init__(
        self,
        use_processes: bool = True,
        cpus: int | str = "auto",
        cluster_memory_socket_path: str = SOCKET_PATH,
        *,
        settings: Any = None,
    ) -> None:
        workers = None if cpus == "auto" else int(cpus)
        super().__init__("process" if use_processes else "thread", workers, settings=settings)
        self.cluster_memory_socket_path = cluster_memory_socket_path

    async def start(self) -> None:
        if self.settings is None:  # workers get the caller's settings, as the server's do
            from flowdapt.settings import get_settings

            self.settings = get_settings()
        await super().start()

    def environment_info(self) -> EnvironmentInfo:  # type: ignore[override]
        info = super().environment_info()
        info.update(processes=self.mode == "process", cpus=self.workers or os.cpu_count())
        return EnvironmentInfo(info)
