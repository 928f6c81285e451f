"""Timer schedules as the Functions timer trigger reads them.

An NCRONTAB expression has six fields, `{second} {minute} {hour} {day} {month} {day-of-week}`
(five-field expressions without seconds are accepted too, as the host does). Each field is `*`,
a value, a range `a-b`, a list `a,b`, with an optional step `/n` (`*/n`, `a-b/n`, `a/n` meaning
`a-max/n`). Months and days of the week may be written as names or their prefixes (`Jan`, `Mon`);
day of week is 0-6 with Sunday = 0. As in NCrontab, a time matches only if its day of month
*and* its day of week both match (classic cron ORs them).

A .NET TimeSpan such as `00:05:00` is a constant interval, also accepted by the host.
Schedules are evaluated in UTC, as on Azure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from localdev.host.errors import HostStartupError
from localdev.host.hostjson import parse_timespan

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")

# name, minimum, maximum, names
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...] | None], ...] = (
    ("second", 0, 59, None),
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day", 1, 31, None),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 6, DAYS),
)

# How far ahead to look for the next occurrence; long enough for 29 February schedules.
_HORIZON_DAYS = 366 * 9


class ScheduleError(HostStartupError):
    """An invalid timer schedule."""


class Schedule(Protocol):
    expression: str

    def next_after(self, moment: datetime) -> datetime | None:
        """The first occurrence strictly after `moment` (timezone-aware UTC), or None if there is none."""
        ...


def _value(token: str, lo: int, hi: int, names: tuple[str, ...] | None, field: str, expr: str) -> int:
    if not token:
        raise ScheduleError(f"invalid schedule {expr!r}: empty value in the {field} field")
    if token.isdigit():
        value = int(token)
    elif names is not None:
        lowered = token.lower()
        matches = [i for i, name in enumerate(names) if name.lower().startswith(lowered)]
        if not matches:
            raise ScheduleError(
                f"invalid schedule {expr!r}: {token!r} is not a {field} name ({', '.join(names)})"
            )
        value = matches[0] + lo
    else:
        raise ScheduleError(f"invalid schedule {expr!r}: {token!r} is not a number in the {field} field")
    if not lo <= value <= hi:
        raise ScheduleError(
            f"invalid schedule {expr!r}: {value} is outside the {field} range {lo}-{hi}"
        )
    return value


def parse_field(text: str, index: int, expr: str) -> frozenset[int]:
    """The set of values one NCRONTAB field allows (index 0 = seconds ... 5 = day of week)."""
    field, lo, hi, names = _FIELDS[index]
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, _, step_text = part.partition("/")
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"invalid schedule {expr!r}: bad step {step_text!r} in the {field} field")
            step = int(step_text)
            has_step = True
        else:
            has_step = False
        if part == "*":
            first, last = lo, hi
        elif "-" in part:
            a, _, b = part.partition("-")
            first = _value(a, lo, hi, names, field, expr)
            last = _value(b, lo, hi, names, field, expr)
            if first > last:
                raise ScheduleError(f"invalid schedule {expr!r}: range {part!r} runs backwards")
        else:
            first = _value(part, lo, hi, names, field, expr)
            last = hi if has_step else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed NCRONTAB expression."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        parts = expression.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise ScheduleError(
                f"invalid schedule {expression!r}: an NCRONTAB expression has six fields "
                "({second} {minute} {hour} {day} {month} {day-of-week})"
            )
        fields = [parse_field(text, i, expression) for i, text in enumerate(parts)]
        return cls(expression, *fields)

    def _day_matches(self, day: datetime) -> bool:
        return (
            day.month in self.months
            and day.day in self.days
            and (day.weekday() + 1) % 7 in self.weekdays
        )

    def next_after(self, moment: datetime) -> datetime | None:
        if moment.tzinfo is None:
            raise ValueError("next_after needs a timezone-aware datetime")
        start = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        hours = sorted(self.hours)
        minutes = sorted(self.minutes)
        seconds = sorted(self.seconds)
        day = start.replace(hour=0, minute=0, second=0)
        for offset in range(_HORIZON_DAYS):
            current = day + timedelta(days=offset)
            if not self._day_matches(current):
                continue
            first_day = offset == 0
            for h in hours:
                if first_day and h < start.hour:
                    continue
                same_hour = first_day and h == start.hour
                for m in minutes:
                    if same_hour and m < start.minute:
                        continue
                    same_minute = same_hour and m == start.minute
                    for s in seconds:
                        if same_minute and s < start.second:
                            continue
                        return current.replace(hour=h, minute=m, second=s)
        return None


@dataclass(frozen=True)
class IntervalSchedule:
    """A constant interval (a TimeSpan schedule such as `00:05:00`)."""

    expression: str
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime | None:
        return moment.astimezone(UTC) + self.interval


def parse_schedule(expression: str) -> CronSchedule | IntervalSchedule:
    """An NCRONTAB expression or a TimeSpan, as the timer trigger's `schedule` accepts."""
    text = expression.strip()
    if ":" in text and " " not in text:
        seconds = parse_timespan(text, f"invalid schedule {expression!r}")
        if seconds <= 0:
            raise ScheduleError(f"invalid schedule {expression!r}: the interval must be positive")
        return IntervalSchedule(expression, timedelta(seconds=seconds))
    schedule = CronSchedule.parse(text)
    if schedule.next_after(datetime.now(UTC)) is None:
        raise ScheduleError(f"invalid schedule {expression!r}: it never occurs")
    return schedule
