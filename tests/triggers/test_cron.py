"""Cron parsing and next-due computation, time zones and DST included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flowdapt.builtin.triggers.cron import CronError, CronExpression, CronSchedule
from flowdapt.builtin.triggers.errors import RuleError


def nxt(expr: str, after: datetime, tz: str | None = None, n: int = 1) -> list[datetime]:
    schedule = CronSchedule.parse(expr, tz)
    out, t = [], after
    for _ in range(n):
        t = schedule.next_after(t)
        out.append(t)
    return out


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/5 * * * *", utc(2024, 1, 1, 0, 3), [utc(2024, 1, 1, 0, 5), utc(2024, 1, 1, 0, 10)]),
        ("1 * * * *", utc(2024, 1, 1, 0, 1), [utc(2024, 1, 1, 1, 1), utc(2024, 1, 1, 2, 1)]),
        ("0 0 * * *", utc(2024, 2, 28, 12), [utc(2024, 2, 29), utc(2024, 3, 1)]),
        ("0 9 * * mon-fri", utc(2024, 6, 7, 10), [utc(2024, 6, 10, 9), utc(2024, 6, 11, 9)]),  # Fri -> Mon
        ("0 0 29 2 *", utc(2024, 3, 1), [utc(2028, 2, 29), utc(2032, 2, 29)]),
        ("0 0 1,15 * *", utc(2024, 1, 2), [utc(2024, 1, 15), utc(2024, 2, 1)]),
        ("0 12 * jan,jul *", utc(2024, 1, 31, 13), [utc(2024, 7, 1, 12), utc(2024, 7, 2, 12)]),
        ("30 6 * * 7", utc(2024, 6, 1), [utc(2024, 6, 2, 6, 30), utc(2024, 6, 9, 6, 30)]),  # 7 = Sunday
        # both day fields restricted: either matches (Vixie cron)
        ("0 0 13 * fri", utc(2024, 9, 1), [utc(2024, 9, 6), utc(2024, 9, 13)]),
        ("10-20/5 * * * *", utc(2024, 1, 1, 0, 11), [utc(2024, 1, 1, 0, 15), utc(2024, 1, 1, 0, 20)]),
        ("50/5 * * * *", utc(2024, 1, 1, 0, 51), [utc(2024, 1, 1, 0, 55), utc(2024, 1, 1, 1, 50)]),
        ("@hourly", utc(2024, 1, 1, 0, 0), [utc(2024, 1, 1, 1), utc(2024, 1, 1, 2)]),
        ("@weekly", utc(2024, 6, 5), [utc(2024, 6, 9), utc(2024, 6, 16)]),
        # six fields: seconds first
        ("*/10 * * * * *", utc(2024, 1, 1, 0, 0, 5), [utc(2024, 1, 1, 0, 0, 10), utc(2024, 1, 1, 0, 0, 20)]),
        ("* * * * * *", utc(2024, 12, 31, 23, 59, 59), [utc(2025, 1, 1), utc(2025, 1, 1, 0, 0, 1)]),
    ],
)
def test_next_due(expr, after, expected):
    assert nxt(expr, after, n=len(expected)) == expected


def test_due_is_strictly_after_and_ignores_subseconds():
    assert nxt("*/5 * * * *", utc(2024, 1, 1, 0, 5))[0] == utc(2024, 1, 1, 0, 10)
    assert nxt("* * * * * *", datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC))[0] == utc(2024, 1, 1, 0, 0, 1)


def test_a_list_fires_at_the_earliest_of_its_expressions():
    schedule = CronSchedule.parse(["0 12 * * *", "30 6 * * *"])
    assert schedule.next_after(utc(2024, 1, 1)) == utc(2024, 1, 1, 6, 30)
    assert schedule.next_after(utc(2024, 1, 1, 6, 30)) == utc(2024, 1, 1, 12)


def test_time_zone_wall_clock():
    berlin = ZoneInfo("Europe/Berlin")
    (t,) = nxt("0 9 * * *", utc(2024, 1, 10), "Europe/Berlin")
    assert t.astimezone(berlin).hour == 9 and t == utc(2024, 1, 10, 8)
    (t,) = nxt("0 9 * * *", utc(2024, 7, 10), "Europe/Berlin")
    assert t == utc(2024, 7, 10, 7)  # summer time


def test_dst_spring_forward_skipped_time_fires_after_the_gap():
    ny = ZoneInfo("America/New_York")
    days = nxt("30 2 * * *", utc(2024, 3, 9, 12), "America/New_York", n=3)
    local = [d.astimezone(ny).replace(tzinfo=None) for d in days]
    assert local == [datetime(2024, 3, 10, 3, 30), datetime(2024, 3, 11, 2, 30), datetime(2024, 3, 12, 2, 30)]


def test_dst_fall_back_fixed_hour_fires_once_every_hour_schedule_keeps_pace():
    ny = ZoneInfo("America/New_York")
    daily = nxt("30 1 * * *", utc(2024, 11, 2, 12), "America/New_York", n=2)
    assert daily == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]  # once on the repeated day
    every_30 = nxt("*/30 * * * *", utc(2024, 11, 3, 4, 45), "America/New_York", n=5)
    assert [b - a for a, b in zip(every_30, every_30[1:], strict=False)] == [timedelta(minutes=30)] * 4
    assert [t.astimezone(ny).strftime("%H:%M%z") for t in every_30] == [
        "01:00-0400", "01:30-0400", "01:00-0500", "01:30-0500", "02:00-0500",
    ]


def test_last_due_finds_the_latest_missed_time():
    schedule = CronSchedule.parse("*/5 * * * *")
    assert schedule.last_due(utc(2024, 1, 1), utc(2024, 1, 10, 3, 7)) == utc(2024, 1, 10, 3, 5)
    assert schedule.last_due(utc(2024, 1, 1, 0, 1), utc(2024, 1, 1, 0, 4)) is None
    yearly = CronSchedule.parse("@yearly")
    assert yearly.last_due(utc(2020, 6, 1), utc(2024, 6, 1)) == utc(2024, 1, 1)
    every_second = CronSchedule.parse("* * * * * *")
    assert every_second.last_due(utc(2020, 1, 1), utc(2024, 6, 1, 0, 0, 0)) == utc(2024, 6, 1)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", "minute field: 61 is out of range 0-59"),
        ("* 24 * * *", "hour field: 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month field: 0 is out of range 1-31"),
        ("* * * 13 *", "month field: 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week field: 8 is out of range 0-7"),
        ("* * * * funday", "day-of-week field: 'funday' is not a number or a name"),
        ("*/0 * * * *", "step '0' must be a positive number"),
        ("5-1 * * * *", "range '5-1' runs backwards"),
        ("* * *", "has 3 fields"),
        ("1 2 3 4 5 6 7", "has 7 fields"),
        ("@reboot", "unknown macro"),
        ("0 0 30 2 *", "never fires"),
        ("1,,2 * * * *", "empty item"),
    ],
)
def test_bad_expressions_say_which_field(expr, message):
    with pytest.raises(CronError) as info:
        CronExpression.parse(expr)
    assert message in str(info.value)


def test_schedule_errors_name_the_list_item_and_timezone():
    with pytest.raises(RuleError) as info:
        CronSchedule.parse(["*/5 * * * *", "61 * * * *"])
    assert info.value.field == "spec.rule[1]"
    with pytest.raises(RuleError) as info:
        CronSchedule.parse(["*/5 * * * *"], "Mars/Olympus")
    assert info.value.field == "spec.timezone"
    with pytest.raises(RuleError) as info:
        CronSchedule.parse([])
    assert info.value.field == "spec.rule"
