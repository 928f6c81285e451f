"""NCRONTAB schedules as the Functions timer trigger reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from localdev.host.ncrontab import CronSchedule, IntervalSchedule, ScheduleError, parse_schedule

pytestmark = pytest.mark.unit


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def next_after(expression: str, moment: datetime) -> datetime | None:
    return parse_schedule(expression).next_after(moment)


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        ("*/5 * * * * *", at(2026, 1, 1, 0, 0, 3), at(2026, 1, 1, 0, 0, 5)),
        ("*/5 * * * * *", at(2026, 1, 1, 0, 0, 5), at(2026, 1, 1, 0, 0, 10)),  # strictly after
        ("*/1 * * * * *", at(2026, 1, 1, 0, 0, 5, 500_000), at(2026, 1, 1, 0, 0, 6)),
        ("0 */5 * * * *", at(2026, 1, 1, 10, 3, 0), at(2026, 1, 1, 10, 5, 0)),
        ("0 */5 * * * *", at(2026, 1, 1, 23, 59, 30), at(2026, 1, 2, 0, 0, 0)),
        ("0 30 9 * * 1-5", at(2026, 1, 2, 10, 0, 0), at(2026, 1, 5, 9, 30, 0)),  # Fri after 9:30 -> Mon
        ("0 0 0 * * Sun", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 4, 0, 0, 0)),
        ("0 0 0 * * sat,Sunday", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 3, 0, 0, 0)),
        ("0 0 12 1 Feb *", at(2026, 1, 15), at(2026, 2, 1, 12)),
        ("0 0 0 29 2 *", at(2026, 3, 1), at(2028, 2, 29)),  # the next leap day
        ("0 0 0 31 * *", at(2026, 4, 1), at(2026, 5, 31)),  # April has no 31st
        ("0 0 0 13 * 5", at(2026, 1, 1), at(2026, 2, 13)),  # Friday the 13th: day AND weekday
        ("10-20/5 0 0 * * *", at(2026, 1, 1, 0, 0, 12), at(2026, 1, 1, 0, 0, 15)),
        ("7/20 0 0 * * *", at(2026, 1, 1, 0, 0, 30), at(2026, 1, 1, 0, 0, 47)),  # a/n means a-max/n
        ("0 0,30 8-9 * * *", at(2026, 1, 1, 8, 45), at(2026, 1, 1, 9, 0)),
        ("*/15 * * * *", at(2026, 1, 1, 0, 7, 30), at(2026, 1, 1, 0, 15, 0)),  # five fields: second 0
    ],
)
def test_next_occurrence(expression: str, start: datetime, expected: datetime) -> None:
    assert next_after(expression, start) == expected


def test_the_result_is_utc_and_aware() -> None:
    result = next_after("0 0 * * * *", datetime(2026, 1, 1, 12, 30, tzinfo=UTC).astimezone())
    assert result == at(2026, 1, 1, 13)
    assert result is not None and result.tzinfo == UTC


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CronSchedule.parse("* * * * * *").next_after(datetime(2026, 1, 1))


def test_timespan_is_a_constant_interval() -> None:
    schedule = parse_schedule("00:00:30")
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(at(2026, 1, 1)) == at(2026, 1, 1, 0, 0, 30)
    assert parse_schedule("1.00:00:00").next_after(at(2026, 1, 1)) == at(2026, 1, 2)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * * * * *", "six fields"),
        ("* * * *", "six fields"),
        ("60 * * * * *", "outside the second range"),
        ("* * 24 * * *", "outside the hour range"),
        ("* * * 0 * *", "outside the day range"),
        ("* * * * 13 *", "outside the month range"),
        ("* * * * * 7", "outside the day of week range"),
        ("a * * * * *", "not a number"),
        ("* * * * Foo *", "not a month name"),
        ("*/0 * * * * *", "bad step"),
        ("5-1 * * * * *", "runs backwards"),
        ("0 0 0 30 2 *", "never occurs"),
        ("00:00:00", "must be positive"),
        ("1,,2 * * * * *", "empty value"),
    ],
)
def test_invalid_schedules_are_clear_errors(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(expression)


# -- agreement with croniter (seconds first, day AND weekday) on random expressions ----------------

RANGES = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


@st.composite
def field_text(draw: st.DrawFn, index: int) -> str:
    lo, hi = RANGES[index]

    def part() -> str:
        kind = draw(st.sampled_from(["star", "step", "value", "range", "range_step"]))
        if kind == "star":
            return "*"
        if kind == "step":
            return f"*/{draw(st.integers(1, hi - lo + 1))}"
        a = draw(st.integers(lo, hi))
        if kind == "value" or a == hi:
            return str(a)
        b = draw(st.integers(a + 1, hi))  # croniter mishandles one-value ranges such as 3-3
        if kind == "range":
            return f"{a}-{b}"
        return f"{a}-{b}/{draw(st.integers(1, max(1, b - a + 1)))}"

    return ",".join(part() for _ in range(draw(st.integers(1, 2))))


@st.composite
def expressions(draw: st.DrawFn) -> str:
    fields = [draw(field_text(i)) for i in range(6)]
    # Keep schedules that occur at least now and then, so both libraries answer quickly.
    if fields[3] != "*" and fields[5] != "*":
        fields[5] = "*"
    return " ".join(fields)


@settings(max_examples=150)
@given(
    expression=expressions(),
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31)),
)
def test_agrees_with_croniter(expression: str, start: datetime) -> None:
    start = start.replace(microsecond=0, tzinfo=UTC)
    try:
        ours = CronSchedule.parse(expression).next_after(start)
    except ScheduleError:
        return
    theirs = croniter(expression, start, day_or=False, second_at_beginning=True).get_next(datetime)
    if ours is None:
        assert theirs - start > timedelta(days=366 * 8)
    else:
        assert ours == theirs
