"""The fork server the Local executor's worker processes start from (Linux).

It lives in the engine, below both the CLI and the built-in Local executor, because the CLI starts
it (``flowdapt exec``) before it knows which executor it will use, and the CLI never imports a
built-in plugin. Kept free of heavy imports, so ``flowdapt exec`` can start the fork server first thing, before it
imports its own command line: the fork server's interpreter start and module imports then run
beside the CLI's start-up instead of delaying the first run.
"""

from __future__ import annotations

import contextlib
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

    with main_module_hidden():  # as for the pool's own start: the fork server must not import it
        forkserver.ensure_running()


@contextlib.contextmanager
def main_module_hidden():
    """Start worker processes without re-running the user's ``__main__`` script in them.

    Under forkserver/spawn, multiprocessing re-imports the main script in each worker, so a script
    without an ``if __name__ == "__main__"`` guard would run itself again. Stage callables travel
    by value (cloudpickle), so workers never need the main module.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None or not hasattr(main, "__file__"):
        yield
        return
    path = main.__file__
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path
