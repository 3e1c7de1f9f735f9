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


class TargetNotAllowedError(TargetNotFoundError):
    """A target outside the allowed modules, or one reached through another module object."""


def split_target(target: str) -> tuple[str, str]:
    """``(module, attribute path)``; ``a.b.c`` splits at the last dot, ``a.b:c.d`` at the colon."""
    if ":" in target:
        module, _, attr = target.partition(":")
        return module, attr
    module, _, attr = target.rpartition(".")
    return module, attr


def is_valid_target(target: str) -> bool:
    return bool(TARGET_RE.fullmatch(target)) and ("." in target or ":" in target)


def _import_module(target: str, module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and not module_name.startswith(exc.name) and not exc.name.startswith(module_name):
            # The module exists but itself imports something missing: say so, not "no module".
            raise TargetNotFoundError(f"target {target!r} could not be imported: {exc}") from None
        # A long-lived worker may hold stale directory listings from before a plugin was
        # installed; look again once before giving up.
        importlib.invalidate_caches()
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise TargetNotFoundError(f"target {target!r} not found: no module named {exc.name!r}") from None
        except Exception as exc:  # noqa: BLE001 - reported to the user, with the reason
            raise TargetNotFoundError(_import_failure(target, exc)) from None
    except Exception as exc:  # noqa: BLE001 - a module with a SyntaxError or one that raises on import
        raise TargetNotFoundError(_import_failure(target, exc)) from None


def _import_failure(target: str, exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        where = f" ({exc.filename}, line {exc.lineno})" if exc.filename else ""
        return f"target {target!r} could not be imported: {type(exc).__name__}: {exc.msg}{where}"
    return f"target {target!r} could not be imported: {type(exc).__name__}: {exc}"


def _stale_hint(module: Any, attr: str) -> str:
    """When the module's file on disk defines ``attr`` but the loaded module lacks it, the file
    was edited after this process imported it: say how new code is picked up."""
    path = getattr(module, "__file__", None)
    if not inspect.ismodule(module) or not path or not path.endswith(".py"):
        return ""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            source = handle.read(1_000_000)
    except OSError:
        return ""
    if re.search(rf"^\s*(async\s+def|def|class)\s+{re.escape(attr)}\b|^{re.escape(attr)}\s*=", source, re.M) is None:
        return ""
    return (
        f"; {path} defines it now, so the file changed after this worker imported it. Files under "
        "user_modules are imported afresh by the next run (a Dask or Ray worker by the next code "
        "generation); an installed plugin's code is reloaded by `flowdapt plugin install` or a server restart"
    )


def import_target(target: str, allowed_prefixes: list[str] | None = None) -> Callable[..., Any]:
    """Import the target and return the callable. Raises TargetNotFoundError with the reason.

    With ``allowed_prefixes`` the target must also be *defined* inside one of them: the object
    found must be a function or class whose own ``__module__`` lies inside a prefix, reached
    without passing through another module object (``plugin:os.system`` and
    ``plugin.module:np.load`` are refused, whatever the plugin imported).
    """
    if not is_valid_target(target):
        raise TargetNotFoundError(f"target {target!r} is not an import path like 'package.module.function'")
    module_name, attr_path = split_target(target)
    if allowed_prefixes is not None and not in_prefixes(module_name, allowed_prefixes):
        raise TargetNotAllowedError(_outside_message(target, module_name, allowed_prefixes))
    obj: Any = _import_module(target, module_name)
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise TargetNotFoundError(
                f"target {target!r} not found: {module_name!r} has no attribute {attr!r}{_stale_hint(obj, attr)}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - a property or __getattr__ that raises
            raise TargetNotFoundError(f"target {target!r}: reading {attr!r} raised {type(exc).__name__}: {exc}") from None
        if allowed_prefixes is not None and inspect.ismodule(obj):
            raise TargetNotAllowedError(
                f"target {target!r} reaches {attr!r}, which is a module ({obj.__name__}): a target must name a "
                "function or class defined in the module before the colon or last dot, not one reached through "
                "another module"
            )
    if not callable(obj):
        raise TargetNotFoundError(f"target {target!r} is not callable")
    if allowed_prefixes is not None:
        if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
            raise TargetNotAllowedError(
                f"target {target!r} is a {type(obj).__name__}, not a function or class defined in an allowed module"
            )
        owner = getattr(obj, "__module__", None)
        if not isinstance(owner, str) or not in_prefixes(owner, allowed_prefixes):
            raise TargetNotAllowedError(
                f"target {target!r} is defined in {owner!r}, outside the allowed modules "
                f"({', '.join(allowed_prefixes) or 'none'}); only functions and classes defined in plugins, "
                "user_modules/ or settings.allowed_targets may be targets"
            )
    return obj


def in_prefixes(module: str, prefixes: list[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _outside_message(target: str, module: str, prefixes: list[str]) -> str:
    return (
        f"{target!r} is outside the allowed modules ({', '.join(prefixes) or 'none'}); "
        "put stage code in a plugin or in user_modules/, or add its package to settings.allowed_targets"
    )


def target_allowed(target: str, prefixes: list[str]) -> bool:
    """The module part lies inside a prefix (a first, import-free check; :func:`import_target`
    with ``allowed_prefixes`` also checks where the object itself is defined)."""
    return in_prefixes(split_target(target)[0], prefixes)


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
