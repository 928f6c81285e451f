"""The connect handshake and disconnect: domain results, no HTTP (the edge picks status codes)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from connector.status import ConnectorView
from core.arm import ArmError, ArmSubscription, ArmThrottled, arm_failure_notice, no_subscription_notice
from core.auth import Principal
from core.clock import Clock
from core.errors import NotFound
from core.optimistic import write_optimistically
from core.ports import Arm, ConnectorState, SubscriptionState
from core.troubleshooting import Notice, text
from state.records import ConnectorRecord
from state.subscriptions import detach_all, sync_with_arm

logger = logging.getLogger(__name__)

ConnectOutcome = Literal["connected", "already_connected", "probe_failed"]


@dataclass(frozen=True)
class ConnectResult:
    outcome: ConnectOutcome
    view: ConnectorView


def current_view(connector: ConnectorState, subscriptions: SubscriptionState) -> ConnectorView:
    record = connector.get()
    if record is None:
        raise NotFound(text("NotConnected"))
    return ConnectorView(record, subscriptions.list())


def connect(
    connector: ConnectorState, subscriptions: SubscriptionState, arm: Arm, clock: Clock, principal: Principal
) -> ConnectResult:
    """Probe ARM with the connector's identity and record the connection (idempotent)."""
    now = clock.now()
    found: list[ArmSubscription] = []
    probe_error: Notice | None = None
    try:
        found = arm.list_subscriptions()
    except (ArmError, ArmThrottled) as exc:
        probe_error = arm_failure_notice(exc)
        logger.warning("Connect probe failed: %s", probe_error.text)
    if probe_error is None and not found:
        probe_error = no_subscription_notice()

    def attempt() -> tuple[ConnectorRecord, ConnectOutcome]:
        current = connector.get()
        if probe_error is not None:
            return _record_failed_attempt(connector, current, principal, now, probe_error), "probe_failed"
        if current is not None and current.connected:
            if current.error or current.error_code:
                return connector.replace(replace(current, error=None, error_code=None)), "already_connected"
            return current, "already_connected"
        return _new_connection(connector, current, principal, now), "connected"

    record, outcome = write_optimistically(attempt, what="The connector's state")
    if probe_error is None and record.connected_at is not None:
        sync_with_arm(
            subscriptions, found, connection_id=record.connection_id, connected_at=record.connected_at, now=now
        )
    logger.info("Connect by %s (%s): %s", principal.display, principal.object_id, outcome)
    return ConnectResult(outcome, ConnectorView(record, subscriptions.list()))


def _record_failed_attempt(
    connector: ConnectorState, current: ConnectorRecord | None, principal: Principal, now: datetime, failure: Notice
) -> ConnectorRecord:
    error, code = failure.text, failure.code
    if current is None:
        return connector.insert(
            ConnectorRecord(
                connected=False,
                connection_id=str(uuid.uuid4()),
                connected_at=None,
                connected_by=principal.upn,
                connected_by_id=principal.object_id,
                attempted_at=now,
                error=error,
                error_code=code,
            )
        )
    if current.connected:
        # Still connected: the status reads Error until the next good run clears it.
        return connector.replace(replace(current, error=error, error_code=code, attempted_at=now))
    return connector.replace(
        replace(
            current,
            error=error,
            error_code=code,
            attempted_at=now,
            connected_by=principal.upn,
            connected_by_id=principal.object_id,
            disconnected_at=None,
            disconnected_by=None,
            disconnected_by_id=None,
        )
    )


def _new_connection(
    connector: ConnectorState, current: ConnectorRecord | None, principal: Principal, now: datetime
) -> ConnectorRecord:
    record = ConnectorRecord(
        connected=True,
        connection_id=str(uuid.uuid4()),
        connected_at=now,
        connected_by=principal.upn,
        connected_by_id=principal.object_id,
        attempted_at=now,
        etag=current.etag if current else None,
    )
    return connector.insert(record) if current is None else connector.replace(record)


def disconnect(
    connector: ConnectorState, subscriptions: SubscriptionState, clock: Clock, principal: Principal
) -> ConnectorView:
    """Mark the connector Disconnected, then detach every subscription so running pulls stop.

    Order of writes: the connector first (no new pull starts: each checks the connection), then
    every subscription record is detached (`state.subscriptions.detach_all`). A running pull holds
    its record's old ETag, so its next write (after the page it is storing, before the next one)
    fails and it stops without writing a status; what it stored is keyed by event, so nothing is
    lost or counted twice.
    """

    def attempt() -> ConnectorRecord:
        current = connector.get()
        if current is None:
            raise NotFound(text("NotConnected"))
        if not current.connected and current.disconnected_at is not None:
            return current
        return connector.replace(
            replace(
                current,
                connected=False,
                error=None,
                error_code=None,
                disconnected_at=clock.now(),
                disconnected_by=principal.upn,
                disconnected_by_id=principal.object_id,
            )
        )

    record = write_optimistically(attempt, what="The connector's state")
    detach_all(subscriptions)
    logger.info("Disconnected by %s (%s)", principal.display, principal.object_id)
    return ConnectorView(record, subscriptions.list())
