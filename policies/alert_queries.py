"""Planning `GET /api/alerts`: one access path per listing, newest first, as the activities' listings.

* ``user`` given: its partition in ``alertsbyuser`` (account key, or lower-cased UPN);
* else ``policyId`` given: its partition in ``alertsbypolicy``;
* else: ``alertsbytime``, the day partitions between ``from`` and ``to``.

Every path's RowKey is the inverted alert time then the alert id, so the service's order is
newest first; ``status`` and ``severity`` (and ``policyId`` off its own path) are server-side
filters, each value passed through ``parameters=``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from activities.layout import safe_key
from activities.reader import ActivityQuery, Plan, _day_bounds, _Empty, _row_bounds
from activities.tokens import fingerprint
from core.errors import InvalidInput
from core.storage import ALERTS_BY_POLICY_TABLE, ALERTS_BY_TIME_TABLE, ALERTS_BY_USER_TABLE
from core.timefmt import wire_time
from policies.models import ALERT_STATUSES, SEVERITIES

ALERTS_KIND = "alerts"


@dataclass(frozen=True)
class AlertQuery:
    start: datetime | None = None  # inclusive, on the alert's time (its first activity)
    end: datetime | None = None  # exclusive
    status: str | None = None
    severity: str | None = None
    policy_id: str | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise InvalidInput("from", "is after to; from is the start (inclusive) and to the end (exclusive)")
        if self.status is not None and self.status.lower() not in ALERT_STATUSES:
            raise InvalidInput("status", f"must be one of {', '.join(ALERT_STATUSES)}")
        if self.severity is not None and self.severity.lower() not in SEVERITIES:
            raise InvalidInput("severity", f"must be one of {', '.join(SEVERITIES)}")

    def normalized(self) -> dict[str, str | None]:
        def lower(value: str | None) -> str | None:
            return value.strip().lower() if value is not None else None

        return {
            "from": wire_time(self.start) if self.start is not None else None,
            "to": wire_time(self.end) if self.end is not None else None,
            "status": lower(self.status),
            "severity": lower(self.severity),
            "policyId": lower(self.policy_id),
            "user": lower(self.user),
        }

    def fingerprint(self) -> str:
        return fingerprint(ALERTS_KIND, self.normalized())


def plan_alerts(query: AlertQuery) -> Plan | None:
    """The one query answering `query`; None when nothing can match."""
    bounds = ActivityQuery(start=query.start, end=query.end)
    try:
        row_lo, row_hi = _row_bounds(bounds)
    except _Empty:
        return None
    clauses: list[str] = []
    parameters: dict[str, str] = {}

    def add(clause: str, **values: str) -> None:
        clauses.append(clause)
        parameters.update(values)

    path: Literal["user", "policy", "time"]
    if query.user is not None:
        path, table = "user", ALERTS_BY_USER_TABLE
        add("PartitionKey eq @pk", pk=safe_key(query.user))
    elif query.policy_id is not None:
        path, table = "policy", ALERTS_BY_POLICY_TABLE
        add("PartitionKey eq @pk", pk=query.policy_id.strip().lower())
    else:
        path, table = "time", ALERTS_BY_TIME_TABLE
        newest, oldest = _day_bounds(bounds)
        if newest > oldest:
            return None
        add("PartitionKey ge @pklo and PartitionKey le @pkhi", pklo=newest, pkhi=oldest)
    if row_lo is not None:
        add("RowKey ge @rklo", rklo=row_lo)
    if row_hi is not None:
        add("RowKey lt @rkhi", rkhi=row_hi)
    if query.policy_id is not None and path != "policy":
        add("policy_id eq @policy", policy=query.policy_id.strip().lower())
    if query.status is not None:
        add("status eq @status", status=query.status.strip().lower())
    if query.severity is not None:
        add("severity eq @severity", severity=query.severity.strip().lower())
    return Plan(path=path, table=table, filter=" and ".join(clauses), parameters=parameters)
