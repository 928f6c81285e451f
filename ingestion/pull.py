"""The pull: one subscription's Activity Log, from its watermark, in bounded steps.

A message reads the window `[watermark - overlap, now - lag]` (never before the connection,
never past the 90 days ARM keeps), page by page. Every page is stored before the position is
saved; the watermark moves only once every page of the window is stored. The position (the
window and the next page's link) lives on the subscription record, so a crash, a timeout or
a throttled pause resumes where it stopped, and a re-read costs nothing but the reading.

A lease on the subscription record keeps two messages for the same subscription from working
at once; every write to the record is conditional on its ETag.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from azure.core.exceptions import AzureError

from connector.service import describe_arm_failure
from connector.state import ConnectorStore, StaleWrite, SubscriptionRecord
from connector.status import iso
from core.arm import ArmAccessDenied, ArmBadRequest, ArmError, ArmLinkRefused, ArmNotFound, ArmThrottled
from core.clock import Clock
from core.runtime import Runtime
from core.settings import Settings
from core.storage import CONNECTOR_TABLE
from ingestion.messages import MalformedMessage, PullMessage, decode, enqueue
from ingestion.normalize import InvalidPage, parse_page
from ingestion.store import ActivityStore, LedgerContention

logger = logging.getLogger(__name__)

ARM_RETENTION = timedelta(days=90)
RETENTION_MARGIN = timedelta(minutes=10)
MAX_QUEUE_DELAY_SECONDS = 7 * 24 * 3600 - 60
WALL_CLOCK_BUDGET_SECONDS = 180.0

Outcome = Literal["caught_up", "backlog", "throttled", "denied", "skipped", "lease_lost"]


@dataclass(frozen=True)
class PullResult:
    outcome: Outcome
    pages: int = 0
    stored: int = 0


class LeaseLost(Exception):
    """Another pull holds the subscription now, or the connection changed; stop quietly."""


def next_window(
    sub: SubscriptionRecord, connected_at: datetime, now: datetime, settings: Settings
) -> tuple[datetime, datetime] | None:
    """The next window to read, or None when the subscription is caught up."""
    floor = max(connected_at, now - ARM_RETENTION + RETENTION_MARGIN)
    if sub.watermark < floor - timedelta(seconds=settings.pull_overlap_seconds):
        logger.warning(
            "Subscription %s was last read up to %s, beyond what ARM keeps; reading from %s",
            sub.subscription_id, iso(sub.watermark), iso(floor),
        )
    start = max(sub.watermark - timedelta(seconds=settings.pull_overlap_seconds), floor)
    end = min(
        now - timedelta(seconds=settings.pull_lag_seconds),
        max(sub.watermark, start) + timedelta(minutes=settings.pull_max_window_minutes),
    )
    if end <= sub.watermark or end <= start:
        return None
    return start, end


class _Lease:
    """The subscription's lease, owned by one queue message (a redelivery of it may take it back)."""

    def __init__(
        self, store: ConnectorStore, clock: Clock, seconds: int, connection_id: str, owner: str | None = None
    ) -> None:
        self.owner = owner or uuid.uuid4().hex
        self._store = store
        self._clock = clock
        self._seconds = seconds
        self._connection_id = connection_id

    def acquire(self, sub: SubscriptionRecord) -> SubscriptionRecord | None:
        current: SubscriptionRecord | None = sub
        for _ in range(8):
            if current is None or not current.active or current.connection_id != self._connection_id:
                return None
            now = self._clock.now()
            held = current.lease_owner and current.lease_until and current.lease_until > now
            if held and current.lease_owner != self.owner:
                return None
            try:
                return self._store.replace_subscription(
                    replace(current, lease_owner=self.owner, lease_until=now + timedelta(seconds=self._seconds))
                )
            except StaleWrite:
                current = self._store.get_subscription(sub.subscription_id)
        return None

    def update(
        self, sub: SubscriptionRecord, change: Callable[[SubscriptionRecord], SubscriptionRecord], *,
        release: bool = False,
    ) -> SubscriptionRecord:
        current = sub
        for _ in range(8):
            changed = change(current)
            if release:
                changed = replace(changed, lease_owner=None, lease_until=None)
            else:
                changed = replace(changed, lease_until=self._clock.now() + timedelta(seconds=self._seconds))
            try:
                return self._store.replace_subscription(changed)
            except StaleWrite:
                fresh = self._store.get_subscription(sub.subscription_id)
                if fresh is None or fresh.lease_owner != self.owner or fresh.connection_id != self._connection_id:
                    raise LeaseLost() from None
                current = fresh
        raise LeaseLost()


