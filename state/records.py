"""The connector record and the subscription records, as the rest of the app sees them.

`state.tables` maps them to Table entities; `core.ports` names what may read and write them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

ACTIVE_STATES = frozenset({"Enabled", "Warned", "PastDue"})
DETACHED = ""  # the connection id of a subscription record after a disconnect: no pull may take it

SubscriptionStatus = Literal["OK", "Error", "Inactive"]


@dataclass
class ConnectorRecord:
    connected: bool
    connection_id: str
    connected_at: datetime | None
    connected_by: str | None  # the administrator's UPN (upn or preferred_username), for display
    attempted_at: datetime
    # Connector-level problem (sign-in, listing, no readable subscription); cleared by a good run.
    error: str | None = None
    # The troubleshooting catalog's code of `error` (core.troubleshooting); None for none, or for an
    # error recorded before codes were (until the next run writes it again).
    error_code: str | None = None
    disconnected_at: datetime | None = None
    disconnected_by: str | None = None
    last_fanout_at: datetime | None = None
    # The administrators' object ids (`oid`): immutable, unlike the UPN shown beside them.
    connected_by_id: str | None = None
    disconnected_by_id: str | None = None
    etag: str | None = field(default=None, compare=False)


@dataclass
class SubscriptionRecord:
    """One subscription: what ARM says of it, and where its pull stands (watermark, lease, window, counts)."""

    subscription_id: str
    display_name: str
    state: str
    discovered_at: datetime
    connection_id: str
    watermark: datetime
    visible: bool = True
    status: SubscriptionStatus = "OK"
    message: str | None = None
    message_code: str | None = None  # the troubleshooting catalog's code of `message`
    failures: int = 0
    last_pulled_at: datetime | None = None
    last_success_at: datetime | None = None
    activities: int = 0
    skipped_events: int = 0  # events of other categories than ARM activity, read and skipped
    # Activities per UTC day: a copy of the activity store's summary, like `activities`, written
    # with it; kept in the store's stored form (`activities.layout.encode_day_counts`, decoded only
    # by the chart's read, `day_counts` to read it as a map), so listing records decodes nothing.
    day_counts: str | None = None
    # An unfinished window: [window_start, window_end] is being read, next_link is where to go on.
    window_start: datetime | None = None
    window_end: datetime | None = None
    next_link: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    # When the connection this record belongs to began: no window reaches before it. Kept here so
    # that a pull needs no read of the connector record.
    connected_at: datetime | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def active(self) -> bool:
        return self.visible and self.state in ACTIVE_STATES
