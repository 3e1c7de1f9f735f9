"""The fork server the Local executor's worker processes start from (Linux).

Kept free of heavy imports, so ``flowdapt exec`` can start the fork server first thing, before it
imports its own command line: the fork server's interpreter start and module imports then run
beside the CLI's start-up instead of delaying the first run.
"""

from __future__ import annotations

import multiprocessing
import sys

#: Imported once by the fork server, so each worker forked from it starts with them.
FORKSERVER_PRELOAD = [
    "flowdapt.engine.worker",
    "flowdapt.builtin.local_executor",
    # What each worker's set-up uses (flowdapt.builtin.local_executor._init_worker).
    "flowdapt.settings",
    "flowdapt.plugins",
]


def forkserver_context():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
    return ctx


def prestart_fork_server() -> None:
    """Start the fork server now, without waiting for it to be ready.

    Only where forkserver is the default start method (Linux); harmless if no pool is made (it
    exits with this process).
    """
    if sys.platform != "linux":
        return
    forkserver_context()
    from multiprocessing import forkserver

    from flowdapt.builtin.process_pool import main_module_hidden

    with main_module_hidden():  # as for the pool's own start: the fork server must not import it
        forkserver.ensure_running()
