"""The connect handshake through the local host, the emulator and Azurite."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import pytest

from core.runtime import Runtime
from tests.support.platform import call

pytestmark = pytest.mark.integration

ROUTE = "/api/connectors/azure"


def listed_ids(emulator: Any) -> set[str]:
    return {s.subscription_id.lower() for s in emulator.subscriptions if s.listed}


def test_admin_connects_and_reads_connected(app_host: Any, emulator: Any, clock: Any) -> None:
    admin = emulator.mint_token("global_admin")
    status, body = call(app_host.base_url, "POST", ROUTE, admin)
    assert status == 201, body
    assert body["app"] == "Microsoft Azure"
    assert body["status"] == "Connected", body
    assert body["connectedBy"] == "admin@contoso.com"
    assert body["connectedById"] == emulator.directory.user("global_admin").oid
    assert body["connectedAt"].startswith("2026-11-26T10:00:00")
    subs = {s["subscriptionId"]: s for s in body["subscriptions"]}
    assert set(subs) == listed_ids(emulator)
    disabled = [s for s in body["subscriptions"] if s["state"] == "Disabled"]
    assert disabled and all(s["status"] == "Inactive" for s in disabled)
    assert all(s["watermark"] == body["connectedAt"] for s in body["subscriptions"])

    status, again = call(app_host.base_url, "GET", ROUTE, admin)
    assert status == 200 and again == body

    clock.advance(timedelta(minutes=10))
    status, second = call(app_host.base_url, "POST", ROUTE, emulator.mint_token("security_admin"))
    assert status == 200
    assert second["connectedAt"] == body["connectedAt"]
    assert [s["watermark"] for s in second["subscriptions"]] == [s["watermark"] for s in body["subscriptions"]]

    status, listing = call(app_host.base_url, "GET", "/api/connectors", admin)
    assert status == 200 and listing["items"][0]["status"] == "Connected"


def test_plain_user_gets_403_and_nothing_is_written(app_host: Any, emulator: Any, runtime: Runtime) -> None:
    status, body = call(app_host.base_url, "POST", ROUTE, emulator.mint_token("user"))
    assert status == 403
    assert "Global Administrator" in body["error"]["message"] and "Security Administrator" in body["error"]["message"]
    assert runtime.connector.get() is None
    status, body = call(app_host.base_url, "GET", ROUTE, emulator.mint_token("global_admin"))
    assert status == 404 and body["error"]["code"] == "NotFound"
    status, body = call(app_host.base_url, "GET", "/api/connectors", emulator.mint_token("user"))
    assert status == 200 and body == {"items": []}


@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "not_yet_valid",
        "wrong_audience",
        "wrong_issuer",
        "wrong_tenant",
        "unknown_key",
        "alg_none",
        "hs256_public_key",
    ],
)
def test_bad_tokens_get_401(app_host: Any, emulator: Any, kind: str) -> None:
    for method in ("POST", "GET", "DELETE"):
        status, body = call(app_host.base_url, method, ROUTE, emulator.mint_token(kind))
        assert status == 401, (kind, method, body)
        assert body["error"]["code"] == "Unauthorized"


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "Authorization header"),
        ({"Authorization": "Basic YTpi"}, "Bearer"),
        ({"Authorization": "Bearer abc"}, "malformed"),
        ({"Authorization": "Bearer a.b.c"}, "malformed"),
    ],
)
def test_missing_or_malformed_authorization(app_host: Any, headers: dict[str, str], fragment: str) -> None:
    status, body = call(app_host.base_url, "POST", ROUTE, headers=headers)
    assert status == 401 and fragment in body["error"]["message"]


def test_the_token_not_the_function_key_is_the_gate(app_host: Any, emulator: Any) -> None:
    # The routes are anonymous at the host (a browser cannot keep a key): the app answers the 401.
    status, body = call(app_host.base_url, "GET", ROUTE, key=None)
    assert status == 401 and body["error"]["code"] == "Unauthorized"
    status, body = call(app_host.base_url, "GET", "/api/connectors", emulator.mint_token("global_admin"), key=None)
    assert status == 200 and body


def test_bodies_that_are_not_json_or_too_large_are_refused(app_host: Any, emulator: Any) -> None:
    admin = emulator.mint_token("global_admin")
    status, body = call(app_host.base_url, "POST", ROUTE, admin, body=b"{not json")
    assert status == 400 and "body" in body["error"]["message"]
    status, body = call(app_host.base_url, "POST", ROUTE, admin, body=b"{" + b" " * (65 * 1024) + b"}")
    assert status == 400 and "64 KiB" in body["error"]["message"]
    status, body = call(app_host.base_url, "POST", ROUTE, admin, body=b"[" * 30_000 + b"]" * 30_000)
    assert status == 400 and "nested too deeply" in body["error"]["message"]


def test_no_readable_subscription_reads_error_with_the_fix(app_host: Any, emulator: Any) -> None:
    for sub in emulator.subscriptions:
        emulator.set_subscription(sub.subscription_id, listed=False)
    admin = emulator.mint_token("global_admin")
    status, body = call(app_host.base_url, "POST", ROUTE, admin)
    assert status == 502
    assert body["status"] == "Error" and "Reader role" in body["message"]
    status, again = call(app_host.base_url, "GET", ROUTE, admin)
    assert status == 200 and again["status"] == "Error"

    for sub in emulator.subscriptions:  # the fix is applied: the next connect succeeds
        emulator.set_subscription(sub.subscription_id, listed=True)
    status, body = call(app_host.base_url, "POST", ROUTE, admin)
    assert status == 201 and body["status"] == "Connected"


def test_sign_in_refused_is_recorded_as_error(app_host: Any, emulator: Any) -> None:
    emulator.reject_sign_in(True)
    status, body = call(app_host.base_url, "POST", ROUTE, emulator.mint_token("global_admin"))
    assert status == 502
    assert body["status"] == "Error" and "sign in" in body["message"]
    assert emulator.client_secret not in str(body)


@pytest.mark.parametrize(
    ("kind", "status", "fragment"),
    [
        ("id_token", 401, "not an access token"),
        ("app_without_role", 403, "Activities.Read.All"),
    ],
)
def test_tokens_that_are_not_access_tokens_for_this_api_are_refused(
    app_host: Any, emulator: Any, kind: str, status: int, fragment: str
) -> None:
    token = emulator.mint_token(kind)
    for method, route in (("GET", ROUTE), ("GET", "/api/activities"), ("GET", "/api/accounts"), ("POST", ROUTE)):
        got, body = call(app_host.base_url, method, route, token)
        assert got == status and fragment in body["error"]["message"], (kind, method, route, body)


def test_scope_and_app_role_rules_through_the_api(app_host: Any, emulator: Any, runtime: Runtime) -> None:
    other_scope = emulator.mint_token("global_admin", scp="user_impersonation")
    status, body = call(app_host.base_url, "GET", "/api/activities", other_scope)
    assert status == 403 and "Connector.Access" in body["error"]["message"]
    role_only = emulator.mint_token("app_without_role", roles=["Some.Other.Role"])
    status, body = call(app_host.base_url, "GET", "/api/accounts", role_only)
    assert status == 403 and "Activities.Read.All" in body["error"]["message"]
    app = emulator.mint_token("app")
    status, body = call(app_host.base_url, "GET", "/api/activities", app)
    assert status == 200 and body == {"items": [], "continuation": None}
    status, body = call(app_host.base_url, "POST", ROUTE, app)  # an application cannot connect
    assert status == 403 and "signed-in" in body["error"]["message"]
    assert runtime.connector.get() is None


def test_administrators_are_recorded_by_object_id_never_by_email(app_host: Any, emulator: Any) -> None:
    admin = emulator.directory.user("global_admin")
    forged_mail = emulator.mint_token("global_admin", upn=None, preferred_username=None, email="ceo@contoso.com")
    status, body = call(app_host.base_url, "POST", ROUTE, forged_mail)
    assert status == 201 and body["connectedBy"] is None and body["connectedById"] == admin.oid
    sec = emulator.directory.user("security_admin")
    status, body = call(app_host.base_url, "DELETE", ROUTE, emulator.mint_token("security_admin"))
    assert status == 200
    assert (body["disconnectedBy"], body["disconnectedById"]) == (sec.upn, sec.oid)
    assert body["disconnectedAt"] is not None


def test_disconnect_then_reconnect_moves_connected_at(app_host: Any, emulator: Any, clock: Any) -> None:
    admin = emulator.mint_token("global_admin")
    _, first = call(app_host.base_url, "POST", ROUTE, admin)
    clock.advance(timedelta(hours=2))
    status, body = call(app_host.base_url, "DELETE", ROUTE, emulator.mint_token("security_admin"))
    assert status == 200 and body["status"] == "Disconnected" and "connect again" in body["message"]
    status, body = call(app_host.base_url, "DELETE", ROUTE, emulator.mint_token("user"))
    assert status == 403
    clock.advance(timedelta(hours=3))
    admin = emulator.mint_token("global_admin")
    status, body = call(app_host.base_url, "POST", ROUTE, admin)
    assert status == 201 and body["status"] == "Connected"
    assert body["connectedAt"] > first["connectedAt"]
    assert body["connectedAt"].startswith("2026-11-26T15:00:00")
    assert all(s["watermark"] == body["connectedAt"] for s in body["subscriptions"])


def test_concurrent_connects_leave_one_record(app_host: Any, emulator: Any, runtime: Runtime) -> None:
    admin = emulator.mint_token("global_admin")
    results: list[int] = []

    def connect() -> None:
        results.append(call(app_host.base_url, "POST", ROUTE, admin)[0])

    threads = [threading.Thread(target=connect) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] * 5 + [201]
    record = runtime.connector.get()
    assert record is not None and record.connected
    assert {s.subscription_id for s in runtime.subscriptions.list()} == listed_ids(emulator)
    assert all(s.connection_id == record.connection_id for s in runtime.subscriptions.list())


def test_connect_and_disconnect_at_once_stay_consistent(app_host: Any, emulator: Any, runtime: Runtime) -> None:
    admin = emulator.mint_token("global_admin")
    call(app_host.base_url, "POST", ROUTE, admin)
    outcomes: list[tuple[str, int]] = []

    def run(method: str) -> None:
        outcomes.append((method, call(app_host.base_url, method, ROUTE, admin)[0]))

    threads = [threading.Thread(target=run, args=(m,)) for m in ("DELETE", "POST", "DELETE", "POST")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(status in (200, 201) for _, status in outcomes), outcomes
    status, body = call(app_host.base_url, "GET", ROUTE, admin)
    assert status == 200 and body["status"] in ("Connected", "Disconnected")
    record = runtime.connector.get()
    assert record is not None and record.connected == (body["status"] == "Connected")


def test_tokens_and_secrets_are_never_logged(app_host: Any, emulator: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    admin = emulator.mint_token("global_admin")
    call(app_host.base_url, "POST", ROUTE, admin)
    call(app_host.base_url, "POST", ROUTE, emulator.mint_token("wrong_audience"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert admin not in text and admin.split(".")[1] not in text
    assert emulator.client_secret not in text


def test_missing_setting_answers_a_clear_message(app_host: Any, emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.runtime import install_runtime

    install_runtime(None)
    monkeypatch.delenv("AZURE_TENANT_ID")
    status, body = call(app_host.base_url, "GET", ROUTE, emulator.mint_token("global_admin"))
    assert status == 500
    assert body["error"]["code"] == "ConfigurationError" and "AZURE_TENANT_ID" in body["error"]["message"]
    monkeypatch.setenv("AZURE_TENANT_ID", emulator.tenant_id)
    monkeypatch.setenv("PULL_LAG_SECONDS", "soon")
    status, body = call(app_host.base_url, "GET", ROUTE, emulator.mint_token("global_admin"))
    assert status == 500 and "PULL_LAG_SECONDS" in body["error"]["message"]
    assert "Traceback" not in str(body)


def test_the_troubleshooting_catalog_needs_no_key_and_no_token(app_host: Any) -> None:
    from core.troubleshooting import catalog_body

    status, body = call(app_host.base_url, "GET", "/api/troubleshooting", key=None)
    assert status == 200 and body == catalog_body()


def test_activities_per_day_through_the_host_without_a_key_but_with_a_token(
    app_host: Any, emulator: Any, clock: Any, runtime: Runtime
) -> None:
    from ingestion.fanout import run_fanout

    route = "/api/connectors/azure/activity-per-day"
    status, body = call(app_host.base_url, "GET", route, key=None)
    assert status == 401 and body["error"]["code"] == "Unauthorized"
    user = emulator.mint_token("user")
    status, body = call(app_host.base_url, "GET", route + "?days=7", user, key=None)
    assert status == 200 and body["subscriptions"] == [] and len(body["days"]) == 7
    status, body = call(app_host.base_url, "GET", route + "?days=91", user, key=None)
    assert status == 400 and body["error"]["message"].startswith("days:")

    assert call(app_host.base_url, "POST", ROUTE, emulator.mint_token("global_admin"))[0] == 201
    for _ in range(3):
        clock.advance(timedelta(minutes=10))
        run_fanout(runtime.connector, runtime.subscriptions, runtime.arm, runtime.pull_queue, clock)
        # The host's queue trigger runs the pulls; reading the queue here too would race it.
        assert app_host.wait_idle(timeout=60), "the pull queue did not drain"
    status, chart = call(app_host.base_url, "GET", route, user, key=None)
    assert status == 200 and len(chart["days"]) == 30
    status, connector = call(app_host.base_url, "GET", ROUTE, user)
    activities = {s["subscriptionId"]: s["activities"] for s in connector["subscriptions"]}
    assert {s["subscriptionId"]: sum(s["counts"]) for s in chart["subscriptions"]} == activities
    assert sum(activities.values()) > 0
