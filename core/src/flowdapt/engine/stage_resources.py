"""Stage resources: one vocabulary for every cluster executor (``cpus``, ``gpus``, ``memory``,
custom labels), parsed once per run and checked against the cluster's nodes."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from flowdapt.errors import StageError


class InsufficientResourcesError(Exception):
    """A stage asks for resources that no node of the cluster has."""


_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
}
_BYTES_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)

#: Stage resource names -> the canonical names executors map to their cluster's own.
RESOURCE_ALIASES = {
    "cpus": "CPU",
    "cpu": "CPU",
    "num_cpus": "CPU",
    "gpus": "GPU",
    "gpu": "GPU",
    "num_gpus": "GPU",
    "memory": "memory",
    "mem": "memory",
}


def parse_bytes(value: Any) -> int:
    """``"8GB"`` -> 8_000_000_000, ``"8GiB"`` -> 8 * 2**30, ``512`` -> 512."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return int(value)
    match = _BYTES_RE.match(str(value))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"{value!r} is not a size like 512, '500MB' or '8GiB'")
    return int(float(match.group(1)) * _UNITS[unit])


def parse_stage_resources(stage: str, resources: dict[str, Any]) -> dict[str, float]:
    """A stage's ``resources`` as ``{"CPU": 2.0, "GPU": 1.0, "memory": 8e9, "<label>": n}``.

    Raises StageError naming the stage and the resource when a value is not a non-negative number
    (or a size, for memory).
    """
    parsed: dict[str, float] = {}
    for raw_name, raw_value in (resources or {}).items():
        name = RESOURCE_ALIASES.get(str(raw_name).lower(), str(raw_name))
        if raw_value is None:
            continue
        try:
            if name == "memory":
                value = float(parse_bytes(raw_value))
            else:
                if isinstance(raw_value, bool) or not isinstance(raw_value, (int, float, str)):
                    raise ValueError(f"{raw_value!r} is not a number")
                value = float(raw_value)
                if value < 0 or math.isnan(value):
                    raise ValueError(f"{raw_value!r} is negative")
        except ValueError as exc:
            raise StageError(stage, "ValueError", f"resources.{raw_name}: {exc}") from None
        parsed[name] = value
    return parsed


def describe_resources(resources: dict[str, float]) -> str:
    def fmt(name: str, value: float) -> str:
        if name == "memory":
            return f"memory={value / 1e9:g}GB"
        return f"{name}={value:g}"

    return ", ".join(fmt(k, v) for k, v in sorted(resources.items())) or "nothing"


def missing_resources(
    stage: str,
    wanted: dict[str, float],
    nodes: Sequence[dict[str, float]],
    hint: str = "",
    unit: str = "node",
) -> str | None:
    """Why no node can run a task wanting ``wanted``, or None when one can."""
    if not wanted:
        return None
    if not nodes:
        return f"stage '{stage}' asks for {describe_resources(wanted)} but the cluster has no {unit}s"
    for node in nodes:
        if all(node.get(name, 0.0) >= amount for name, amount in wanted.items()):
            return None
    # Name the first resource that no single node has enough of (or the combination).
    for name, amount in sorted(wanted.items()):
        best = max(node.get(name, 0.0) for node in nodes)
        if best < amount:
            have = (
                f"no {unit} has it"
                if best == 0
                else f"the largest {unit} has {describe_resources({name: best})}"
            )
            return (
                f"stage '{stage}' asks for {describe_resources({name: amount})} but {have} "
                f"({unit}s in the cluster: {len(nodes)}){hint}"
            )
    return f"stage '{stage}' asks for {describe_resources(wanted)} together, which no single {unit} has{hint}"
