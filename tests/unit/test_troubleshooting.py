"""The troubleshooting catalog: the connector's messages come from it, its API and document follow it.

Every failure the connector answers is driven here on the fakes (connect, fan-out, pull, the
roll-up, settings, the HTTP edge); each message shown must carry a code of the catalog and be that
entry's template with its placeholders filled, and together the runs must produce every code the
catalog holds (no entry the code cannot show).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import ServiceRequestError

from connector import api, service
from connector.status import connector_body
from core.arm import (
    ArmAccessDenied,
    ArmBadRequest,
    ArmLinkRefused,
    ArmNotFound,
    ArmSignInFailed,
    ArmThrottled,
    ArmUnavailable,
)
from core.auth import Principal, SigningKeys, _permission, require_admin
from core.clock import FakeClock
from core.errors import ConnectorError, NotFound, SettingsError
from core.http import handle_http
from core.optimistic import StaleWrite, write_optimistically
from core.settings import load_settings
from core.troubleshooting import BY_CODE, CATALOG, DOCS_PATH, catalog_body, render_markdown
from ingestion.fanout import run_fanout
from ingestion.messages import PullMessage
from ingestion.pull import Delivery, PullPorts, pull_subscription
from tests.fakes import FakeActivityWriter, FakeArm, FakeConnectorState, FakePullQueue, FakeSubscriptionState
from tests.support.events import make_event

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
PROD, DEV = "a0000000-0000-4000-8000-000000000000", "b0000000-0000-4000-8000-000000000000"
ADMIN = Principal(object_id="a1", upn="admin@contoso.com", name="Admin", tenant_id="t", role_ids=frozenset())

SHOWN: set[str] = set()  # every code the runs below produced


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{[A-Za-z]+\}", template)
    return re.compile("^" + "(.*?)".join(re.escape(p) for p in parts) + "$", re.DOTALL)


def check(message: str | None, code: str | None) -> str:
    """`message` is catalog entry `code`'s template with its placeholders filled; returns the code."""
    assert message is not None and code is not None, (message, code)
    assert code in BY_CODE, f"{code} is not in the catalog"
    assert _pattern(BY_CODE[code].message.strip()).match(message), (code, message)
    SHOWN.add(code)
    return code


def check_body(body: dict[str, Any]) -> None:
    """Every message of a connector body has its code (and none without a message)."""
    if body["message"] is None:
        assert body["messageCode"] is None
    else:
        check(body["message"], body["messageCode"])
    for row in body["subscriptions"]:
        if row["message"] is None:
            assert row["messageCode"] is None
        else:
            check(row["message"], row["messageCode"])


class World:
    def __init__(self) -> None:
        self.settings = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
        self.clock = FakeClock(START)
        self.arm = FakeArm(page_size=20)
        self.arm.add_subscription(PROD, "Prod")
        self.arm.add_subscription(DEV, "Dev")
        self.connector, self.subscriptions = FakeConnectorState(), FakeSubscriptionState()
        self.writer, self.queue = FakeActivityWriter(), FakePullQueue()
        self.ports = PullPorts(
            self.connector, self.subscriptions, self.arm, self.writer, self.queue, self.clock, self.settings
        )

    def connect(self) -> dict[str, Any]:
        body = connector_body(service.connect(self.connector, self.subscriptions, self.arm, self.clock, ADMIN).view)
        check_body(body)
        return body

    def body(self) -> dict[str, Any]:
        body = connector_body(service.current_view(self.connector, self.subscriptions))
        check_body(body)
        return body

    def pull(self, sub: str = PROD, delivery: Delivery | None = None) -> None:
        record = self.connector.get()
        assert record is not None
        message = PullMessage(subscription_id=sub, connection_id=record.connection_id, enqueued_at=self.clock.now())
        with contextlib.suppress(Exception):  # the host would retry; the status is what is checked
            pull_subscription(self.ports, message, delivery or Delivery("m1"))


