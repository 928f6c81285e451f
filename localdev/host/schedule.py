"""Timer schedules as the Functions timer trigger reads them, evaluated in UTC with croniter.

An NCRONTAB expression has six fields, `{second} {minute} {hour} {day} {month} {day-of-week}`;
five fields (no seconds) are read with second 0. As in NCrontab, a time matches only if both its
day of month *and* its day of week match (classic cron ORs them). A .NET TimeSpan such as
`00:05:00` is a constant interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import CroniterError, croniter

from localdev.host.errors import HostStartupError
from localdev.host.hostjson import parse_timespan

# A firing later than this after its scheduled time is reported as past due.
PAST_DUE_TOLERANCE = timedelta(seconds=1)


class ScheduleError(HostStartupError):
    """An invalid timer schedule; the message names the schedule."""


@dataclass(frozen=True)
class Schedule:
    """An NCRONTAB expression, or a constant `interval`."""

    expression: str
    interval: timedelta | None = None

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (timezone-aware), in UTC."""
        if moment.tzinfo is None:
            raise ValueError("next_after needs a timezone-aware datetime")
        moment = moment.astimezone(UTC)
        if self.interval is not None:
            return moment + self.interval
        try:
            found = croniter(self.expression, moment, day_or=False, second_at_beginning=True).get_next(datetime)
        except CroniterError as exc:
            raise ScheduleError(f"invalid schedule {self.expression!r}: {exc}") from None
        return found.astimezone(UTC)


def parse_schedule(expression: str) -> Schedule:
    """An NCRONTAB expression or a TimeSpan, as the timer trigger's `schedule` accepts; ScheduleError if invalid."""
    text = expression.strip()
    if ":" in text and " " not in text:
        try:
            interval = timedelta(seconds=parse_timespan(text, f"invalid schedule {expression!r}"))
        except HostStartupError as exc:
            raise ScheduleError(str(exc)) from None
        if interval <= timedelta(0):
            raise ScheduleError(f"invalid schedule {expression!r}: the interval must be positive")
        return Schedule(expression, interval)
    if len(text.split()) not in (5, 6):
        raise ScheduleError(
            f"invalid schedule {expression!r}: an NCRONTAB expression has six fields "
            "({second} {minute} {hour} {day} {month} {day-of-week})"
        )
    schedule = Schedule(text)
    schedule.next_after(datetime.now(UTC))  # a schedule that is malformed or never occurs fails here
    return schedule


def is_past_due(scheduled: datetime, fired: datetime) -> bool:
    """Whether a firing at `fired` for the occurrence `scheduled` is late enough to report as past due."""
    return fired - scheduled > PAST_DUE_TOLERANCE
