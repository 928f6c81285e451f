"""The connector body the portal shows, with its status rolled up from the subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.arm import READER_FIX
from core.timefmt import wire_time_or_none as wire
from state.records import ConnectorRecord, SubscriptionRecord

APP_NAME = "Microsoft Azure"


@dataclass(frozen=True)
class ConnectorView:
    """The connector record with its subscriptions: what the status body is made of."""

    connector: ConnectorRecord
    subscriptions: list[SubscriptionRecord]


def subscription_status(sub: SubscriptionRecord) -> tuple[str, str | None]:
    if not sub.visible:
        return "Inactive", (
            "The connector's identity can no longer see this subscription; it is not pulled. "
            f"To monitor it again, {READER_FIX}."
        )
    if not sub.active:
        return "Inactive", f"The subscription is {sub.state}; it is not pulled."
    return sub.status, sub.message


def rollup(connector: ConnectorRecord, subs: list[SubscriptionRecord]) -> tuple[str, str | None]:
    if not connector.connected:
        if connector.disconnected_at is not None:
            who = f" by {connector.disconnected_by}" if connector.disconnected_by else ""
            return "Disconnected", (
                f"Disconnected{who} at {wire(connector.disconnected_at)}. Stored data is kept; "
                "connect again to resume monitoring."
            )
        return "Error", connector.error or "The connection was not completed; connect again."
    if connector.error:
        return "Error", connector.error
    active = [s for s in subs if s.active]
    if not active:
        return "Error", f"The connector's identity can read no active subscription: {READER_FIX}."
    failing = [s for s in active if s.status == "Error"]
    if not failing:
        return "Connected", None
    names = ", ".join(f"{s.display_name} ({s.subscription_id})" for s in failing)
    details = " ".join(s.message for s in failing if s.message)
    if len(failing) == len(active):
        return "Error", f"No subscription can be pulled: {names}. {details}".strip()
    return "Warning", f"Some subscriptions cannot be pulled: {names}. {details}".strip()


def connector_body(view: ConnectorView) -> dict[str, Any]:
    connector, subs = view.connector, view.subscriptions
    status, message = rollup(connector, subs)
    successes = [s.last_success_at for s in subs if s.last_success_at is not None]
    items = []
    for sub in subs:
        sub_status, sub_message = subscription_status(sub)
        items.append(
            {
                "subscriptionId": sub.subscription_id,
                "displayName": sub.display_name,
                "state": sub.state,
                "status": sub_status,
                "message": sub_message,
                "watermark": wire(sub.watermark),
                "lastPulledAt": wire(sub.last_pulled_at),
                "activities": sub.activities,
                "skippedEvents": sub.skipped_events,
            }
        )
    return {
        "app": APP_NAME,
        "status": status,
        "message": message,
        "connectedAt": wire(connector.connected_at),
        "connectedBy": connector.connected_by,
        "connectedById": connector.connected_by_id,
        "disconnectedAt": wire(connector.disconnected_at),
        "disconnectedBy": connector.disconnected_by,
        "disconnectedById": connector.disconnected_by_id,
        "lastFanoutAt": wire(connector.last_fanout_at),
        "lastSuccessAt": wire(max(successes)) if successes else None,
        "subscriptions": items,
    }
