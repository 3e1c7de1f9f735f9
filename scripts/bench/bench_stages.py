"""Stage functions shared by the benchmarks (importable by worker processes of every executor)."""

from __future__ import annotations

import numpy as np


def noop(x):
    return x


def fit_model(x: int):
    """A tiny least-squares model per item: 200 samples x 8 features."""
    rng = np.random.default_rng(x)
    features = rng.normal(size=(200, 8))
    target = features @ rng.normal(size=8) + rng.normal(scale=0.1, size=200)
    coef, *_ = np.linalg.lstsq(features, target, rcond=None)
    return coef


def log_one(x):
    """One ``logging`` line per item (the run-log benchmark)."""
    import logging

    logging.getLogger("bench").info("item %s", x)
    return x


def print_one(x):
    """One printed line per item (the run-log benchmark)."""
    print("item", x)
    return x


def log_lines(n: int = 1000):
    """``n`` logging lines from one call (the server RSS benchmark)."""
    import logging

    log = logging.getLogger("bench")
    for i in range(n):
        log.info("line %s of a logging run", i)
    return n


_floor_logger = None
_devnull = None


def log_one_floor(x):
    """``log_one`` without capture: the same ``logging.info`` call reaching a handler that only
    formats the message (the cost of the logging call itself, the floor for captured logging)."""
    import logging

    global _floor_logger
    if _floor_logger is None:

        class _Formatting(logging.Handler):
            def handle(self, record):
                record.getMessage()
                return True

        _floor_logger = logging.getLogger("bench.floor")
        _floor_logger.propagate = False
        _floor_logger.setLevel(logging.INFO)
        _floor_logger.addHandler(_Formatting())
    _floor_logger.info("item %s", x)
    return x


def log_one_lean(x):
    """``log_one`` with the logging HOWTO's optimisation knobs on (no caller, thread or process
    fields in the record): what a ``flowdapt_worker_setup`` hook that sets them gets. Set and
    restored around each call, so the other cases run by the same worker processes keep the
    defaults (the restore is counted here: slightly pessimistic)."""
    import logging

    saved = logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    try:
        logging.getLogger("bench").info("item %s", x)
    finally:
        logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing = saved
    return x


def print_one_floor(x):
    """``print_one`` to a file on /dev/null: the cost of the print call itself."""
    import os

    global _devnull
    if _devnull is None:
        _devnull = open(os.devnull, "w")  # noqa: SIM115 - kept open for the process
    print("item", x, file=_devnull)
    return x


def flood_mb(mb: int = 1024, width: int = 100):
    """Print ``mb`` megabytes in lines of ``width`` characters (the server-memory benchmark)."""
    row = "f" * (width - 9)
    lines = mb * 1024 * 1024 // width
    for i in range(lines):
        print(f"{i:8d}", row)
    return lines
