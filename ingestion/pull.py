"""The pull: one subscription's Activity Log, from its watermark, in bounded steps.

A message acquires the subscription's lease, then steps page by page through the window
`[watermark - overlap, now - lag]` (never before the connection, never past the 90 days ARM
keeps): fetch a page, store it, save the position. The watermark moves only when every page of
the window is stored (`state.subscriptions.close_window`); the position lives on the
subscription record, so a crash, a timeout or a throttled pause resumes where it stopped, and a
re-read costs nothing but the reading. How each failure is answered is one table, `FAILURES`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from azure.core.exceptions import AzureError

from activities.writer import LedgerContention
from core.arm import (
    ArmAccessDenied,
    ArmBadRequest,
    ArmError,
    ArmLinkRefused,
    ArmNotFound,
    ArmThrottled,
    arm_failure_notice,
)
from core.clock import Clock
from core.optimistic import WriteContention
from core.ports import ActivityWriter, Arm, ConnectorState, PullQueue, SubscriptionState
from core.settings import Settings
from core.timefmt import wire_time
from core.troubleshooting import Notice, notice
from ingestion.messages import MalformedMessage, PullMessage, decode
from ingestion.normalize import InvalidPage, parse_page
from state import subscriptions as state
from state.records import SubscriptionRecord
from state.subscriptions import Lease, LeaseLost

logger = logging.getLogger(__name__)

ARM_RETENTION = timedelta(days=90)
RETENTION_MARGIN = timedelta(minutes=10)
MAX_QUEUE_DELAY_SECONDS = 7 * 24 * 3600 - 60
WALL_CLOCK_BUDGET_SECONDS = 180.0
# Pages fetched ahead, for every pull of this worker (a fetch is a thread waiting on ARM): one per
# pull the worker runs at once (host.json's batchSize + newBatchThreshold, on as many worker
# threads, PYTHON_THREADPOOL_THREAD_COUNT), so a busy pull never waits for another's fetch.
_FETCHERS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="arm-page")

Outcome = Literal["caught_up", "backlog", "throttled", "denied", "skipped", "lease_lost"]


@dataclass(frozen=True)
class PullResult:
    outcome: Outcome
    pages: int = 0
    stored: int = 0
    arm_seconds: float = 0.0  # how long ARM took to answer the pages read


@dataclass(frozen=True)
class PullPorts:
    """What a pull needs; built once per worker by `core.runtime`."""

    connector: ConnectorState
    subscriptions: SubscriptionState
    arm: Arm
    activities: ActivityWriter
    queue: PullQueue
    clock: Clock
    settings: Settings


@dataclass(frozen=True)
class Delivery:
    """The queue message as the host delivered it."""

    message_id: str | None = None
    dequeue_count: int = 1
    max_dequeue_count: int = 5


def next_window(
    sub: SubscriptionRecord, connected_at: datetime, now: datetime, settings: Settings, *, overlap: bool = True
) -> tuple[datetime, datetime] | None:
    """The next window to read, or None when the subscription is caught up.

    With `overlap` the window starts PULL_OVERLAP_SECONDS before the watermark, to catch events
    that surfaced late; without, at the watermark (a backlog step: the tick's first window has
    already re-read the overlap, and reading it again would read the same pages message after
    message).
    """
    floor = max(connected_at, now - ARM_RETENTION + RETENTION_MARGIN)
    back = timedelta(seconds=settings.pull_overlap_seconds if overlap else 0)
    if sub.watermark < floor - timedelta(seconds=settings.pull_overlap_seconds):
        logger.warning(
            "Subscription %s was last read up to %s, beyond what ARM keeps; reading from %s",
            sub.subscription_id,
            wire_time(sub.watermark),
            wire_time(floor),
        )
    start = max(sub.watermark - back, floor)
    end = min(
        now - timedelta(seconds=settings.pull_lag_seconds),
        max(sub.watermark, start) + timedelta(minutes=settings.pull_max_window_minutes),
    )
    if end <= sub.watermark or end <= start:
        return None
    return start, end


def run_pull(ports: PullPorts, body: bytes, delivery: Delivery = Delivery()) -> PullResult:
    """Handle one pull-queue message. Raises (so the host retries) only on transient failures."""
    try:
        message = decode(body)
    except MalformedMessage as exc:
        logger.error("Dropping a malformed pull message: %s", exc)
        return PullResult("skipped")
    logger.info("Pull message for %s (%s, attempt %s)", message.subscription_id, message.reason, delivery.dequeue_count)
    return pull_subscription(ports, message, delivery)


def pull_subscription(
    ports: PullPorts, message: PullMessage, delivery: Delivery = Delivery(), *, prefetch: bool = True
) -> PullResult:
    """Pull one subscription for one message.

    A caught-up pull with nothing new costs one read of the subscription record, one write that
    takes the lease and opens the window, the ARM read, and one write that closes the window,
    records the success and frees the lease: the connector record is not read (a disconnect
    detaches the subscription records, so the record's connection id says whether the message's
    connection is still current). A duplicate message with nothing since the watermark costs the
    read and one write saying that the pull ran. `prefetch=False` stores each page before
    fetching the next (the benchmark compares both ways).
    """
    sub_id = message.subscription_id.lower()
    record = ports.subscriptions.get(sub_id)
    if record is None or not record.active or record.connection_id != message.connection_id:
        logger.info("Pull of %s skipped: inactive, unknown, or from an earlier connection", sub_id)
        return PullResult("skipped")
    connected_at = record.connected_at or _connected_at(ports.connector, message.connection_id)
    if connected_at is None:
        logger.info("Pull of %s skipped: not connected, or from an earlier connection", sub_id)
        return PullResult("skipped")
    lease = Lease(
        ports.subscriptions,
        ports.clock,
        ports.settings.pull_lease_seconds,
        message.connection_id,
        owner=delivery.message_id,
    )
    # The overlap is re-read once per fan-out tick: by the message the fan-out sent, in its first window.
    job = PullJob(ports, lease, record, connected_at, overlap=message.reason == "fanout", prefetch=prefetch)
    plan = job.plan_first_window(record)
    if plan is None:
        state.mark_pulled(ports.subscriptions, record, ports.clock.now())
        logger.info("Pull of %s: caught up", sub_id)
        return PullResult("caught_up")
    if not job.start(record, plan):
        logger.info("Pull of %s skipped: already being pulled", sub_id)
        return PullResult("skipped")
    try:
        outcome = job.run()
    except Exception as exc:  # noqa: BLE001 - every failure goes through the table below; most raise again
        return _on_failure(job, message, delivery, exc)
    if outcome == "backlog":
        ports.queue.send(message.model_copy(update={"reason": "backlog", "enqueued_at": ports.clock.now()}))
    logger.info("Pulled %s: %s pages, %s new activities, %s", sub_id, job.pages, job.stored, outcome)
    return PullResult(outcome, job.pages, job.stored, job.arm_seconds)


def _connected_at(connector: ConnectorState, connection_id: str) -> datetime | None:
    """For a record written before it kept its connection's start: the connector record's."""
    record = connector.get()
    if record is None or not record.connected or record.connection_id != connection_id:
        return None
    return record.connected_at


class PullJob:
    """One message's work on one leased subscription: open a window, step through its pages, finish.

    Writes are few: the lease is taken in the same request that opens the first window, each
    stored page's position is saved (the window's last page excepted: closing the window is
    written with whatever comes next, the next window or the release), and the release records
    the outcome. A crash before a write loses nothing: the saved position is re-read.

    ARM is slow (0.5-2 s a page) and storing a page takes time too, so the next page is fetched
    while the current one is stored (one page ahead, only when this message will read it). The
    position saved after a stored page is still that page's `nextLink`: a page fetched ahead but
    never stored is simply fetched again by the next attempt.
    """

    def __init__(
        self,
        ports: PullPorts,
        lease: Lease,
        sub: SubscriptionRecord,
        connected_at: datetime,
        *,
        overlap: bool = True,
        prefetch: bool = True,
    ) -> None:
        self.ports = ports
        self.lease = lease
        self.sub = sub  # as this job sees it: the last record written, with `_pending` applied
        self.connected_at = connected_at
        self.pages = 0
        self.stored = 0
        self.arm_seconds = 0.0  # time ARM took to answer this job's pages (for the pace benchmark)
        self._written = sub
        self._pending: list[state.Change] = []
        self._overlap = overlap
        self._prefetch = prefetch
        self._ahead: tuple[str, Future[tuple[bytes, float]]] | None = None
        self._windows = 0
        self._started = time.monotonic()

    @property
    def sub_id(self) -> str:
        return self.sub.subscription_id

    # --- writes -------------------------------------------------------------------------------

    def _write(self, change: state.Change | None = None, *, release: bool = False) -> None:
        """Write what is pending, with `change`, in one conditional request (renewing or freeing the lease)."""
        changes = [*self._pending, *([change] if change is not None else [])]
        self._written = self.lease.update(self._written, state.chain(*changes), release=release)
        self._pending = []
        self.sub = self._written

    def _defer(self, change: state.Change) -> None:
        """Apply `change` to this job's view now; it is written with the next write."""
        self._pending.append(change)
        self.sub = change(self.sub)

    def release(self, *, status: state.SubscriptionStatus, message: Notice | None, failed: bool = False) -> None:
        self.lease.release(
            self._written, status=status, message=message, failed=failed, change=state.chain(*self._pending)
        )

    def forget_window(self) -> None:
        with contextlib.suppress(LeaseLost):
            self._write(state.forget_window)

    # --- the work -----------------------------------------------------------------------------

    def plan_first_window(self, record: SubscriptionRecord) -> state.Change | None:
        """What the lease's write also does: open the first window; None when there is nothing to read."""
        if record.next_link is not None and record.window_end is not None:
            return lambda r: r  # an unfinished window: go on from its saved position
        window = self._next_window(record)
        if window is None:
            return None
        self._windows += 1
        start, end = window
        return state.open_window(start, end, self.ports.arm.activity_log_url(self.sub_id, start, end))

    def start(self, record: SubscriptionRecord, plan: state.Change) -> bool:
        leased = self.lease.acquire(self.sub_id, first=record, plan=plan)
        if leased is None:
            return False
        self.sub = self._written = leased
        return True

    def run(self) -> Literal["caught_up", "backlog"]:
        """Step until caught up or out of budget; then release the lease with status OK."""
        outcome: Literal["caught_up", "backlog"] = "caught_up"
        while True:
            window_open = self.sub.next_link is not None and self.sub.window_end is not None
            if not window_open and not self._open_next_window():
                break
            if self._out_of_budget():
                outcome = "backlog"
                break
            self._step()
        self._write(state.succeeded(self.ports.clock.now()), release=True)
        return outcome

    def _next_window(self, record: SubscriptionRecord) -> tuple[datetime, datetime] | None:
        overlap = self._overlap and self._windows == 0
        return next_window(record, self.connected_at, self.ports.clock.now(), self.ports.settings, overlap=overlap)

    def _open_next_window(self) -> bool:
        window = self._next_window(self.sub)
        # After a window closes, another is read in the same message only if it is worth it (a
        # backlog); otherwise a message would chase `now` forever.
        worth_another = timedelta(seconds=max(60, self.ports.settings.pull_lag_seconds))
        if window is None or (self._windows and window[1] - self.sub.watermark < worth_another):
            return False
        self._windows += 1
        start, end = window
        self._write(state.open_window(start, end, self.ports.arm.activity_log_url(self.sub_id, start, end)))
        return True

    def _out_of_budget(self, pages_ahead: int = 0) -> bool:
        return (
            self.pages + pages_ahead >= self.ports.settings.pull_max_pages
            or time.monotonic() - self._started > WALL_CLOCK_BUDGET_SECONDS
        )

    def _step(self) -> None:
        """One page: check where the saved position points, fetch, store, save the new position."""
        arm, sub = self.ports.arm, self.sub
        assert sub.next_link is not None and sub.window_end is not None
        window_end, link = sub.window_end, sub.next_link
        try:
            arm.check_activity_log_link(self.sub_id, link)
        except ArmLinkRefused as exc:
            # A stored link that does not point at this subscription's Activity Log: never follow
            # it; read the window again from its start (the re-read stores nothing twice).
            logger.warning(
                "Pull of %s: the saved position was refused (%s); re-reading the window", self.sub_id, exc.message
            )
            first = arm.activity_log_url(self.sub_id, sub.window_start or sub.watermark, window_end)
            self._write(state.reread_window(first))
            return
        now = self.ports.clock.now()
        page = parse_page(self._fetch(link), ingested_at=now, subscription_id=self.sub_id)
        if page.next_link:
            arm.check_activity_log_link(self.sub_id, page.next_link)  # ARM's own link: refused is a failed attempt
            if self._prefetch and not self._out_of_budget(pages_ahead=1):
                self._ahead = (page.next_link, _FETCHERS.submit(self._timed_fetch, page.next_link))
        # Skipped events are counted once: a re-read of the overlap (times up to the watermark the
        # window was opened at, still the record's until the window closes) does not count them again.
        skipped = page.skipped_after(self.sub.watermark)
        total, days = self.sub.activities, None
        if page.items:
            result = self.ports.activities.save(self.sub_id, page.items)
            self.stored += result.stored
            total, days = result.subscription_total, result.subscription_days
        self.pages += 1
        if page.next_link:
            self._write(state.next_page(page.next_link, total, skipped, days))
        else:
            self._defer(state.close_window(window_end, total, skipped, days))

    def _fetch(self, link: str) -> bytes:
        """The page at `link`: the one fetched ahead when it is that page, else fetched now."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == link:
            body, seconds = ahead[1].result()  # raises what the fetch raised: the failure table answers it
        else:
            body, seconds = self._timed_fetch(link)
        self.arm_seconds += seconds
        return body

    def _timed_fetch(self, link: str) -> tuple[bytes, float]:
        started = time.monotonic()
        return self.ports.arm.activity_log_page(self.sub_id, link), time.monotonic() - started


# --- failures: one table, one policy each --------------------------------------------------------

Policy = Callable[[PullJob, PullMessage, Delivery, Exception], PullResult]


def _stop(job: PullJob, message: PullMessage, delivery: Delivery, exc: Exception) -> PullResult:
    logger.warning("Pull of %s stopped: another pull took over the subscription, or it was disconnected", job.sub_id)
    return PullResult("lease_lost", job.pages, job.stored)


def _re_enqueue(job: PullJob, message: PullMessage, delivery: Delivery, exc: Exception) -> PullResult:
    assert isinstance(exc, ArmThrottled)
    clock = job.ports.clock
    delay = min(max(1, math.ceil(exc.retry_after)), MAX_QUEUE_DELAY_SECONDS)
    resume = wire_time(clock.now() + timedelta(seconds=delay))
    job.release(status="OK", message=notice("PullThrottled", resumeAt=resume))
    job.ports.queue.send(
        message.model_copy(update={"reason": "throttled", "enqueued_at": clock.now()}), delay_seconds=delay
    )
    logger.warning("Pull of %s throttled by ARM; re-enqueued with a %s s delay", job.sub_id, delay)
    return PullResult("throttled", job.pages, job.stored)


def _deny(job: PullJob, message: PullMessage, delivery: Delivery, exc: Exception) -> PullResult:
    assert isinstance(exc, ArmError)
    shown = arm_failure_notice(exc, subscription=f"{job.sub.display_name} ({job.sub_id})")
    job.release(status="Error", message=shown, failed=True)
    logger.warning("Pull of %s refused: %s", job.sub_id, shown.text)
    return PullResult("denied", job.pages, job.stored)


def _retry(job: PullJob, message: PullMessage, delivery: Delivery, exc: Exception) -> PullResult:
    if isinstance(exc, ArmBadRequest):  # the window itself was refused: open it anew next time
        job.forget_window()
    settings = job.ports.settings
    final = delivery.dequeue_count >= delivery.max_dequeue_count
    reason = getattr(exc, "message", None) or str(exc).split("\n")[0]
    shown = (
        notice(
            "PullPoisoned", attempts=delivery.dequeue_count, reason=reason, poisonQueue=f"{settings.pull_queue}-poison"
        )
        if final
        else notice(
            "PullRetrying", attempt=delivery.dequeue_count, maxAttempts=delivery.max_dequeue_count, reason=reason
        )
    )
    job.release(status="Error", message=shown, failed=True)
    logger.warning("Pull of %s failed (attempt %s): %s", job.sub_id, delivery.dequeue_count, reason)
    raise exc


def _retry_unexpected(job: PullJob, message: PullMessage, delivery: Delivery, exc: Exception) -> PullResult:
    """A defect: free the subscription and say so, then let the host retry."""
    job.release(status="Error", message=notice("PullFailedUnexpectedly", errorType=type(exc).__name__), failed=True)
    logger.error("Pull of %s failed unexpectedly (attempt %s)", job.sub_id, delivery.dequeue_count, exc_info=exc)
    raise exc


FAILURES: list[tuple[tuple[type[Exception], ...], Policy]] = [
    ((LeaseLost,), _stop),
    ((ArmThrottled,), _re_enqueue),
    ((ArmAccessDenied, ArmNotFound), _deny),
    ((ArmError, AzureError, InvalidPage, LedgerContention, WriteContention), _retry),
    ((Exception,), _retry_unexpected),
]


def _on_failure(job: PullJob, message: PullMessage, delivery: Delivery, exc: Exception) -> PullResult:
    policy = next(policy for kinds, policy in FAILURES if isinstance(exc, kinds))
    return policy(job, message, delivery, exc)
