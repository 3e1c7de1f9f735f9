"""Resolve a stage target (``pkg.module.func`` or ``pkg.module:obj.attr``) to a callable, once."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flowdapt.errors import ValidationError

TARGET_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*([.:][A-Za-z_]\w*)(\.[A-Za-z_]\w*)*$")


class TargetNotFoundError(ValidationError, ImportError):
    """A target that cannot be imported (module or attribute missing)."""


def split_target(target: str) -> tuple[str, str]:
    """``(module, attribute path)``; ``a.b.c`` splits at the last dot, ``a.b:c.d`` at the colon."""
    if ":" in target:
        module, _, attr = target.partition(":")
        return module, attr
    module, _, attr = target.rpartition(".")
    return module, attr


def is_valid_target(target: str) -> bool:
    return bool(TARGET_RE.match(target)) and ("." in target or ":" in target)


def import_target(target: str) -> Callable[..., Any]:
    """Import the target and return the callable. Raises TargetNotFoundError with the reason."""
    if not is_valid_target(target):
        raise TargetNotFoundError(f"target {target!r} is not an import path like 'package.module.function'")
    module_name, attr_path = split_target(target)
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError:
        # A long-lived worker may hold stale directory listings from before a plugin was
        # installed; look again once before giving up.
        importlib.invalidate_caches()
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise TargetNotFoundError(f"target {target!r} not found: no module named {exc.name!r}") from None
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise TargetNotFoundError(f"target {target!r} not found: {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise TargetNotFoundError(f"target {target!r} is not callable")
    return obj


def target_allowed(target: str, prefixes: list[str]) -> bool:
    module = split_target(target)[0]
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@dataclass(frozen=True)
class Signature:
    """What a stage function accepts, computed once per function and worker."""

    positional: int  # named positional parameters
    required_positional: int
    varargs: bool
    varkw: bool
    keywords: frozenset[str]  # names that can be passed by keyword
    is_async: bool

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> Signature:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):  # builtins without a signature: accept anything
            return cls(0, 0, True, True, frozenset(), False)
        positional = required = 0
        varargs = varkw = False
        keywords = set()
        for p in sig.parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                positional += 1
                if p.default is p.empty:
                    required += 1
            elif p.kind is p.VAR_POSITIONAL:
                varargs = True
            elif p.kind is p.VAR_KEYWORD:
                varkw = True
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                keywords.add(p.name)
            if p.kind is p.KEYWORD_ONLY and p.default is p.empty:
                required += 0  # checked at call time by Python itself
        is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(type(fn), "__call__", None))  # noqa: B004
        return cls(positional, required, varargs, varkw, frozenset(keywords), is_async)

    def check_positional(self, count: int) -> str | None:
        """Why ``count`` positional arguments cannot be passed, or None when they can."""
        if count == 0:
            return None
        if self.positional == 0 and not self.varargs:
            return f"it takes no positional parameters but receives {count} (its dependencies' outputs)"
        if count < self.required_positional:
            return f"it requires {self.required_positional} positional parameters but receives {count}"
        return None

    def bind_positional(self, args: tuple) -> tuple:
        """Extra dependency outputs beyond the named parameters are dropped unless ``*args``."""
        if self.varargs or len(args) <= self.positional:
            return args
        return args[: self.positional]

    def filter_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.varkw:
            return kwargs
        return {k: v for k, v in kwargs.items() if k in self.keywords}
