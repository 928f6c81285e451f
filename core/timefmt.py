"""The one wire format for time: UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`, fixed width so strings sort.

Every timestamp in every API answer (connector, subscriptions, activities, accounts) is written
by `wire_time`; ``...:00.500000Z`` sorts before ``...:01.000000Z``, which a variable-width form
(``...:00.5Z`` vs ``...:01Z``) does not.
"""

from __future__ import annotations

from datetime import UTC, datetime


def wire_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # isoformat, not strftime: strftime("%Y") does not zero-pad years before 1000 on glibc.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def wire_time_or_none(value: datetime | None) -> str | None:
    return None if value is None else wire_time(value)
