"""Large run results live outside the database, so it stays small and run listings stay fast.

A result whose JSON encoding is over ``compute.max_result_bytes`` is written to
``<app_dir>/results/<run uid>.json`` and the stored run carries ``result_ref`` instead of
``result``. Everything goes through these few functions, so moving the files to the artifact
store later changes only this module.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson

from flowdapt.errors import ResourceNotFoundError
from flowdapt.resources.run import WorkflowRun
from flowdapt.server.http import dumps
from flowdapt.settings import Settings

REF_PREFIX = "results/"
INPUT_PREFIX = "inputs/"


def results_dir(settings: Settings) -> Path:
    return settings.app_dir / "results"


# -- the files both use: ``<app_dir>/<prefix><run uid>.json`` ----------------------------------


def _write(settings: Settings, prefix: str, run: WorkflowRun, encoded: bytes) -> str:
    """Write ``encoded`` to the run's file under ``prefix`` (atomically); returns its ref."""
    directory = settings.app_dir / prefix.rstrip("/")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run.uid}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(encoded)
    os.replace(tmp, path)
    return f"{prefix}{path.name}"


def _read(settings: Settings, ref: str, what: str, hint: str = "") -> Any:
    """The JSON in a ref's file; ``what`` ("the result of run x") names it when it is gone."""
    path = settings.app_dir / ref
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ResourceNotFoundError(f"{what} was stored at {path}, which no longer exists{hint}") from None


def _unlink(settings: Settings, ref: str | None) -> None:
    if ref:
        try:
            (settings.app_dir / ref).unlink()
        except FileNotFoundError:
            pass


def _sweep(settings: Settings, prefix: str, older_than_seconds: float) -> int:
    """Delete the files under ``prefix`` older than the retention window; returns how many."""
    directory = settings.app_dir / prefix.rstrip("/")
    if not directory.is_dir():
        return 0
    cutoff = time.time() - older_than_seconds
    removed = 0
    for path in directory.glob("*.json"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


# -- results -----------------------------------------------------------------------------------


def normalize(value: Any) -> tuple[Any, bytes]:
    """The value as plain JSON data (what every client will see), and its encoding."""
    encoded = dumps(value)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value, encoded
    return orjson.loads(encoded), encoded


def offload_if_large(settings: Settings, run: WorkflowRun) -> WorkflowRun:
    """The record to store: ``run`` itself, or a copy whose result was written to a file.

    Blocking (file I/O): call it in a thread. ``run.result`` is normalized to JSON data in place.
    """
    if run.result is None:
        return run
    value, encoded = normalize(run.result)
    run.result = value
    limit = settings.compute.max_result_bytes
    if limit < 0 or len(encoded) <= limit:
        return run
    ref = _write(settings, REF_PREFIX, run, encoded)
    run.result_ref = ref
    return run.model_copy(update={"result": None, "result_ref": ref})


def load_result(settings: Settings, run: WorkflowRun) -> Any:
    """The full result of a stored run (reads the file when it was offloaded). Blocking."""
    if not run.result_ref:
        return run.result
    return _read(settings, run.result_ref, f"the result of run {run.name}")


def delete_result(settings: Settings, run: WorkflowRun) -> None:
    _unlink(settings, run.result_ref)


def sweep_results(settings: Settings, older_than_seconds: float) -> int:
    """Delete offloaded results older than the retention window; returns how many. Blocking."""
    return _sweep(settings, REF_PREFIX, older_than_seconds)


# -- inputs ------------------------------------------------------------------------------------
# A run keeps its input (to run it on another server, to re-run it, to show what it was given);
# one larger than ``compute.max_input_bytes`` is kept beside the results, in ``<app_dir>/inputs/``.


def input_is_large(settings: Settings, run_input: dict[str, Any] | None) -> bytes | None:
    """The input's encoding when it is over the limit (to store by reference), else None."""
    limit = settings.compute.max_input_bytes
    if not run_input or limit < 0:
        return None
    encoded = dumps(run_input)
    return encoded if len(encoded) > limit else None


def store_input(settings: Settings, run: WorkflowRun, encoded: bytes) -> None:
    """Write a large input to its file and point the run at it. Blocking."""
    run.input_ref = _write(settings, INPUT_PREFIX, run, encoded)
    run.input = None


def load_input(settings: Settings, run: WorkflowRun) -> dict[str, Any]:
    """The full input of a run (reads the file when it was stored by reference). Blocking."""
    if not run.input_ref:
        return dict(run.input or {})
    return _read(
        settings,
        run.input_ref,
        f"the input of run {run.name}",
        " (servers sharing runs must share the app dir, or raise compute.max_input_bytes)",
    )


def delete_input(settings: Settings, run: WorkflowRun) -> None:
    _unlink(settings, run.input_ref)


def sweep_inputs(settings: Settings, older_than_seconds: float) -> int:
    """Delete stored inputs older than the retention window; returns how many. Blocking."""
    return _sweep(settings, INPUT_PREFIX, older_than_seconds)
