"""Subscription state: the one module that changes subscription records.

The connector API (connect, disconnect), the fan-out (sync with ARM) and the pull (lease, window,
watermark, counts, status) all change records through these functions, over the
`SubscriptionState` port; every change is an ETag-conditional write retried by
`core.optimistic.write_optimistically`.

Rules kept here:
- a subscription first seen in a connection starts at the connection time, or at its discovery
  time when later: nothing from before is backfilled;
- the watermark moves only when a whole window is stored (`close_window`), never backwards;
- a lease belongs to one queue message (its id); a redelivery of that message takes it back at
  once, any other pull waits until it expires; a disconnect detaches the record, which ends
  every lease on it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

from core.arm import ArmSubscription
from core.clock import Clock
from core.optimistic import StaleWrite, WriteContention, first_then, write_optimistically
from core.ports import SubscriptionState
from core.troubleshooting import Notice
from state.records import DETACHED, SubscriptionRecord, SubscriptionStatus

logger = logging.getLogger(__name__)

Change = Callable[[SubscriptionRecord], SubscriptionRecord]


# --- ARM's view: sync and detach -----------------------------------------------------------------


def sync_with_arm(
    subscriptions: SubscriptionState,
    found: list[ArmSubscription],
    *,
    connection_id: str,
    connected_at: datetime,
    now: datetime,
    read: list[SubscriptionRecord] | None = None,
) -> list[SubscriptionRecord]:
    """Add new subscriptions, refresh names and states, and mark vanished ones not visible.

    The records are read in one query (or `read`, the records just listed); a record that ARM
    shows unchanged is not written, so a steady-state tick writes nothing here.
    """
    seen = {s.subscription_id: s for s in found}
    records = {r.subscription_id: r for r in (subscriptions.list() if read is None else read)}
    out: list[SubscriptionRecord] = []
    for sub_id in sorted(set(seen) | set(records)):
        current = first_then(partial(subscriptions.get, sub_id), records.get(sub_id))

        def attempt(
            sub_id: str = sub_id, current: Callable[[], SubscriptionRecord | None] = current
        ) -> SubscriptionRecord | None:
            return _sync_one(subscriptions, current(), seen.get(sub_id), connection_id, connected_at, now)

        record = write_optimistically(attempt, what=f"Subscription {sub_id}")
        if record is not None:
            out.append(record)
    return out


def _sync_one(
    subscriptions: SubscriptionState,
    record: SubscriptionRecord | None,
    arm_sub: ArmSubscription | None,
    connection_id: str,
    connected_at: datetime,
    now: datetime,
) -> SubscriptionRecord | None:
    if arm_sub is None:
        if record is None:
            return None
        if record.visible:
            return subscriptions.replace(replace(record, visible=False))
        return record
    start = max(connected_at, now) if record is None or record.connection_id != connection_id else None
    if record is None:
        return subscriptions.insert(
            SubscriptionRecord(
                subscription_id=arm_sub.subscription_id,
                display_name=arm_sub.display_name,
                state=arm_sub.state,
                discovered_at=now,
                connection_id=connection_id,
                watermark=start or now,
                connected_at=connected_at,
            )
        )
    if start is not None:
        # First seen in this connection (a reconnect): nothing from before it is backfilled.
        return subscriptions.replace(
            replace(
                record,
                display_name=arm_sub.display_name,
                state=arm_sub.state,
                visible=True,
                discovered_at=now,
                connection_id=connection_id,
                connected_at=connected_at,
                watermark=start,
                status="OK",
                message=None,
                message_code=None,
                failures=0,
                window_start=None,
                window_end=None,
                next_link=None,
                lease_owner=None,
                lease_until=None,
            )
        )
    seen = (arm_sub.display_name, arm_sub.state, True, connected_at)
    if (record.display_name, record.state, record.visible, record.connected_at) != seen:
        return subscriptions.replace(
            replace(
                record, display_name=arm_sub.display_name, state=arm_sub.state, visible=True, connected_at=connected_at
            )
        )
    return record


# A pull message not consumed this long after the subscription's last pull is taken as lost
# (dropped, or never sent by a tick that crashed): the next tick enqueues the subscription again.
PENDING_PULL_TIMEOUT = timedelta(minutes=30)
# The pull's clock (lastPulledAt) and the fan-out's (lastFanoutAt) are different machines'.
CLOCK_SKEW = timedelta(seconds=10)


def pull_pending(sub: SubscriptionRecord, last_tick: datetime | None, now: datetime) -> bool:
    """Whether the pull message an earlier fan-out tick sent for `sub` is still queued or running.

    `last_tick` is the previous completed tick of this connection (the connector's lastFanoutAt,
    written once every message of that tick was on the queue). Every pull that takes the lease
    writes lastPulledAt when it ends, so a subscription not pulled since that tick still has its
    message waiting (or running): enqueuing another would only make a duplicate pull. A tick
    only enqueues a subscription whose earlier message was consumed, so this holds across
    ticks it skipped. A message lost for good unblocks after PENDING_PULL_TIMEOUT.
    """
    if last_tick is None:
        return False
    if sub.last_pulled_at is not None:
        if sub.last_pulled_at >= last_tick - CLOCK_SKEW:
            return False  # pulled since that tick
        since = sub.last_pulled_at
    else:
        if sub.discovered_at > last_tick:
            return False  # discovered after that tick: never enqueued
        since = sub.discovered_at
    return now - since < PENDING_PULL_TIMEOUT


def detach_all(subscriptions: SubscriptionState) -> None:
    """After a disconnect: no record belongs to a connection, and every lease ends.

    A running pull holds its record's old ETag, so its next write fails and it stops.
    """
    for sub in subscriptions.list():
        sub_id = sub.subscription_id

        def attempt(sub_id: str = sub_id) -> None:
            current = subscriptions.get(sub_id)
            if current is None or (current.connection_id == DETACHED and current.lease_owner is None):
                return
            subscriptions.replace(replace(current, connection_id=DETACHED, lease_owner=None, lease_until=None))

        write_optimistically(attempt, what=f"Subscription {sub_id}")


# --- the pull's lease and position ---------------------------------------------------------------


class LeaseLost(Exception):
    """Another pull holds the subscription now, or the connection changed; stop quietly."""


class Lease:
    """A subscription's lease, owned by one queue message (a redelivery of it may take it back)."""

    def __init__(
        self,
        subscriptions: SubscriptionState,
        clock: Clock,
        seconds: int,
        connection_id: str,
        owner: str | None = None,
    ) -> None:
        self.owner = owner or uuid.uuid4().hex
        self._subscriptions = subscriptions
        self._clock = clock
        self._seconds = seconds
        self._connection_id = connection_id

    def acquire(
        self, subscription_id: str, *, first: SubscriptionRecord | None = None, plan: Change | None = None
    ) -> SubscriptionRecord | None:
        """The record, now leased to this owner; None when inactive, unknown, detached or leased to another.

        `first` is a record just read (saves a read on the first attempt); `plan` is the pull's
        first change (opening its window), written in the same request as the lease.
        """
        read = first_then(lambda: self._subscriptions.get(subscription_id), first)

        def attempt() -> SubscriptionRecord | None:
            current = read()
            if current is None or not current.active or current.connection_id != self._connection_id:
                return None
            now = self._clock.now()
            held = current.lease_owner and current.lease_until and current.lease_until > now
            if held and current.lease_owner != self.owner:
                return None
            leased = replace(current, lease_owner=self.owner, lease_until=now + timedelta(seconds=self._seconds))
            return self._subscriptions.replace(plan(leased) if plan is not None else leased)

        try:
            return write_optimistically(attempt, what=f"Subscription {subscription_id}")
        except WriteContention:
            return None

    def update(self, sub: SubscriptionRecord, change: Change, *, release: bool = False) -> SubscriptionRecord:
        """Apply `change` and renew (or release) the lease; LeaseLost once the record is no longer ours."""
        current = [sub]

        def attempt() -> SubscriptionRecord:
            changed = change(current[0])
            if release:
                changed = replace(changed, lease_owner=None, lease_until=None)
            else:
                changed = replace(changed, lease_until=self._clock.now() + timedelta(seconds=self._seconds))
            try:
                return self._subscriptions.replace(changed)
            except StaleWrite:
                fresh = self._subscriptions.get(sub.subscription_id)
                if fresh is None or fresh.lease_owner != self.owner or fresh.connection_id != self._connection_id:
                    raise LeaseLost() from None
                current[0] = fresh
                raise

        try:
            return write_optimistically(attempt, what=f"Subscription {sub.subscription_id}")
        except WriteContention:
            raise LeaseLost() from None

    def release(
        self,
        sub: SubscriptionRecord,
        *,
        status: SubscriptionStatus,
        message: Notice | None,
        failed: bool = False,
        change: Change | None = None,
    ) -> None:
        """Free the subscription and say how the pull went (after `change`, if any); nothing when
        another pull owns it now."""
        now = self._clock.now()

        def finish(r: SubscriptionRecord) -> SubscriptionRecord:
            r = change(r) if change is not None else r
            return replace(
                r,
                status=status,
                message=message.text if message else None,
                message_code=message.code if message else None,
                failures=r.failures + 1 if failed else r.failures,
                last_pulled_at=now,
            )

        try:
            self.update(sub, finish, release=True)
        except LeaseLost:
            logger.info("Lease on %s was already taken over; status not written", sub.subscription_id)


