"""``flowdapt.lib.logger``: the original's structured logger, over the standard ``logging`` module.

Code written for the original logs structlog-style, an event and key-value fields::

    logger = get_logger(__name__)
    logger.info("ModelTrained", model=name, seconds=3.2)
    log = logger.bind(city="Paris"); log.warning("NoData")

Here each call becomes one ``logging`` record on the logger of that name, with the message
``ModelTrained model='...' seconds=3.2`` and the fields in ``record.fields``, so the application's
logging configuration (levels, handlers, the server's log output) applies to it as to any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

__all__ = ["BoundLogger", "LoggerType", "get_logger", "log_once"]


def _render(event: Any, fields: Mapping[str, Any]) -> str:
    if not fields:
        return str(event)
    return f"{event} " + " ".join(f"{key}={value!r}" for key, value in fields.items())


class BoundLogger:
    """A logger with bound key-value context; the methods of a structlog ``BoundLogger``."""

    __slots__ = ("_logger", "_context")

    def __init__(self, logger: logging.Logger, context: Mapping[str, Any] | None = None):
        self._logger = logger
        self._context = dict(context or {})

    @property
    def name(self) -> str:
        return self._logger.name

    def bind(self, **fields: Any) -> BoundLogger:
        return BoundLogger(self._logger, {**self._context, **fields})

    def unbind(self, *keys: str) -> BoundLogger:
        context = dict(self._context)
        for key in keys:
            context.pop(key)
        return BoundLogger(self._logger, context)

    def try_unbind(self, *keys: str) -> BoundLogger:
        return BoundLogger(self._logger, {k: v for k, v in self._context.items() if k not in keys})

    def new(self, **fields: Any) -> BoundLogger:
        return BoundLogger(self._logger, fields)

    def _log(self, level: int, event: Any, args: tuple, fields: dict[str, Any]) -> None:
        if not self._logger.isEnabledFor(level):
            return
        exc_info = fields.pop("exc_info", None)
        stack_info = bool(fields.pop("stack_info", False))
        if args and isinstance(event, str):  # printf-style, as the standard library allows
            event = event % args
        merged = {**self._context, **fields}
        self._logger.log(
            level, "%s", _render(event, merged), exc_info=exc_info, stack_info=stack_info,
            stacklevel=3, extra={"event": event, "fields": merged},
        )

    def debug(self, event: Any = None, *args: Any, **fields: Any) -> None:
        self._log(logging.DEBUG, event, args, fields)

    def info(self, event: Any = None, *args: Any, **fields: Any) -> None:
        self._log(logging.INFO, event, args, fields)

    def warning(self, event: Any = None, *args: Any, **fields: Any) -> None:
        self._log(logging.WARNING, event, args, fields)

    warn = warning

    def error(self, event: Any = None, *args: Any, **fields: Any) -> None:
        self._log(logging.ERROR, event, args, fields)

    def exception(self, event: Any = None, *args: Any, **fields: Any) -> None:
        fields.setdefault("exc_info", True)
        self._log(logging.ERROR, event, args, fields)

    def critical(self, event: Any = None, *args: Any, **fields: Any) -> None:
        self._log(logging.CRITICAL, event, args, fields)

    fatal = critical

    def log(self, level: int, event: Any = None, *args: Any, **fields: Any) -> None:
        self._log(level, event, args, fields)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - the logging.Logger name
        return self._logger.isEnabledFor(level)


LoggerType: TypeAlias = BoundLogger


def get_logger(name: str | None = None, **fields: Any) -> BoundLogger:
    """The logger ``name`` (the root logger's children, as ``logging.getLogger``), with ``fields`` bound."""
    return BoundLogger(logging.getLogger(name), fields)


_last_logged: dict[tuple, float] = {}


def log_once(log_method: Callable[..., Any], event: str, interval_seconds: float = 60, **fields: Any) -> Any:
    """Call ``log_method(event, **fields)`` at most once per ``interval_seconds`` for the same event and fields."""
    key = (event, tuple(sorted((k, repr(v)) for k, v in fields.items())))
    now = time.monotonic()
    if now - _last_logged.get(key, float("-inf")) < interval_seconds:
        return None
    _last_logged[key] = now
    return log_method(event, **fields)
