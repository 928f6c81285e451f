"""The fan-out: list every subscription the connector can read, record it, enqueue one pull each."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime

from core.arm import ArmError, ArmThrottled, arm_failure_notice, no_subscription_notice
from core.clock import Clock
from core.optimistic import WriteContention, write_optimistically
from core.ports import Arm, ConnectorState, PullQueue, SubscriptionState
from core.troubleshooting import Notice
from ingestion.messages import PullMessage
from state.records import ConnectorRecord
from state.subscriptions import pull_pending, sync_with_arm

logger = logging.getLogger(__name__)

READER_THREAD = "fanout-read"  # the thread that reads the subscription records while ARM lists them
_READER = ThreadPoolExecutor(max_workers=1, thread_name_prefix=READER_THREAD)


@dataclass(frozen=True)
class FanoutResult:
    listed: int
    enqueued: int
    error: str | None
    pending: int = 0  # active subscriptions whose message from an earlier tick is still queued or running


def run_fanout(
    connector: ConnectorState, subscriptions: SubscriptionState, arm: Arm, queue: PullQueue, clock: Clock
) -> FanoutResult:
    record = connector.get()
    if record is None or not record.connected or record.connected_at is None:
        logger.info("Fan-out skipped: Microsoft Azure is not connected")
        return FanoutResult(0, 0, None)
    now = clock.now()
    # The subscription records are read (one query) while ARM lists the subscriptions.
    reading = _READER.submit(subscriptions.list)
    try:
        found = arm.list_subscriptions()
    except (ArmError, ArmThrottled) as exc:
        failure = arm_failure_notice(exc)
        logger.warning("Fan-out could not list subscriptions: %s", failure.text)
        _record(connector, record, error=failure, now=now)
        return FanoutResult(0, 0, failure.text)
    read = reading.result()

    records = sync_with_arm(
        subscriptions, found, connection_id=record.connection_id, connected_at=record.connected_at, now=now, read=read
    )
    last_tick = (
        record.last_fanout_at if record.last_fanout_at and record.last_fanout_at >= record.connected_at else None
    )
    chosen: dict[str, PullMessage] = {}  # one message per subscription per tick
    pending = 0
    for sub in records:
        if not sub.active or sub.connection_id != record.connection_id or sub.subscription_id in chosen:
            continue
        if pull_pending(sub, last_tick, now):
            pending += 1
            continue
        chosen[sub.subscription_id] = PullMessage(
            subscription_id=sub.subscription_id, connection_id=record.connection_id, enqueued_at=now
        )
    queue.send_many(list(chosen.values()))
    enqueued = len(chosen)
    # Recorded last: lastFanoutAt means the pulls are on the queue. It is the one write of a
    # steady-state tick (sync_with_arm writes only what ARM changed): the status shows it, and the
    # next tick tells by it which messages are still waiting (`pull_pending`).
    error = None if found else no_subscription_notice()
    _record(connector, record, error=error, now=now)
    logger.info(
        "Fan-out listed %s subscriptions and enqueued %s pulls (%s still queued or running)",
        len(found),
        enqueued,
        pending,
    )
    return FanoutResult(len(found), enqueued, error.text if error else None, pending)


def _record(connector: ConnectorState, listed_for: ConnectorRecord, *, error: Notice | None, now: datetime) -> None:
    """Write lastFanoutAt and the connector-level error; nothing if the connector was disconnected meanwhile."""

    def attempt() -> None:
        current = connector.get()
        if current is None or not current.connected or current.connection_id != listed_for.connection_id:
            return
        connector.replace(
            replace(
                current,
                error=error.text if error else None,
                error_code=error.code if error else None,
                last_fanout_at=now,
            )
        )

    try:
        write_optimistically(attempt, what="The connector's state")
    except WriteContention:
        logger.warning("Fan-out could not record its run: the connector's state kept changing")