def run_pull(
    runtime: Runtime, body: bytes, *, message_id: str | None = None, dequeue_count: int = 1,
    max_dequeue_count: int = 5,
) -> PullResult:
    """Handle one pull-queue message. Raises (so the host retries) only on transient failures."""
    try:
        message = decode(body)
    except MalformedMessage as exc:
        logger.error("Dropping a malformed pull message: %s", exc)
        return PullResult("skipped")
    logger.info("Pull message for %s (%s, attempt %s)", message.subscription_id, message.reason, dequeue_count)
    return pull_subscription(runtime, message, message_id=message_id, dequeue_count=dequeue_count,
                             max_dequeue_count=max_dequeue_count)


def pull_subscription(
    runtime: Runtime, message: PullMessage, *, message_id: str | None = None, dequeue_count: int = 1,
    max_dequeue_count: int = 5,
) -> PullResult:
    settings, clock, arm = runtime.settings, runtime.clock, runtime.arm
    cstore = ConnectorStore(runtime.storage.table(CONNECTOR_TABLE))
    connector = cstore.get_connector()
    if (
        connector is None
        or not connector.connected
        or connector.connected_at is None
        or connector.connection_id != message.connection_id
    ):
        logger.info("Pull of %s skipped: not connected, or from an earlier connection", message.subscription_id)
        return PullResult("skipped")
    sub_id = message.subscription_id.lower()
    record = cstore.get_subscription(sub_id)
    lease = _Lease(cstore, clock, settings.pull_lease_seconds, connector.connection_id, owner=message_id)
    sub = lease.acquire(record) if record is not None else None
    if sub is None:
        logger.info("Pull of %s skipped: inactive, unknown, or already being pulled", sub_id)
        return PullResult("skipped")

    store = ActivityStore(runtime.storage)
    pages = stored = 0
    started = time.monotonic()
    outcome: Outcome = "caught_up"
    # After a window closes, another is read in the same message only if it is worth it (a backlog);
    # otherwise a message would chase `now` forever, re-reading the overlap each time.
    worth_another = timedelta(seconds=max(60, settings.pull_lag_seconds))
    windows = 0
    try:
        while True:
            now = clock.now()
            if sub.next_link is None or sub.window_end is None:
                window = next_window(sub, connector.connected_at, now, settings)
                if window is None or (windows and window[1] - sub.watermark < worth_another):
                    break
                windows += 1
                start, end = window
                url = arm.activity_log_url(sub_id, start, end)
                sub = lease.update(sub, _open_window(start, end, url))
            if pages >= settings.pull_max_pages or time.monotonic() - started > WALL_CLOCK_BUDGET_SECONDS:
                outcome = "backlog"
                break
            assert sub.next_link is not None and sub.window_end is not None
            window_end, link = sub.window_end, sub.next_link
            try:
                arm.check_activity_log_link(sub_id, link)
            except ArmLinkRefused as exc:
                # A stored link that does not point at this subscription's Activity Log: never follow
                # it; read the window again from its start (the re-read stores nothing twice).
                logger.warning("Pull of %s: the saved position was refused (%s); re-reading the window",
                               sub_id, exc.message)
                sub = lease.update(sub, _reopen_window(arm.activity_log_url(sub_id, sub.window_start or
                                                                            sub.watermark, window_end)))
                continue
            body = arm.activity_log_page(sub_id, link)
            page = parse_page(body, ingested_at=now, subscription_id=sub_id)
            items, next_link = page.items, page.next_link
            if next_link:
                arm.check_activity_log_link(sub_id, next_link)  # ARM's own link: refused is a failed attempt
            result = store.save(sub_id, items)
            pages += 1
            stored += result.stored
            total = result.subscription_total
            if next_link:
                sub = lease.update(sub, _next_page(next_link, total))
            else:
                sub = lease.update(sub, _close_window(window_end, total))
        finished = clock.now()
        lease.update(sub, lambda r: replace(
            r, status="OK", message=None, failures=0, last_pulled_at=finished, last_success_at=finished),
            release=True)
    except LeaseLost:
        logger.warning("Pull of %s stopped: another pull took over the subscription", sub_id)
        return PullResult("lease_lost", pages, stored)
    except ArmThrottled as exc:
        delay = min(max(1, math.ceil(exc.retry_after)), MAX_QUEUE_DELAY_SECONDS)
        resume = clock.now() + timedelta(seconds=delay)
        _release(lease, sub, status="OK", message=f"ARM is throttling reads; the pull resumes at {iso(resume)}.",
                 clock=clock)
        enqueue(runtime.storage, replace_reason(message, "throttled", clock.now()), delay_seconds=delay)
        logger.warning("Pull of %s throttled by ARM; re-enqueued with a %s s delay", sub_id, delay)
        return PullResult("throttled", pages, stored)
    except (ArmAccessDenied, ArmNotFound) as exc:
        text = describe_arm_failure(exc, subscription=f"{sub.display_name} ({sub_id})")
        _release(lease, sub, status="Error", message=text, clock=clock, failed=True)
        logger.warning("Pull of %s refused: %s", sub_id, text)
        return PullResult("denied", pages, stored)
    except (ArmError, AzureError, InvalidPage, LedgerContention) as exc:
        if isinstance(exc, ArmBadRequest):
            sub = _forget_window(lease, sub)
        final = dequeue_count >= max_dequeue_count
        reason = getattr(exc, "message", None) or str(exc).split("\n")[0]
        text = (
            f"Pulling failed {dequeue_count} times (last error: {reason}); the message was moved to "
            f"{settings.pull_queue}-poison and the next fan-out tries again."
            if final
            else f"Pulling failed (attempt {dequeue_count} of {max_dequeue_count}; it is retried): {reason}"
        )
        _release(lease, sub, status="Error", message=text, clock=clock, failed=True)
        logger.warning("Pull of %s failed (attempt %s): %s", sub_id, dequeue_count, reason)
        raise
    except Exception as exc:  # a defect: free the subscription and say so, then let the host retry
        _release(lease, sub, status="Error", clock=clock, failed=True,
                 message=f"Pulling failed unexpectedly ({type(exc).__name__}); see the Function App's logs.")
        logger.exception("Pull of %s failed unexpectedly (attempt %s)", sub_id, dequeue_count)
        raise

    if outcome == "backlog":
        enqueue(runtime.storage, replace_reason(message, "backlog", clock.now()))
    logger.info("Pulled %s: %s pages, %s new activities, %s", sub_id, pages, stored, outcome)
    return PullResult(outcome, pages, stored)