def chain(*changes: Change) -> Change:
    """One change made of several, applied in order (so that they are written in one request)."""

    def apply(r: SubscriptionRecord) -> SubscriptionRecord:
        for change in changes:
            r = change(r)
        return r

    return apply


def mark_pulled(subscriptions: SubscriptionState, record: SubscriptionRecord, now: datetime) -> None:
    """A pull found nothing to read: say it ran (the fan-out's `pull_pending` looks at lastPulledAt).

    Conditional on the record as read; when another writer came first it has said so already.
    """
    try:
        subscriptions.replace(replace(record, last_pulled_at=now))
    except StaleWrite:
        logger.debug("Subscription %s changed meanwhile; its lastPulledAt is another pull's", record.subscription_id)


def open_window(start: datetime, end: datetime, url: str) -> Change:
    return lambda r: replace(r, window_start=start, window_end=end, next_link=url)


def reread_window(url: str) -> Change:
    """The saved position was refused: read the window again from its first page."""
    return lambda r: replace(r, next_link=url)


def next_page(link: str, total: int, skipped: int, days: str | None = None) -> Change:
    """A page is stored: the position moves on; the counts are the activity store's (`days` None: unchanged)."""
    return lambda r: replace(
        r,
        next_link=link,
        activities=total,
        skipped_events=r.skipped_events + skipped,
        day_counts=r.day_counts if days is None else days,
    )


def close_window(end: datetime, total: int, skipped: int, days: str | None = None) -> Change:
    """The whole window is stored: the watermark moves to its end (never backwards)."""
    return lambda r: replace(
        r,
        watermark=max(r.watermark, end),
        window_start=None,
        window_end=None,
        next_link=None,
        activities=total,
        skipped_events=r.skipped_events + skipped,
        day_counts=r.day_counts if days is None else days,
    )


def forget_window(r: SubscriptionRecord) -> SubscriptionRecord:
    return replace(r, window_start=None, window_end=None, next_link=None)


def succeeded(at: datetime) -> Change:
    return lambda r: replace(
        r, status="OK", message=None, message_code=None, failures=0, last_pulled_at=at, last_success_at=at
    )