@pytest.fixture
def world() -> Iterator[World]:
    yield World()


ARM_FAILURES: list[tuple[Exception, str]] = [
    (ArmSignInFailed("The connector's identity could not sign in to Entra ID: AADSTS7000215: bad secret"),
     "ArmSignInFailed"),
    (ArmAccessDenied("denied", status=403, arm_code="AuthorizationFailed"), "ArmListDenied"),
    (ArmNotFound("gone", status=404), "ArmNotFound"),
    (ArmBadRequest("bad filter", status=400), "ArmBadRequest"),
    (ArmUnavailable("ARM answered 503"), "ArmUnavailable"),
    (ArmLinkRefused("a paging link points outside https://arm.test/subscriptions"), "ArmError"),
    (ArmThrottled(600), "ArmThrottled"),
]  # fmt: skip


@pytest.mark.parametrize(("failure", "code"), ARM_FAILURES)
def test_a_failed_connect_probe_and_fanout_show_the_catalog_message(
    world: World, failure: Exception, code: str
) -> None:
    world.arm.list_error = failure
    body = world.connect()
    assert body["status"] == "Error" and body["messageCode"] == code
    world.arm.list_error = None
    assert world.connect()["messageCode"] is None  # a good run clears it
    world.arm.list_error = failure
    world.clock.advance(timedelta(minutes=5))
    run_fanout(world.connector, world.subscriptions, world.arm, world.queue, world.clock)
    assert world.body()["messageCode"] == code
    if code == "ArmSignInFailed":
        assert "AADSTS7000215: bad secret. Check AZURE_TENANT_ID" in body["message"]


def test_no_subscription_at_connect_and_at_the_fanout(world: World) -> None:
    world.arm.subscriptions.clear()
    assert world.connect()["messageCode"] == "NoSubscription"
    world.arm.add_subscription(PROD, "Prod")
    world.connect()
    world.arm.subscriptions.clear()
    run_fanout(world.connector, world.subscriptions, world.arm, world.queue, world.clock)
    body = world.body()
    assert body["messageCode"] == "NoSubscription"


def test_subscription_states_and_the_roll_up(world: World) -> None:
    world.connect()
    world.arm.subscriptions[:] = [replace(world.arm.subscriptions[0], state="Disabled")]  # Prod disabled, Dev gone
    run_fanout(world.connector, world.subscriptions, world.arm, world.queue, world.clock)
    body = world.body()
    assert body["messageCode"] == "NoActiveSubscription"
    rows = {r["subscriptionId"]: r for r in body["subscriptions"]}
    assert rows[PROD]["messageCode"] == "SubscriptionNotActive" and "Disabled" in rows[PROD]["message"]
    assert rows[DEV]["messageCode"] == "SubscriptionNotVisible"


PULL_FAILURES: list[tuple[Exception, str, str | None]] = [
    (ArmAccessDenied("denied", status=403, arm_code="AuthorizationFailed"), "SubscriptionDenied", None),
    (ArmNotFound("gone", status=404), "ArmNotFound", None),
    (ArmThrottled(300), "PullThrottled", "none"),
    (ArmUnavailable("ARM answered 503"), "PullRetrying", None),
    (ArmBadRequest("The start time cannot be more than 90 days in the past.", status=400), "PullRetrying", None),
]


@pytest.mark.parametrize(("failure", "code", "connector_code"), PULL_FAILURES)
def test_a_failed_pull_shows_the_catalog_message(
    world: World, failure: Exception, code: str, connector_code: str | None
) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=10))
    world.arm.fail(PROD, failure)
    world.pull()
    world.pull(DEV)
    body = world.body()
    prod = next(r for r in body["subscriptions"] if r["subscriptionId"] == PROD)
    assert prod["messageCode"] == code
    assert body["messageCode"] == (None if connector_code == "none" else "SomeSubscriptionsFailing")
    if code == "SubscriptionDenied":
        assert f"Prod ({PROD})" in prod["message"] and "403 AuthorizationFailed" in prod["message"]


