"""Which process owns a run: the identity a server writes into the runs it starts, and the check
that tells, on restart, whether that process still runs. Its own module so the run service
(:mod:`flowdapt.server.runs`) and the server object (:mod:`flowdapt.server.core`) both use it
without importing each other."""

from __future__ import annotations

import os
import socket

import psutil


def process_identity(pid: int | None = None) -> str:
    """``host:pid:start time``, unique per process even when a pid is reused."""
    pid = pid or os.getpid()
    try:
        created = int(psutil.Process(pid).create_time())
    except psutil.Error:
        created = 0
    return f"{socket.gethostname()}:{pid}:{created}"


def owner_alive(owner: str) -> bool:
    """Whether the process that owns a run still runs. Other hosts' processes are assumed alive
    (we cannot see them); their own restart marks their runs."""
    try:
        host, pid_text, created_text = owner.rsplit(":", 2)
        pid, created = int(pid_text), int(created_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    try:
        return int(psutil.Process(pid).create_time()) == created
    except psutil.Error:
        return False
