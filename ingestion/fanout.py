"""The fan-out: list every subscription the connector can read, record it, enqueue one pull each."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from connector.service import describe_arm_failure, no_subscription_message, sync_subscriptions
from connector.state import ConnectorRecord, ConnectorStore, StaleWrite
from core.arm import ArmError, ArmThrottled
from core.runtime import Runtime
from core.storage import CONNECTOR_TABLE
from ingestion.messages import PullMessage, enqueue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FanoutResult:
    listed: int
    enqueued: int
    error: str | None


def run_fanout(runtime: Runtime) -> FanoutResult:
    store = ConnectorStore(runtime.storage.table(CONNECTOR_TABLE))
    connector = store.get_connector()
    if connector is None or not connector.connected or connector.connected_at is None:
        logger.info("Fan-out skipped: Microsoft Azure is not connected")
        return FanoutResult(0, 0, None)
    now = runtime.clock.now()
    try:
        found = runtime.arm.list_subscriptions()
    except (ArmError, ArmThrottled) as exc:
        failure = describe_arm_failure(exc)
        logger.warning("Fan-out could not list subscriptions: %s", failure)
        _record(store, connector, error=failure, now=now)
        return FanoutResult(0, 0, failure)

    records = sync_subscriptions(
        store, found, connection_id=connector.connection_id, connected_at=connector.connected_at, now=now
    )
    enqueued = 0
    for record in records:
        if record.active and record.connection_id == connector.connection_id:
            message = PullMessage(
                subscription_id=record.subscription_id, connection_id=connector.connection_id, enqueued_at=now
            )
            enqueue(runtime.storage, message)
            enqueued += 1
    # Recorded last: lastFanoutAt means the pulls are on the queue.
    error: str | None = None if found else no_subscription_message()
    _record(store, connector, error=error, now=now)
    logger.info("Fan-out listed %s subscriptions and enqueued %s pulls", len(found), enqueued)
    return FanoutResult(len(found), enqueued, error)


def _record(
    store: ConnectorStore, connector: ConnectorRecord, *, error: str | None, now: datetime
) -> ConnectorRecord | None:
    """Write lastFanoutAt and the connector-level error; None if the connector was disconnected meanwhile."""
    current: ConnectorRecord | None = connector
    for _ in range(8):
        if current is None or not current.connected or current.connection_id != connector.connection_id:
            return None
        try:
            return store.replace_connector(replace(current, error=error, last_fanout_at=now))
        except StaleWrite:
            current = store.get_connector()
    return None
