"""The connector body the portal shows, with its status rolled up from the subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.timefmt import wire_time_or_none as wire
from core.troubleshooting import Notice, notice
from state.records import ConnectorRecord, SubscriptionRecord

APP_NAME = "Microsoft Azure"


@dataclass(frozen=True)
class ConnectorView:
    """The connector record with its subscriptions: what the status body is made of."""

    connector: ConnectorRecord
    subscriptions: list[SubscriptionRecord]


@dataclass(frozen=True)
class Status:
    """A status with its message and the message's troubleshooting code (both None when all is well)."""

    status: str
    message: str | None = None
    code: str | None = None  # None also for a message recorded before codes were


def _shown(status: str, shown: Notice) -> Status:
    return Status(status, shown.text, shown.code)


def subscription_status(sub: SubscriptionRecord) -> Status:
    if not sub.visible:
        return _shown("Inactive", notice("SubscriptionNotVisible"))
    if not sub.active:
        return _shown("Inactive", notice("SubscriptionNotActive", state=sub.state))
    return Status(sub.status, sub.message, sub.message_code if sub.message else None)


def rollup(connector: ConnectorRecord, subs: list[SubscriptionRecord]) -> Status:
    if not connector.connected:
        if connector.disconnected_at is not None:
            return _shown(
                "Disconnected",
                notice(
                    "Disconnected",
                    disconnectedBy=connector.disconnected_by or "an administrator",
                    disconnectedAt=wire(connector.disconnected_at),
                ),
            )
        if connector.error:
            return Status("Error", connector.error, connector.error_code)
        return _shown("Error", notice("ConnectionNotCompleted"))
    if connector.error:
        return Status("Error", connector.error, connector.error_code)
    active = [s for s in subs if s.active]
    if not active:
        return _shown("Error", notice("NoActiveSubscription"))
    failing = [s for s in active if s.status == "Error"]
    if not failing:
        return Status("Connected")
    names = ", ".join(f"{s.display_name} ({s.subscription_id})" for s in failing)
    details = " ".join(s.message for s in failing if s.message)
    code = "AllSubscriptionsFailing" if len(failing) == len(active) else "SomeSubscriptionsFailing"
    return _shown(
        "Error" if len(failing) == len(active) else "Warning", notice(code, subscriptions=names, details=details)
    )


def connector_body(view: ConnectorView) -> dict[str, Any]:
    connector, subs = view.connector, view.subscriptions
    overall = rollup(connector, subs)
    successes = [s.last_success_at for s in subs if s.last_success_at is not None]
    items = []
    for sub in subs:
        shown = subscription_status(sub)
        items.append(
            {
                "subscriptionId": sub.subscription_id,
                "displayName": sub.display_name,
                "state": sub.state,
                "status": shown.status,
                "message": shown.message,
                "messageCode": shown.code,
                "watermark": wire(sub.watermark),
                "lastPulledAt": wire(sub.last_pulled_at),
                "activities": sub.activities,
                "skippedEvents": sub.skipped_events,
            }
        )
    return {
        "app": APP_NAME,
        "status": overall.status,
        "message": overall.message,
        "messageCode": overall.code,
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
