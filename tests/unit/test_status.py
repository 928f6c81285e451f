"""The connector's status roll-up (docs/api.md, "The connector body"), on plain records."""

from __future__ import annotations

from dataclasses import astuple, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.status import ConnectorView, Status, connector_body, rollup
from state.records import ConnectorRecord, SubscriptionRecord

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
CONNECTED = ConnectorRecord(
    connected=True, connection_id="c", connected_at=NOW, connected_by="admin@contoso.com", attempted_at=NOW
)


def sub(name: str, **over: Any) -> SubscriptionRecord:
    base = SubscriptionRecord(
        subscription_id=f"id-{name}",
        display_name=name,
        state="Enabled",
        discovered_at=NOW,
        connection_id="c",
        watermark=NOW,
    )
    return replace(base, **over)


def test_connected_when_every_active_subscription_pulls() -> None:
    subs = [sub("Prod"), sub("Dev"), sub("Old", state="Disabled")]
    assert rollup(CONNECTED, subs) == Status("Connected", None, None)
    body = connector_body(ConnectorView(CONNECTED, subs))
    assert [s["status"] for s in body["subscriptions"]] == ["OK", "OK", "Inactive"]


def test_warning_names_the_failing_subscriptions_and_the_fix() -> None:
    failing = sub("Prod", status="Error", message="assign it the Reader role on that subscription.")
    status, message, code = astuple(rollup(CONNECTED, [failing, sub("Dev")]))
    assert status == "Warning" and "Prod (id-Prod)" in (message or "") and "Reader role" in (message or "")
    assert code == "SomeSubscriptionsFailing"


def test_error_when_nothing_can_be_pulled() -> None:
    assert astuple(rollup(CONNECTED, [sub("Prod", status="Error")]))[::2] == ("Error", "AllSubscriptionsFailing")
    status, message, code = astuple(rollup(CONNECTED, [sub("Old", state="Disabled")]))
    assert status == "Error" and "Reader role" in (message or "") and code == "NoActiveSubscription"
    failed = replace(CONNECTED, error="sign-in failed", error_code="ArmSignInFailed")
    assert rollup(failed, [sub("Prod")]) == Status("Error", "sign-in failed", "ArmSignInFailed")


def test_disconnected_and_failed_first_attempt() -> None:
    gone = replace(CONNECTED, connected=False, disconnected_at=NOW, disconnected_by="sec@contoso.com")
    status, message, code = astuple(rollup(gone, [sub("Prod")]))
    assert status == "Disconnected" and "sec@contoso.com" in (message or "") and code == "Disconnected"
    never = replace(CONNECTED, connected=False, connected_at=None, error="The connector's identity could not sign in")
    # An error recorded before codes were: shown as it is, without a code.
    assert rollup(never, []) == Status("Error", "The connector's identity could not sign in", None)


def test_vanished_subscription_is_inactive_with_the_fix() -> None:
    body = connector_body(ConnectorView(CONNECTED, [sub("Prod"), sub("Gone", visible=False)]))
    gone = body["subscriptions"][1]
    assert gone["status"] == "Inactive" and "Reader role" in gone["message"]
    assert gone["messageCode"] == "SubscriptionNotVisible" and body["subscriptions"][0]["messageCode"] is None
    assert body["status"] == "Connected"


def test_every_time_on_the_wire_has_one_fixed_width_format() -> None:
    import re

    wire = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    later = NOW.replace(microsecond=500_000)
    gone = replace(CONNECTED, connected=False, disconnected_at=later, last_fanout_at=NOW)
    body = connector_body(ConnectorView(gone, [sub("Prod", last_pulled_at=later, last_success_at=NOW)]))
    times = [body[k] for k in ("connectedAt", "disconnectedAt", "lastFanoutAt", "lastSuccessAt")]
    times += [body["subscriptions"][0][k] for k in ("watermark", "lastPulledAt")]
    assert all(wire.match(t) for t in times), times
    assert body["connectedAt"] == "2026-11-26T10:00:00.000000Z"
    assert body["disconnectedAt"] == "2026-11-26T10:00:00.500000Z"
