"""Timestamps as the Activity Log writes them: 100-nanosecond ticks, seven fractional digits, `Z`.

Internally every event time is an integer count of 100 ns ticks since the Unix epoch, so ordering
and the inclusive range checks of `$filter` are exact at the precision the service uses.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TICKS_PER_SECOND = 10_000_000
TICKS_PER_MICROSECOND = 10
# .NET ticks count from 0001-01-01; the Activity Log's event ids end in `/ticks/<.NET ticks>`.
DOTNET_EPOCH_OFFSET = 621_355_968_000_000_000

_TIMESTAMP = re.compile(
    r"""^(?P<date>\d{4}-\d{2}-\d{2})
        (?:[T ](?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,7}))?)?)?
        (?P<tz>Z|z|[+-]\d{2}:?\d{2})?$""",
    re.VERBOSE,
)


def to_ticks(when: datetime) -> int:
    """Ticks since the Unix epoch of an aware datetime (naive ones are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * TICKS_PER_MICROSECOND


def from_ticks(ticks: int) -> datetime:
    """The datetime of a tick count (sub-microsecond digits are dropped)."""
    return EPOCH + timedelta(microseconds=ticks // TICKS_PER_MICROSECOND)


def format_ticks(ticks: int) -> str:
    """`2024-05-01T10:00:00.1234567Z`, the Activity Log's timestamp format."""
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    tm = time.gmtime(seconds)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%07dZ" % (  # noqa: UP031 - several times faster than strftime
        tm.tm_year,
        tm.tm_mon,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        fraction,
    )


def truncate_ticks(ticks: int, digits: int) -> int:
    """`ticks` cut down to `digits` fractional digits of a second (7 keeps them all)."""
    unit = 10 ** (7 - max(0, min(7, digits)))
    return ticks - ticks % unit


def format_ticks_digits(ticks: int, digits: int) -> str:
    """Like `format_ticks` with `digits` fractional digits (0: no fraction at all), as some real events have."""
    text = format_ticks(ticks)
    if digits >= 7:
        return text
    return text[:19] + ("." + text[20 : 20 + digits] if digits > 0 else "") + "Z"


def format_datetime(when: datetime) -> str:
    return format_ticks(to_ticks(when))


def dotnet_ticks(ticks: int) -> int:
    return ticks + DOTNET_EPOCH_OFFSET


def parse_timestamp(text: str) -> int:
    """Parse an ISO 8601 date or date-time (up to 7 fractional digits) into ticks.

    A value without a zone is taken as UTC. Raises ValueError on anything else.
    """
    match = _TIMESTAMP.match(text.strip())
    if not match:
        raise ValueError(f"not an ISO 8601 date/time: {text!r}")
    year, month, day = (int(part) for part in match["date"].split("-"))
    hour = int(match["h"] or 0)
    minute = int(match["m"] or 0)
    second = int(match["s"] or 0)
    base = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    tz = match["tz"]
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if offset >= timedelta(hours=24):
            raise ValueError(f"bad zone offset in {text!r}")
        base -= sign * offset
    fraction = (match["f"] or "").ljust(7, "0")
    return to_ticks(base) + int(fraction or 0)


def parse_datetime(text: str) -> datetime:
    """Parse like `parse_timestamp`, into an aware datetime."""
    return from_ticks(parse_timestamp(text))
