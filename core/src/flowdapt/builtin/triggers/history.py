"""The fire history of a trigger rule: its last ``triggers.history_size`` fires, in the database.

Each fire (scheduled, on an event, or manual) is one record::

    {"id": "...", "time": "2026-01-01T00:00:00.123", "rule": "nightly", "outcome": "fired" | "failed",
     "manual": false, "action": "run_workflow", "due": ..., "event": ..., "server": "host:pid:boot",
     "run": "<run uid>" | "result": ... | "error": ["Type", "message"]}

Where it is kept: in the rule's own ``flowdapt.ai/fire_history`` annotation (a JSON list, newest
first), written with the store's ``compare_and_set_annotation``, the same atomic write that makes a
schedule fire once across servers. So the history works on every document store, built-in or from
a plugin, with no new store method; several trigger servers on one database merge their records
(read, merge, compare-and-set, retry on a lost race), and the history goes with the rule when it is
deleted. It is bounded (N records), so the rule document stays small. Writes are batched per rule
(at most one per ``PERSIST_DELAY`` for busy condition rules); a manual fire is written before it
answers, so ``GET /triggers/{id}/history`` shows it at once.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson

from flowdapt.resources.trigger import TriggerRule

log = logging.getLogger("flowdapt.triggers")

HISTORY = "flowdapt.ai/fire_history"
#: A result larger than this (JSON bytes) is left out of its record.
MAX_RESULT_BYTES = 1024


def make_record(
    *,
    time: str,
    rule: str,
    action: str | None,
    manual: bool,
    due: str | None,
    event: str | None,
    server: str | None,
    result: Any = None,
    error: list[str] | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "time": time,
        "rule": rule,
        "outcome": "failed" if error is not None else "fired",
        "manual": manual,
        "action": action,
        "due": due,
        "event": event,
        "server": server,
    }
    if error is not None:
        record["error"] = [str(error[0]), str(error[1])[:2000]]
        return record
    if isinstance(result, dict) and isinstance(result.get("request"), str):
        record["run"] = result["request"]  # run_workflow: the started run's uid is the request id
        if result.get("workflow"):
            record["workflow"] = result["workflow"]
    elif result is not None:
        try:
            encoded = orjson.dumps(result, default=str)
        except TypeError:
            encoded = b""
        if 0 < len(encoded) <= MAX_RESULT_BYTES:
            record["result"] = orjson.loads(encoded)
    return record


def parse(raw: str | None) -> list[dict[str, Any]]:
    """The stored history (newest first); an unreadable value is an empty history."""
    if not raw:
        return []
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def stored(rule: TriggerRule) -> list[dict[str, Any]]:
    return parse(rule.metadata.annotations.get(HISTORY))


def merge(newer: list[dict[str, Any]], older: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """Records of both, newest first (by time), each once, at most ``size``."""
    seen: set[str] = set()
    merged = []
    for record in sorted([*newer, *older], key=lambda r: str(r.get("time") or ""), reverse=True):
        key = str(record.get("id"))
        if key in seen:
            continue
        seen.add(key)
        merged.append(record)
        if len(merged) >= size:
            break
    return merged


def encode(records: list[dict[str, Any]]) -> str:
    return orjson.dumps(records).decode()
