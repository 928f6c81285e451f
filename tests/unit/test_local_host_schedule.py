"""Timer schedules: the croniter adapter (NCRONTAB's six fields, day AND weekday) and past-due firings."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from localdev.host.loader import load_functions
from localdev.host.schedule import PAST_DUE_TOLERANCE, Schedule, ScheduleError, is_past_due, parse_schedule
from localdev.host.timers import TimerRunner

pytestmark = pytest.mark.unit


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        ("*/5 * * * * *", at(2026, 1, 1, 0, 0, 3), at(2026, 1, 1, 0, 0, 5)),  # seconds come first
        ("*/5 * * * * *", at(2026, 1, 1, 0, 0, 5), at(2026, 1, 1, 0, 0, 10)),  # strictly after
        ("*/1 * * * * *", at(2026, 1, 1, 0, 0, 5, 500_000), at(2026, 1, 1, 0, 0, 6)),  # whole seconds
        ("*/20 * * * * *", at(2026, 1, 1, 23, 59, 50), at(2026, 1, 2)),
        ("0 */5 * * * *", at(2026, 1, 1, 10, 3, 0), at(2026, 1, 1, 10, 5, 0)),  # the fan-out's schedule
        ("0 30 2 * * *", at(2026, 1, 1, 2, 30), at(2026, 1, 2, 2, 30)),  # the retention's schedule
        ("0 0 0 1 1 *", at(2026, 3, 1), at(2027, 1, 1)),  # the tests' "never"
        ("0 30 9 * * 1-5", at(2026, 1, 2, 10, 0, 0), at(2026, 1, 5, 9, 30, 0)),  # Fri after 9:30 -> Mon
        ("0 0 0 13 * 5", at(2026, 1, 1), at(2026, 2, 13)),  # Friday the 13th: day AND weekday
        ("*/15 * * * *", at(2026, 1, 1, 0, 7, 30), at(2026, 1, 1, 0, 15, 0)),  # five fields: second 0
    ],
)
def test_next_occurrence(expression: str, start: datetime, expected: datetime) -> None:
    assert parse_schedule(expression).next_after(start) == expected


def test_the_result_is_utc_whatever_the_zone_of_the_moment() -> None:
    result = parse_schedule("0 0 * * * *").next_after(at(2026, 1, 1, 12, 30).astimezone())
    assert result == at(2026, 1, 1, 13) and result.tzinfo == UTC


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("* * * * * *").next_after(datetime(2026, 1, 1))


def test_timespan_is_a_constant_interval() -> None:
    assert parse_schedule("00:00:30") == Schedule("00:00:30", timedelta(seconds=30))
    assert parse_schedule("00:00:30").next_after(at(2026, 1, 1)) == at(2026, 1, 1, 0, 0, 30)
    assert parse_schedule("1.00:00:00").next_after(at(2026, 1, 1)) == at(2026, 1, 2)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * * * * *", "six fields"),
        ("* * * *", "six fields"),
        ("every minute", "six fields"),
        ("60 * * * * *", ""),
        ("* * 24 * * *", ""),
        ("* * * * Foo *", ""),
        ("*/0 * * * * *", ""),
        ("0 0 0 30 2 *", ""),  # never occurs
        ("00:00:00", "must be positive"),
        ("25:00:00", "TimeSpan"),
    ],
)
def test_invalid_schedules_are_clear_errors_naming_the_schedule(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=f"invalid schedule {re.escape(repr(expression))}.*{message}"):
        parse_schedule(expression)


def test_past_due_means_later_than_the_tolerance() -> None:
    scheduled = at(2026, 1, 1, 10)
    assert not is_past_due(scheduled, scheduled + PAST_DUE_TOLERANCE)
    assert is_past_due(scheduled, scheduled + PAST_DUE_TOLERANCE + timedelta(milliseconds=1))


def test_a_timer_fired_late_is_past_due_and_names_its_next_occurrence() -> None:
    timers = func.FunctionApp()

    @timers.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", use_monitor=False)
    def every_five(timer: func.TimerRequest) -> None:
        pass

    (loaded,) = load_functions(timers, {})
    seen: list[TimerRequest] = []

    class Recording:
        def invoke(self, fn: Any, trigger_value: TimerRequest, *, reason: str) -> None:
            seen.append(trigger_value)

    runner = TimerRunner(loaded, Recording())  # type: ignore[arg-type]
    now = datetime.now(UTC)
    runner._fire(now - PAST_DUE_TOLERANCE - timedelta(seconds=5), None)
    runner._fire(now, now - timedelta(minutes=5))
    assert [t.past_due for t in seen] == [True, False]
    assert seen[1].schedule_status["Last"] == (now - timedelta(minutes=5)).isoformat()
    upcoming = datetime.fromisoformat(seen[1].schedule_status["Next"])
    assert upcoming > now and upcoming.minute % 5 == 0 and upcoming.second == 0
