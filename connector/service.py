"""The connect handshake, disconnect, and keeping the subscription records in step with ARM."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from connector.state import (
    DETACHED,
    AlreadyExists,
    ConnectorRecord,
    ConnectorStore,
    StaleWrite,
    SubscriptionRecord,
)
from connector.status import READER_FIX, connector_body
from core.arm import (
    ArmAccessDenied,
    ArmBadRequest,
    ArmClient,
    ArmError,
    ArmNotFound,
    ArmSignInFailed,
    ArmSubscription,
    ArmThrottled,
    ArmUnavailable,
)
from core.auth import Principal
from core.clock import Clock
from core.errors import Conflict, NotFound

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def describe_arm_failure(exc: ArmError | ArmThrottled, *, subscription: str | None = None) -> str:
    """A message for an administrator: what is wrong and how to fix it."""
    where = f"subscription {subscription}" if subscription else "the subscription list"
    if isinstance(exc, ArmThrottled):
        return f"ARM is throttling the connector's reads of {where}; it retries after {exc.retry_after:.0f} s."
    if isinstance(exc, ArmSignInFailed):
        return (
            f"{exc.message}. Check AZURE_TENANT_ID and AZURE_CLIENT_ID (and the client secret, or that the "
            "Function App's managed identity exists)."
        )
    if isinstance(exc, ArmAccessDenied):
        answer = " ".join(part for part in (str(exc.status or ""), exc.arm_code or "") if part)
        if subscription:
            return (
                f"The connector's identity has no read access to {where} (ARM answered {answer}): "
                "assign it the Activity Log Reader role (or Reader) on that subscription."
            )
        return f"ARM refused to list subscriptions for the connector's identity ({answer}): {READER_FIX}."
    if isinstance(exc, ArmNotFound):
        return f"ARM no longer knows {where}; it may have been deleted or moved to another tenant."
    if isinstance(exc, ArmBadRequest):
        return f"ARM refused the request for {where}: {exc.message}"
    if isinstance(exc, ArmUnavailable):
        return f"ARM could not be read for {where}: {exc.message}. The connector retries on its next run."
    return f"ARM could not be read for {where}: {exc.message}"


def no_subscription_message() -> str:
    return f"The connector's identity can read no subscription: {READER_FIX}."


def load_body(store: ConnectorStore) -> dict[str, Any]:
    connector = store.get_connector()
    if connector is None:
        raise NotFound("Microsoft Azure is not connected yet: connect it first (POST /api/connectors/azure).")
    return connector_body(connector, store.list_subscriptions())


def connect(store: ConnectorStore, arm: ArmClient, clock: Clock, principal: Principal) -> Answer:
    """Probe ARM with the connector's identity and record the connection (idempotent)."""
    now = clock.now()
    found: list[ArmSubscription] = []
    probe_error: str | None = None
    try:
        found = arm.list_subscriptions()
    except (ArmError, ArmThrottled) as exc:
        probe_error = describe_arm_failure(exc)
        logger.warning("Connect probe failed: %s", probe_error)
    if probe_error is None and not found:
        probe_error = no_subscription_message()

    for _ in range(MAX_ATTEMPTS):
        current = store.get_connector()
        try:
            if probe_error is not None:
                record, status = _record_failed_attempt(store, current, principal, now, probe_error), 502
            elif current is not None and current.connected:
                record, status = current, 200
                if current.error:
                    record = store.replace_connector(replace(current, error=None))
            else:
                record, status = _new_connection(store, current, principal, now), 201
        except (StaleWrite, AlreadyExists):
            continue
        break
    else:
        raise Conflict("The connector's state kept changing while connecting; try again.")

    if probe_error is None and record.connected_at is not None:
        sync_subscriptions(store, found, connection_id=record.connection_id, connected_at=record.connected_at, now=now)
    logger.info("Connect by %s answered %s", principal.display, status)
    return Answer(status, connector_body(record, store.list_subscriptions()))


def _record_failed_attempt(
    store: ConnectorStore, current: ConnectorRecord | None, principal: Principal, now: datetime, error: str
) -> ConnectorRecord:
    if current is None:
        return store.insert_connector(
            ConnectorRecord(
                connected=False,
                connection_id=str(uuid.uuid4()),
                connected_at=None,
                connected_by=principal.upn,
                connected_by_id=principal.object_id,
                attempted_at=now,
                error=error,
            )
        )
    if current.connected:
        # Still connected: the status reads Error until the next good run clears it.
        return store.replace_connector(replace(current, error=error, attempted_at=now))
    return store.replace_connector(
        replace(current, error=error, attempted_at=now, connected_by=principal.upn,
                connected_by_id=principal.object_id, disconnected_at=None, disconnected_by=None,
                disconnected_by_id=None)
    )