def _open_window(start: datetime, end: datetime, url: str) -> Callable[[SubscriptionRecord], SubscriptionRecord]:
    return lambda r: replace(r, window_start=start, window_end=end, next_link=url)


def _reopen_window(url: str) -> Callable[[SubscriptionRecord], SubscriptionRecord]:
    return lambda r: replace(r, next_link=url)


def _next_page(link: str, total: int) -> Callable[[SubscriptionRecord], SubscriptionRecord]:
    return lambda r: replace(r, next_link=link, activities=total)


def _close_window(end: datetime, total: int) -> Callable[[SubscriptionRecord], SubscriptionRecord]:
    """The whole window is stored: the watermark moves to its end (never backwards)."""
    return lambda r: replace(r, watermark=max(r.watermark, end), window_start=None, window_end=None,
                             next_link=None, activities=total)


def replace_reason(message: PullMessage, reason: Literal["backlog", "throttled"], now: datetime) -> PullMessage:
    return message.model_copy(update={"reason": reason, "enqueued_at": now})


def _release(
    lease: _Lease, sub: SubscriptionRecord, *, status: Literal["OK", "Error", "Inactive"], message: str,
    clock: Clock, failed: bool = False,
) -> None:
    now = clock.now()
    try:
        lease.update(sub, lambda r: replace(
            r, status=status, message=message, failures=r.failures + 1 if failed else r.failures,
            last_pulled_at=now), release=True)
    except LeaseLost:
        logger.info("Lease on %s was already taken over; status not written", sub.subscription_id)


def _forget_window(lease: _Lease, sub: SubscriptionRecord) -> SubscriptionRecord:
    try:
        return lease.update(sub, lambda r: replace(r, window_start=None, window_end=None, next_link=None))
    except LeaseLost:
        return sub
