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
from typing import Literal

from activities.layout import safe_key
from activities.reader import Filter, Plan, Window, lowered, row_bounds
from activities.tokens import fingerprint
from core.errors import InvalidInput
from core.storage import ALERTS_BY_POLICY_TABLE, ALERTS_BY_TIME_TABLE, ALERTS_BY_USER_TABLE
from policies.models import ALERT_STATUSES, SEVERITIES

ALERTS_KIND = "alerts"


@dataclass(frozen=True)
class AlertQuery(Window):
    """The filters of `GET /api/alerts`; the window is on the alert's time (its first activity)."""

    status: str | None = None
    severity: str | None = None
    policy_id: str | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.status is not None and self.status.lower() not in ALERT_STATUSES:
            raise InvalidInput("status", f"must be one of {', '.join(ALERT_STATUSES)}")
        if self.severity is not None and self.severity.lower() not in SEVERITIES:
            raise InvalidInput("severity", f"must be one of {', '.join(SEVERITIES)}")

    def normalized(self) -> dict[str, str | None]:
        return {
            **super().normalized(),
            "status": lowered(self.status),
            "severity": lowered(self.severity),
            "policyId": lowered(self.policy_id),
            "user": lowered(self.user),
        }

    def fingerprint(self) -> str:
        return fingerprint(ALERTS_KIND, self.normalized())


def plan_alerts(query: AlertQuery) -> Plan | None:
    """The one query answering `query`; None when nothing can match."""
    bounds = row_bounds(query)
    if bounds is None:
        return None
    where = Filter()
    path: Literal["user", "policy", "time"]
    if query.user is not None:
        path, table = "user", ALERTS_BY_USER_TABLE
        where.add("PartitionKey eq @pk", pk=safe_key(query.user))
    elif query.policy_id is not None:
        path, table = "policy", ALERTS_BY_POLICY_TABLE
        where.add("PartitionKey eq @pk", pk=query.policy_id.strip().lower())
    else:
        path, table = "time", ALERTS_BY_TIME_TABLE
        if not where.add_day_partitions(query):
            return None
    where.add_row_bounds(*bounds)
    if query.policy_id is not None and path != "policy":
        where.add("policy_id eq @policy", policy=query.policy_id.strip().lower())
    if query.status is not None:
        where.add("status eq @status", status=query.status.strip().lower())
    if query.severity is not None:
        where.add("severity eq @severity", severity=query.severity.strip().lower())
    return where.plan(path, table)
