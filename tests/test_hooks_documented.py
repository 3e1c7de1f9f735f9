"""Every hook spec has a docstring and a section in docs/hooks.md."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from flowdapt import hookspecs

DOC = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"


def hook_specs() -> dict[str, object]:
    return {
        name: fn
        for name, fn in vars(hookspecs).items()
        if name.startswith("flowdapt_") and inspect.isfunction(fn) and hasattr(fn, "flowdapt_spec")
    }


def test_there_are_hooks():
    assert len(hook_specs()) >= 15


def test_every_hook_has_a_docstring():
    missing = [name for name, fn in hook_specs().items() if not (fn.__doc__ or "").strip()]
    assert not missing, f"hooks without a docstring: {missing}"


def test_every_hook_is_documented():
    headings = set(re.findall(r"^### (flowdapt_\w+)\s*$", DOC.read_text(), flags=re.M))
    missing = sorted(set(hook_specs()) - headings)
    assert not missing, f"hooks missing from docs/hooks.md: {missing}"
    stale = sorted(headings - set(hook_specs()))
    assert not stale, f"docs/hooks.md documents hooks that do not exist: {stale}"