def test_every_subscription_failing_and_the_poison_queue(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=10))
    for sub in (PROD, DEV):
        world.arm.fail(sub, ArmUnavailable("ARM answered 503"))
        world.pull(sub, Delivery("m1", dequeue_count=5, max_dequeue_count=5))
    body = world.body()
    assert body["messageCode"] == "AllSubscriptionsFailing"
    assert {r["messageCode"] for r in body["subscriptions"]} == {"PullPoisoned"}
    assert "activity-pull-poison" in body["subscriptions"][0]["message"]


def test_an_unexpected_failure_and_a_good_pull_after_it(world: World) -> None:
    world.connect()
    world.arm.events[PROD].append(make_event(PROD, START + timedelta(minutes=1)))
    world.clock.advance(timedelta(minutes=10))
    world.writer.fail_with = KeyError("a defect")
    world.pull()
    prod = next(r for r in world.body()["subscriptions"] if r["subscriptionId"] == PROD)
    assert prod["messageCode"] == "PullFailedUnexpectedly" and "KeyError" in prod["message"]
    world.writer.fail_with = None
    world.pull(delivery=Delivery("m2"))
    assert all(r["messageCode"] is None for r in world.body()["subscriptions"])


def test_disconnected_and_not_connected(world: World) -> None:
    with pytest.raises(NotFound) as not_yet:
        service.current_view(world.connector, world.subscriptions)
    check(not_yet.value.message, "NotConnected")
    with pytest.raises(NotFound) as not_at_all:
        service.disconnect(world.connector, world.subscriptions, world.clock, ADMIN)
    check(not_at_all.value.message, "NotConnected")
    world.connect()
    body = connector_body(service.disconnect(world.connector, world.subscriptions, world.clock, ADMIN))
    check_body(body)
    assert body["messageCode"] == "Disconnected" and "by admin@contoso.com at" in body["message"]
    record = world.connector.get()
    assert record is not None
    world.connector.rows["azure"] = replace(record, disconnected_at=None, error=None, error_code=None)
    assert world.body()["messageCode"] == "ConnectionNotCompleted"


SETTINGS_FAILURES = [
    ({}, "SettingsInvalid"),
    ({"AzureWebJobsStorage": "x", "PULL_MAX_PAGES": "many"}, "SettingInvalid"),
    ({"AzureWebJobsStorage": "x", "ARM_ENDPOINT": "http://arm"}, "SettingInvalid"),
]


