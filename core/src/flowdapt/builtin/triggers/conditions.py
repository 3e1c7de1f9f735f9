"""The condition DSL of trigger rules, compiled once into a predicate over an event.

An expression is a mapping with one operator key: ``{op: args}``. A non-list argument is a list
of one (``{not: {var: x}}``). Arguments that are mappings are expressions; anything else is a
literal. This is the original Flowdapt's language (reference section 5.2), with these changes:

- ``and`` / ``or`` short-circuit and return the deciding value, like Python's (the original
  evaluated every argument, and its ``or`` always returned False);
- new operators ``in``, ``contains`` and ``regex``;
- unknown operators and wrong argument counts are errors when the rule is applied, naming the
  field, instead of a KeyError swallowed on every event;
- an ordering comparison between values that cannot be ordered (``None > 1``) is False instead of
  an exception;
- ``var`` paths may index lists: ``data.result.0``.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flowdapt.builtin.triggers.errors import RuleError

Predicate = Callable[[Mapping[str, Any]], Any]

_MISSING = object()

#: Operator -> (min args, max args or None for any number), for messages and validation.
ARITY: dict[str, tuple[int, int | None]] = {
    "eq": (2, 2),
    "ne": (2, 2),
    "gt": (2, 2),
    "lt": (2, 2),
    "ge": (2, 2),
    "le": (2, 2),
    "and": (0, None),
    "or": (0, None),
    "not": (1, 1),
    "bool": (1, 1),
    "var": (1, 2),
    "in": (2, 2),
    "contains": (2, 2),
    "regex": (2, 2),
}

OPERATORS = tuple(ARITY)

_COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "lt": operator.lt,
    "ge": operator.ge,
    "le": operator.le,
}


def resolve_path(data: Any, path: str, default: Any = None) -> Any:
    """``a.b.0.c`` in nested mappings and lists; ``default`` when any step is missing."""
    return _walk(data, path.split("."), default)


def _walk(value: Any, keys: Sequence[str], default: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, _MISSING)
            if value is _MISSING:
                return default
        elif isinstance(value, list | tuple) and key.lstrip("-").isdigit():
            try:
                value = value[int(key)]
            except IndexError:
                return default
        else:
            return default
    return value


def _plural(n: int) -> str:
    return "argument" if n == 1 else "arguments"


def _arity_text(op: str) -> str:
    low, high = ARITY[op]
    if high is None:
        return f"any number of {_plural(2)}"
    if low == high:
        return f"{low} {_plural(low)}"
    return f"{low} or {high} {_plural(high)}"


#: Bounds on an expression, checked before it is compiled (a rule is evaluated on every event).
MAX_CONDITION_DEPTH = 32
MAX_CONDITION_NODES = 2000


def _check_size(rule: Any, field: str) -> None:
    stack: list[tuple[Any, int]] = [(rule, 1)]
    nodes = 0
    while stack:
        value, level = stack.pop()
        nodes += 1
        if level > MAX_CONDITION_DEPTH:
            raise RuleError(field, f"the expression is nested more than {MAX_CONDITION_DEPTH} levels deep")
        if nodes > MAX_CONDITION_NODES:
            raise RuleError(field, f"the expression has more than {MAX_CONDITION_NODES} parts")
        if isinstance(value, Mapping):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((v, level + 1) for v in value)


def compile_condition(rule: Any, field: str = "spec.rule") -> Predicate:
    """Compile an expression into ``predicate(event_dict) -> value``. Raises :class:`RuleError`
    naming the field of the first problem, also when the expression is over the size bounds."""
    _check_size(rule, field)
    return _compile(rule, field)


def _compile(rule: Any, field: str) -> Predicate:
    if not isinstance(rule, Mapping):
        # A literal: the original returned it as-is.
        return lambda data, value=rule: value
    if len(rule) != 1:
        keys = ", ".join(map(str, rule)) or "none"
        raise RuleError(field, f"an expression is a mapping with exactly one operator, got keys: {keys}")
    (op, raw_args), = rule.items()
    where = f"{field}.{op}"
    if op not in ARITY:
        raise RuleError(where, f"unknown operator {op!r} (known: {', '.join(OPERATORS)})")
    args_in = list(raw_args) if isinstance(raw_args, list | tuple) else [raw_args]
    low, high = ARITY[op]
    if len(args_in) < low or (high is not None and len(args_in) > high):
        raise RuleError(where, f"{op} takes {_arity_text(op)}, got {len(args_in)}")
    args = [
        _compile(arg, f"{where}[{i}]" if isinstance(raw_args, list | tuple) else where)
        for i, arg in enumerate(args_in)
    ]
    constant = [not isinstance(a, Mapping) for a in args_in]

    if op == "var":
        return _compile_var(args, args_in, constant, where)
    if op in _COMPARE:
        return _compile_compare(op, args[0], args[1])
    if op == "and":
        return _compile_and(args)
    if op == "or":
        return _compile_or(args)
    if op == "not":
        a = args[0]
        return lambda data: not a(data)
    if op == "bool":
        a = args[0]
        return lambda data: bool(a(data))
    if op == "in":
        return _membership(args[0], args[1])
    if op == "contains":
        return _membership(args[1], args[0])
    if op == "regex":
        return _compile_regex(args, args_in, constant, where)
    raise AssertionError(op)  # pragma: no cover - ARITY and this function list the same operators


def _compile_var(args, args_in, constant, where) -> Predicate:
    default_fn = args[1] if len(args) > 1 else (lambda data: None)
    if constant[0]:
        path = args_in[0]
        if not isinstance(path, str) or not path:
            raise RuleError(f"{where}", f"var takes a dotted path string, got {path!r}")
        keys = path.split(".")
        if len(keys) == 1:
            key = keys[0]

            def get_one(data):
                value = data.get(key, _MISSING) if isinstance(data, Mapping) else _MISSING
                return default_fn(data) if value is _MISSING else value

            return get_one

        def get_path(data):
            value = _walk(data, keys, _MISSING)
            return default_fn(data) if value is _MISSING else value

        return get_path
    path_fn = args[0]

    def get_dynamic(data):
        path = path_fn(data)
        if not isinstance(path, str):
            return default_fn(data)
        value = resolve_path(data, path, _MISSING)
        return default_fn(data) if value is _MISSING else value

    return get_dynamic


def _compile_compare(op: str, a: Predicate, b: Predicate) -> Predicate:
    fn = _COMPARE[op]
    if op in ("eq", "ne"):
        return lambda data: fn(a(data), b(data))

    def ordered(data):
        try:
            return fn(a(data), b(data))
        except TypeError:
            return False

    return ordered


def _compile_and(args: list[Predicate]) -> Predicate:
    if not args:
        return lambda data: True
    if len(args) == 2:
        a, b = args
        return lambda data: a(data) and b(data)

    def all_of(data):
        value: Any = True
        for arg in args:
            value = arg(data)
            if not value:
                return value
        return value

    return all_of


def _compile_or(args: list[Predicate]) -> Predicate:
    if not args:
        return lambda data: False
    if len(args) == 2:
        a, b = args
        return lambda data: a(data) or b(data)

    def any_of(data):
        value: Any = False
        for arg in args:
            value = arg(data)
            if value:
                return value
        return value

    return any_of


def _membership(needle_fn: Predicate, haystack_fn: Predicate) -> Predicate:
    def member(data):
        haystack = haystack_fn(data)
        if haystack is None:
            return False
        try:
            return needle_fn(data) in haystack
        except TypeError:  # "x" in 5, 1 in "abc"
            return False

    return member


#: Longest pattern a ``regex`` condition may use.
MAX_REGEX_LENGTH = 1000


def _re2_options():
    import re2

    options = re2.Options()
    options.log_errors = False
    options.max_mem = 8 << 20  # bounds the automaton RE2 builds for one pattern
    return options


_RE2_OPTIONS = None


def compile_regex(pattern: str):
    """A linear-time (RE2) pattern: matching cost grows with the text, never exponentially, so a
    pattern like ``^(a+)+$`` cannot stall the server. Raises ValueError for syntax RE2 lacks
    (backreferences, lookaround) and for patterns over :data:`MAX_REGEX_LENGTH`."""
    global _RE2_OPTIONS
    import re2

    if len(pattern) > MAX_REGEX_LENGTH:
        raise ValueError(f"the pattern is longer than {MAX_REGEX_LENGTH} characters")
    if _RE2_OPTIONS is None:
        _RE2_OPTIONS = _re2_options()
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise ValueError(
            f"{reason} (patterns use RE2 syntax: no backreferences or lookaround)"
        ) from None


_compile_regex_cached = functools.lru_cache(maxsize=256)(compile_regex)


def _compile_regex(args, args_in, constant, where) -> Predicate:
    value_fn = args[0]
    if constant[1]:
        pattern = args_in[1]
        if not isinstance(pattern, str):
            raise RuleError(f"{where}[1]", f"regex takes a pattern string, got {pattern!r}")
        try:
            compiled = compile_regex(pattern)
        except ValueError as exc:
            raise RuleError(f"{where}[1]", f"invalid regular expression {pattern!r}: {exc}") from None

        def match_static(data):
            value = value_fn(data)
            return value is not None and compiled.search(value if isinstance(value, str) else str(value)) is not None

        return match_static
    pattern_fn = args[1]

    def match_dynamic(data):
        value, pattern = value_fn(data), pattern_fn(data)
        if value is None or not isinstance(pattern, str):
            return False
        try:
            compiled = _compile_regex_cached(pattern)
        except ValueError:
            return False
        return compiled.search(value if isinstance(value, str) else str(value)) is not None

    return match_dynamic


def check_condition(rule: Any, data: Mapping[str, Any]) -> Any:
    """Compile and evaluate in one go (tests, one-off checks); services compile once."""
    return compile_condition(rule)(data)


def resolve_vars(value: Any, data: Mapping[str, Any]) -> Any:
    """Replace every ``{var: path}`` (or ``{var: [path, default]}``) inside ``value`` with the value
    at ``path`` in ``data``: how action parameters take values from the triggering event."""
    if isinstance(value, Mapping):
        if len(value) == 1 and "var" in value:
            return compile_condition(value)(data)
        return {k: resolve_vars(v, data) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_vars(v, data) for v in value]
    return value


def check_vars(value: Any, field: str) -> None:
    """Apply-time check of the ``{var: ...}`` references inside action parameters."""
    if isinstance(value, Mapping):
        if len(value) == 1 and "var" in value:
            compile_condition(value, field)
            return
        for k, v in value.items():
            check_vars(v, f"{field}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_vars(v, f"{field}[{i}]")