def _new_connection(
    store: ConnectorStore, current: ConnectorRecord | None, principal: Principal, now: datetime
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
    return store.insert_connector(record) if current is None else store.replace_connector(record)


def disconnect(store: ConnectorStore, clock: Clock, principal: Principal) -> Answer:
    """Mark the connector Disconnected, then detach every subscription so running pulls stop.

    Order of writes: the connector first (no new pull starts: each checks the connection), then
    every subscription record is detached (connection id cleared, lease dropped) with a write
    conditional on its ETag. A pull that is running holds the record's old ETag, so its next
    write (after the page it is storing, before the next one) fails and it stops without writing
    a status; what it stored is keyed by event, so nothing is lost or counted twice.
    """
    for _ in range(MAX_ATTEMPTS):
        current = store.get_connector()
        if current is None:
            raise NotFound("Microsoft Azure is not connected.")
        if not current.connected and current.disconnected_at is not None:
            record = current
            break
        try:
            record = store.replace_connector(
                replace(current, connected=False, error=None, disconnected_at=clock.now(),
                        disconnected_by=principal.upn, disconnected_by_id=principal.object_id)
            )
        except StaleWrite:
            continue
        break
    else:
        raise Conflict("The connector's state kept changing while disconnecting; try again.")
    for sub in store.list_subscriptions():
        _detach(store, sub)
    logger.info("Disconnected by %s (%s)", principal.display, principal.object_id)
    return Answer(200, connector_body(record, store.list_subscriptions()))


def _detach(store: ConnectorStore, sub: SubscriptionRecord) -> None:
    current: SubscriptionRecord | None = sub
    for _ in range(MAX_ATTEMPTS):
        if current is None or (current.connection_id == DETACHED and current.lease_owner is None):
            return
        try:
            store.replace_subscription(replace(current, connection_id=DETACHED, lease_owner=None, lease_until=None))
            return
        except StaleWrite:
            current = store.get_subscription(sub.subscription_id)
    raise Conflict(f"Subscription {sub.subscription_id} kept changing while disconnecting; try again.")


def sync_subscriptions(
    store: ConnectorStore,
    found: list[ArmSubscription],
    *,
    connection_id: str,
    connected_at: datetime,
    now: datetime,
) -> list[SubscriptionRecord]:
    """Add new subscriptions, refresh names and states, and mark vanished ones not visible.

    A subscription first seen in this connection starts at the connection time, or at its
    discovery time when that is later (the pull's overlap re-reads the minutes before it).
    """
    seen = {s.subscription_id: s for s in found}
    records = {r.subscription_id: r for r in store.list_subscriptions()}
    out: list[SubscriptionRecord] = []
    for sub_id in sorted(set(seen) | set(records)):
        for _ in range(MAX_ATTEMPTS):
            try:
                record = _sync_one(store, records.get(sub_id), seen.get(sub_id), connection_id, connected_at, now)
            except (StaleWrite, AlreadyExists):
                records[sub_id] = store.get_subscription(sub_id)  # type: ignore[assignment]
                continue
            break
        else:
            raise Conflict(f"Subscription {sub_id} kept changing while syncing; the next run retries.")
        if record is not None:
            out.append(record)
    return out


def _sync_one(
    store: ConnectorStore,
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
            return store.replace_subscription(replace(record, visible=False))
        return record
    start = max(connected_at, now) if record is None or record.connection_id != connection_id else None
    if record is None:
        return store.insert_subscription(
            SubscriptionRecord(
                subscription_id=arm_sub.subscription_id,
                display_name=arm_sub.display_name,
                state=arm_sub.state,
                discovered_at=now,
                connection_id=connection_id,
                watermark=start or now,
            )
        )
    if start is not None:
        # First seen in this connection (a reconnect): nothing from before it is backfilled.
        fresh = replace(
            record,
            display_name=arm_sub.display_name,
            state=arm_sub.state,
            visible=True,
            discovered_at=now,
            connection_id=connection_id,
            watermark=start,
            status="OK",
            message=None,
            failures=0,
            window_start=None,
            window_end=None,
            next_link=None,
            lease_owner=None,
            lease_until=None,
        )
        return store.replace_subscription(fresh)
    if (record.display_name, record.state, record.visible) != (arm_sub.display_name, arm_sub.state, True):
        return store.replace_subscription(
            replace(record, display_name=arm_sub.display_name, state=arm_sub.state, visible=True)
        )
    return record