@pytest.mark.parametrize(("environ", "code"), SETTINGS_FAILURES)
def test_settings_errors_are_catalog_messages(environ: dict[str, str], code: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(environ)
    check(error.value.message, code)


def test_a_missing_setting_is_a_catalog_message() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({"AzureWebJobsStorage": "x"}).require("AZURE_TENANT_ID")
    check(error.value.message, "SettingMissing")


EDGE_FAILURES: list[tuple[Exception, str]] = [
    (ServiceRequestError("down"), "StorageUnreachable"),
    (KeyError("internal"), "InternalError"),
]


@pytest.mark.parametrize(("raised", "code"), EDGE_FAILURES)
def test_the_http_edge_answers_with_catalog_messages(raised: Exception, code: str) -> None:
    def handler(req: func.HttpRequest, runtime: Any) -> func.HttpResponse:
        raise raised

    req = func.HttpRequest("GET", "http://localhost/api/x", headers={}, params={}, body=b"")
    response = handle_http(req, handler, runtime=lambda: None)  # type: ignore[arg-type, return-value]
    check(json.loads(response.get_body())["error"]["message"], code)


def _keys_unavailable() -> object:
    def unreachable(url: str) -> Any:
        raise ServiceRequestError("the authority cannot be reached")

    return SigningKeys("https://login.test/t/v2.0/.well-known/openid-configuration", unreachable).get("kid")


def _contention() -> object:
    def attempt() -> None:
        raise StaleWrite()

    return write_optimistically(attempt, what="The connector's state")


AUTH_FAILURES: list[tuple[Callable[[], object], str]] = [
    (_keys_unavailable, "SigningKeysUnavailable"),
    (_contention, "StateContention"),
    (lambda: require_admin(ADMIN, "connector"), "AdminRoleRequired"),
    (lambda: require_admin(replace(ADMIN, app_only=True), "policies"), "AdminNotApplication"),
    (lambda: _permission({"scp": "user_impersonation", "azp": "client"}), "ScopeMissing"),
    (lambda: _permission({"roles": ["Other.Role"], "azp": "client", "idtyp": "app"}), "AppRoleMissing"),
]


@pytest.mark.parametrize(("refuse", "code"), AUTH_FAILURES)
def test_the_403s_409s_and_503s_are_catalog_messages(refuse: Callable[[], object], code: str) -> None:
    with pytest.raises(ConnectorError) as refused:
        refuse()
    check(refused.value.message, code)


def test_every_catalog_entry_is_produced_by_some_code_path() -> None:
    """Every run above, again in one test (a split of the module across workers cannot hide one)."""
    SHOWN.clear()
    for failure, code in ARM_FAILURES:
        test_a_failed_connect_probe_and_fanout_show_the_catalog_message(World(), failure, code)
    for failure, code, connector_code in PULL_FAILURES:
        test_a_failed_pull_shows_the_catalog_message(World(), failure, code, connector_code)
    for world_test in (
        test_no_subscription_at_connect_and_at_the_fanout,
        test_subscription_states_and_the_roll_up,
        test_every_subscription_failing_and_the_poison_queue,
        test_an_unexpected_failure_and_a_good_pull_after_it,
        test_disconnected_and_not_connected,
    ):
        world_test(World())
    for environ, setting_code in SETTINGS_FAILURES:
        test_settings_errors_are_catalog_messages(environ, setting_code)
    test_a_missing_setting_is_a_catalog_message()
    for raised, edge_code in EDGE_FAILURES:
        test_the_http_edge_answers_with_catalog_messages(raised, edge_code)
    for refuse, auth_code in AUTH_FAILURES:
        test_the_403s_409s_and_503s_are_catalog_messages(refuse, auth_code)
    assert set(BY_CODE) == SHOWN, f"never produced: {sorted(set(BY_CODE) - SHOWN)}"


# --- the catalog itself -------------------------------------------------------------------------------


def test_the_catalog_is_well_formed() -> None:
    assert len(BY_CODE) == len(CATALOG)
    for entry in CATALOG:
        assert re.fullmatch(r"[A-Z][A-Za-z]+", entry.code)
        assert entry.title and entry.cause and entry.fix and entry.message
        assert "{" not in entry.title and "{" not in entry.fix.replace("`{", "")
        assert (entry.http is not None) == ("api" in entry.scopes)
        values = {name: f"<{name}>" for name in entry.placeholders}
        assert entry.render(**values).text == entry.message.format(**values).strip()
        with pytest.raises(ValueError):
            entry.render(**values, unexpected="x")


def test_get_troubleshooting_needs_no_token_and_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    req = func.HttpRequest("GET", "http://localhost/api/troubleshooting", headers={}, params={}, body=b"")
    response = api.troubleshooting(req)
    body = json.loads(response.get_body())
    assert response.status_code == 200 and body == catalog_body()
    assert [set(item) for item in body["items"]] == [{"code", "title", "message", "cause", "fix"}] * len(CATALOG)
    assert [item["code"] for item in body["items"]] == [e.code for e in CATALOG]


def test_the_document_is_generated_from_the_catalog() -> None:
    assert DOCS_PATH.read_text(encoding="utf-8") == render_markdown(), (
        "docs/troubleshooting.md is stale: run `make docs`"
    )
    for entry in CATALOG:
        assert f"### {entry.code}\n" in render_markdown()
