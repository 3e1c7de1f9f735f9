"""Cron expressions: parse once, then compute the next due time in a time zone.

Accepted forms:

- 5 fields ``minute hour day-of-month month day-of-week`` (the original's);
- 6 fields, a leading ``second`` field (``*/10 * * * * *`` every ten seconds), as in Quartz and
  Spring. (The ``crontab`` package the original used read a 6th field as a *year*; we do not.)
- macros ``@yearly @annually @monthly @weekly @daily @midnight @hourly``.

Each field takes ``*``, ``?`` (same as ``*``), numbers, ranges ``a-b``, steps ``*/n`` ``a-b/n`` ``a/n``
and lists ``a,b-c``; months ``jan``-``dec`` and weekdays ``sun``-``sat`` by name; weekday ``7`` is Sunday.
As in Vixie cron, when both day-of-month and day-of-week are restricted (neither starts with ``*``)
a day matches if *either* does.

Time zones: due times are wall-clock times in the expression's zone (UTC by default). A wall time
that a DST change skips fires at the same offset after the change (02:30 -> 03:30); a wall time
that happens twice fires once, at its first occurrence, unless the hour field is ``*`` (then both
hours run, so an every-15-minutes schedule keeps its pace through the repeated hour).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flowdapt.builtin.triggers.errors import RuleError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = {name: i for i, name in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

#: (name, low, high, names) per field, in 6-field order.
_FIELDS = (
    ("second", 0, 59, None),
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day-of-month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS),
)

#: How far ahead a search goes before deciding an expression never fires (Feb 29 on a Monday
#: recurs within 28 years; 0 0 30 2 * never does).
_HORIZON_YEARS = 50


class CronError(ValueError):
    pass


def _parse_value(text: str, name: str, low: int, high: int, names) -> int:
    key = text.lower()
    if names and key in names:
        return names[key]
    if not text.isdigit():
        hint = f" or a name ({', '.join(names)})" if names else ""
        raise CronError(f"{name} field: {text!r} is not a number{hint}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name} field: {value} is out of range {low}-{high}")
    return value


def _parse_field(text: str, name: str, low: int, high: int, names) -> tuple[frozenset[int], bool]:
    """The set of values a field allows, and whether it is unrestricted (starts with * or ?)."""
    if not text:
        raise CronError(f"{name} field is empty")
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name} field: empty item in {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name} field: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start = _parse_value(a, name, low, high, names)
            end = _parse_value(b, name, low, high, names)
            if end < start:
                raise CronError(f"{name} field: range {base!r} runs backwards")
        else:
            start = _parse_value(base, name, low, high, names)
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return frozenset(values), text[0] in "*?"


@dataclass(frozen=True)
class CronExpression:
    """One parsed expression. ``next_after`` works on aware datetimes."""

    text: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: tuple[int, ...]
    weekdays: frozenset[int]  # 0 = Sunday
    dom_star: bool
    dow_star: bool
    hour_star: bool
    tz: tzinfo

    @classmethod
    def parse(cls, text: str, tz: tzinfo | str | None = None) -> CronExpression:
        if not isinstance(text, str):
            raise CronError(f"a cron expression is a string, got {type(text).__name__}")
        zone = resolve_timezone(tz)
        expr = " ".join(text.split())
        if expr.startswith("@"):
            if expr.lower() not in MACROS:
                raise CronError(f"unknown macro {expr!r} (known: {', '.join(MACROS)})")
            expr = MACROS[expr.lower()]
        parts = expr.split(" ")
        if len(parts) == 5:
            parts = ["0", *parts]
        elif len(parts) != 6:
            raise CronError(
                f"{text!r} has {len(parts)} fields; expected 5 (minute hour day-of-month month day-of-week) "
                "or 6 (a leading second field)"
            )
        parsed = [_parse_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
        (sec, _), (mins, _), (hrs, hour_star), (days, dom_star), (months, _), (dows, dow_star) = parsed
        weekdays = frozenset(d % 7 for d in dows)
        result = cls(
            text=text,
            seconds=tuple(sorted(sec)),
            minutes=tuple(sorted(mins)),
            hours=tuple(sorted(hrs)),
            days=days,
            months=tuple(sorted(months)),
            weekdays=weekdays,
            dom_star=dom_star,
            dow_star=dow_star,
            hour_star=hour_star,
            tz=zone,
        )
        if result._next_naive(datetime(2000, 1, 1)) is None:
            raise CronError(f"{text!r} never fires (no date matches its day and month fields)")
        return result

    # -- matching on naive wall-clock times ------------------------------------------------

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        if day > calendar.monthrange(year, month)[1]:
            return False
        weekday = (calendar.weekday(year, month, day) + 1) % 7  # Monday=0 -> Sunday=0
        dom_ok = day in self.days
        dow_ok = weekday in self.weekdays
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def _next_naive(self, after: datetime) -> datetime | None:
        """The first wall-clock time strictly after ``after`` (naive) that matches."""
        t = after.replace(microsecond=0) + timedelta(seconds=1)
        limit = after.year + _HORIZON_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                nxt = _first_ge(self.months, t.month)
                t = datetime(t.year, nxt, 1) if nxt is not None else datetime(t.year + 1, self.months[0], 1)
                continue
            if not self._day_matches(t.year, t.month, t.day):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                nxt = _first_ge(self.hours, t.hour)
                if nxt is None:
                    t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                else:
                    t = t.replace(hour=nxt, minute=0, second=0)
                continue
            if t.minute not in self.minutes:
                nxt = _first_ge(self.minutes, t.minute)
                if nxt is None:
                    t = t.replace(minute=0, second=0) + timedelta(hours=1)
                else:
                    t = t.replace(minute=nxt, second=0)
                continue
            if t.second not in self.seconds:
                nxt = _first_ge(self.seconds, t.second)
                if nxt is None:
                    t = t.replace(second=0) + timedelta(minutes=1)
                else:
                    t = t.replace(second=nxt)
                continue
            return t
        return None

    # -- time zones ------------------------------------------------------------------------

    def _instants(self, wall: datetime) -> list[datetime]:
        """UTC instants at which the wall-clock time ``wall`` fires (0, 1 or 2 of them)."""
        first = wall.replace(tzinfo=self.tz, fold=0)
        second = wall.replace(tzinfo=self.tz, fold=1)
        a, b = first.astimezone(UTC), second.astimezone(UTC)
        if a == b:
            return [a]
        exists = a.astimezone(self.tz).replace(tzinfo=None) == wall
        if not exists:  # skipped by a DST change: fold=0 maps it one gap later
            return [a]
        return sorted({a, b}) if self.hour_star else [min(a, b)]

    def next_after(self, after: datetime) -> datetime | None:
        """The first due time strictly after ``after`` (aware; naive means UTC), as aware UTC."""
        if after.tzinfo is None:
            after = after.replace(tzinfo=UTC)
        after = after.astimezone(UTC)
        wall = after.astimezone(self.tz).replace(tzinfo=None)
        if _fixed_offset(self.tz):
            nxt = self._next_naive(wall)
            return None if nxt is None else nxt.replace(tzinfo=self.tz).astimezone(UTC)
        # Fast path: the next wall time maps to one instant with the same offset as ``after``.
        nxt = self._next_naive(wall)
        if nxt is None:
            return None
        instants = self._instants(nxt)
        if len(instants) == 1 and instants[0] > after and instants[0].astimezone(self.tz).utcoffset() == after.astimezone(self.tz).utcoffset():
            if self._no_transition_near(after) and self._no_transition_near(instants[0]):
                return instants[0]
        # Near a DST change: scan wall times from a few hours before, keep the earliest instant.
        best: datetime | None = None
        best_wall: datetime | None = None
        cursor = wall - timedelta(hours=4)
        while True:
            cand = self._next_naive(cursor)
            if cand is None:
                return best
            if best_wall is not None and cand > best_wall + timedelta(hours=4):
                return best
            for instant in self._instants(cand):
                if instant > after and (best is None or instant < best):
                    best, best_wall = instant, cand
            cursor = cand

    def _no_transition_near(self, instant: datetime) -> bool:
        before = (instant - timedelta(hours=4)).astimezone(self.tz).utcoffset()
        after = (instant + timedelta(hours=4)).astimezone(self.tz).utcoffset()
        return before == after == instant.astimezone(self.tz).utcoffset()


def _first_ge(values: tuple[int, ...], value: int) -> int | None:
    for v in values:
        if v >= value:
            return v
    return None


def _fixed_offset(tz: tzinfo) -> bool:
    return tz is UTC or getattr(tz, "key", None) in ("UTC", "Etc/UTC", "GMT", "Etc/GMT")


def resolve_timezone(tz: tzinfo | str | None) -> tzinfo:
    if tz is None or tz == "":
        return UTC
    if isinstance(tz, tzinfo):
        return tz
    if tz.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {tz!r} (use an IANA name like 'Europe/Berlin')") from None


class CronSchedule:
    """Several expressions (the original's list of cron strings): due at any of their times."""

    def __init__(self, expressions: Iterable[CronExpression]):
        self.expressions = tuple(expressions)

    @classmethod
    def parse(cls, rule: str | list[str], tz: str | None = None, field: str = "spec.rule") -> CronSchedule:
        """Parse a rule (string or list of strings). Raises :class:`RuleError` naming the field."""
        try:
            zone = resolve_timezone(tz)
        except CronError as exc:
            raise RuleError("spec.timezone", str(exc)) from None
        items = [rule] if isinstance(rule, str) else rule
        if not isinstance(items, list) or not items:
            raise RuleError(field, "a schedule rule is a cron string or a non-empty list of cron strings")
        expressions = []
        for i, text in enumerate(items):
            where = field if isinstance(rule, str) else f"{field}[{i}]"
            try:
                expressions.append(CronExpression.parse(text, zone))
            except CronError as exc:
                raise RuleError(where, f"bad cron expression {text!r}: {exc}") from None
        return cls(expressions)

    def next_after(self, after: datetime) -> datetime | None:
        times = [t for t in (e.next_after(after) for e in self.expressions) if t is not None]
        return min(times) if times else None

    def last_due(self, since: datetime, now: datetime) -> datetime | None:
        """The latest due time in ``(since, now]``, or None. Searches back from ``now`` in growing
        windows so a long downtime does not walk every missed time of a frequent schedule."""
        for window in (timedelta(minutes=2), timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=400)):
            start = max(since, now - window)
            found = None
            t = self.next_after(start)
            while t is not None and t <= now:
                found = t
                t = self.next_after(t)
            if found is not None:
                return found
            if start == since:
                return None
        # More than 400 days: walk from ``since`` (a schedule that rare has few due times).
        found = None
        t = self.next_after(since)
        while t is not None and t <= now:
            found = t
            t = self.next_after(t)
        return found
