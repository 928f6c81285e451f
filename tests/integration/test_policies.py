"""Policies and alerts against real Azurite: the real writer evaluating, the table adapters, the API
through the local host, and webhooks to a local HTTPS receiver (a trustme CA, loopback only).
"""

from __future__ import annotations

import http.server
import json
import random
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trustme
from azure.data.tables import TableServiceClient, TableTransactionError
from azure.storage.queue import QueueServiceClient

from activities.layout import ACCOUNT_SUMMARY_RK, MAX_STRING_CHARS, safe_key
from activities.writer import ActivityStore
from core.auth import Principal
from core.clock import FakeClock
from core.optimistic import StaleWrite
from core.runtime import Runtime
from core.storage import Storage
from core.timefmt import wire_time
from ingestion.models import Activity
from ingestion.normalize import normalize_event
from policies import service
from policies.alert_queries import AlertQuery
from policies.engine import MAX_COUNTER_CHARS, PolicyEngine, burst_property
from policies.layout import alert_id
from policies.models import MAX_ALERT_ACTIVITIES, Alert, AlertUser
from policies.notify import HttpWebhookPoster, NotifyPorts, StorageAlertQueue, run_notify, verify
from policies.store import TableAlertStore, TablePolicyStore
from policies.templates import BY_ID
from tests.support.events import USERS, make_event
from tests.support.platform import call

pytestmark = pytest.mark.integration

SUB = "aaaaaaaa-0000-0000-0000-000000000001"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ADMIN = Principal(object_id="a1", upn="admin@contoso.com", name="Admin", tenant_id="t")
DELETE = "Microsoft.Storage/storageAccounts/delete"


@pytest.fixture
def storage(storage_connection_string: str) -> Iterator[Storage]:
    s = Storage(
        TableServiceClient.from_connection_string(storage_connection_string),
        QueueServiceClient.from_connection_string(storage_connection_string),
        table_prefix="t" + uuid.uuid4().hex[:10],
        pull_queue="q" + uuid.uuid4().hex[:10],
        alert_queue="a" + uuid.uuid4().hex[:10],
    )
    s.ensure()
    yield s
    s.close()


class Platform:
    def __init__(self, storage: Storage, *, daily_limit: int = 100) -> None:
        self.clock = FakeClock(T0 - timedelta(hours=1))
        self.policies = TablePolicyStore(storage)
        self.alerts = TableAlertStore(storage, clock=self.clock)
        self.queue = StorageAlertQueue(storage.alert_queue, storage.alert_poison_queue)
        self.storage = storage
        self.daily_limit = daily_limit

    def engine(self) -> PolicyEngine:
        return PolicyEngine(self.policies, self.alerts, self.queue, self.clock, daily_limit=self.daily_limit)

    def writer(self) -> ActivityStore:
        return ActivityStore(self.storage, evaluator=self.engine())

    def policy(self, **definition: Any) -> str:
        document = {"name": "p", "severity": "high", "kind": "singleActivity", **definition}
        return service.create_policy(
            self.policies, None, self.clock, ADMIN, document, webhook_secret="k", allow_private_webhooks=True
        ).id


def _items(times: list[datetime], *, op: str = DELETE, user: Any = USERS[0], seed: int = 1) -> list[Any]:
    rng = random.Random(seed)
    out = []
    for at in times:
        raw = make_event(SUB, at, rng=rng, user=user, operation=op)
        out.append((raw, normalize_event(raw, ingested_at=at + timedelta(minutes=3))))
    return out


def test_concurrent_and_redelivered_saves_raise_each_alert_once_and_count_bursts_exactly(storage: Storage) -> None:
    platform = Platform(storage)
    single = platform.policy(filter={"actionTypes": ["delete"]})
    burst = platform.policy(kind="repeatedActivity", filter={"actionTypes": ["delete"]},
                            repeated={"count": 5, "windowMinutes": 10})  # fmt: skip
    items = _items([T0 + timedelta(seconds=30 * i) for i in range(12)])
    items += _items([T0 + timedelta(minutes=1)], op="Microsoft.Compute/virtualMachines/write", seed=2)
    writers = [platform.writer() for _ in range(3)]  # three workers, each with its own engine and cache
    barrier = threading.Barrier(len(writers))
    errors: list[BaseException] = []

    def save(writer: ActivityStore) -> None:
        try:
            barrier.wait()
            writer.save(SUB, items)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    platform.engine().evaluate([a for _, a in items], {})  # a crash before the events were marked: evaluated again

    singles = platform.alerts.search(AlertQuery(policy_id=single), 100, None, caller="t").items
    assert len(singles) == 12 and {a["activityIds"][0] for a in singles} == {a.id for _, a in items[:12]}
    (bursts,) = platform.alerts.search(AlertQuery(policy_id=burst), 100, None, caller="t").items
    assert bursts["activityCount"] == 12 and bursts["kind"] == "repeatedActivity"
    by_time = platform.alerts.search(AlertQuery(), 100, None, caller="t").items
    assert len(by_time) == 13
    daily = platform.alerts.counters.get_entity(f"d-{single}-v1-20261120", "summary")
    assert daily["count"] == 12


@pytest.mark.slow
def test_a_mass_deletion_of_2000_events_by_one_principal_stores_alerts_once_and_counts_right(
    storage: Storage,
) -> None:
    """The very burst the mass-deletion template catches: its counter stays within the table limits, so
    every page's transaction goes through, the burst raises one alert, and its count is every event."""
    platform = Platform(storage)
    policy_id = platform.policy(**BY_ID["mass-deletion"].definition)
    platform.policy(**BY_ID["failed-operations-burst"].definition)  # a second counter, matching nothing here
    items = _items([T0 + timedelta(milliseconds=250 * i) for i in range(2000)])  # 2,000 within 8.5 minutes
    writer = platform.writer()
    pages = [items[start : start + 500] for start in range(0, len(items), 500)][::-1]  # newest first, as pulled
    for page in pages:
        assert writer.save(SUB, page).stored == len(page)
    assert writer.save(SUB, pages[0]).stored == 0  # a redelivered page: nothing new

    (alert,) = platform.alerts.search(AlertQuery(policy_id=policy_id), 100, None, caller="t").items
    assert alert["activityCount"] == 2000 and len(alert["activityIds"]) == MAX_ALERT_ACTIVITIES
    assert writer.subscription_count(SUB) == 2000
    key = safe_key(USERS[0][2])
    summary = writer.by_user.get_entity(key, ACCOUNT_SUMMARY_RK)
    assert summary["activity_count"] == 2000
    counter = summary[burst_property(policy_id, "")]
    assert len(counter) <= MAX_COUNTER_CHARS
    assert json.loads(counter)["bursts"][0]["count"] == 2000


def test_an_invalid_ledger_transaction_is_raised_at_once_not_retried_as_a_conflict(storage: Storage) -> None:
    writer = ActivityStore(storage)
    calls: list[int] = []

    def too_large(current: dict[str, Any] | None, new: set[str]) -> dict[str, Any]:
        calls.append(1)
        return {"PartitionKey": "p", "RowKey": "summary", "blob": "x" * (MAX_STRING_CHARS + 1)}

    entries = {"e1": {"PartitionKey": "p", "RowKey": "e1"}}
    with pytest.raises(TableTransactionError):
        writer._commit_ledger(writer.by_user, "p", entries, "summary", too_large)
    assert len(calls) == 1


def test_policy_and_alert_writes_answer_the_etag_the_next_write_needs(storage: Storage) -> None:
    platform = Platform(storage)
    record = platform.policies.get(platform.policy(filter={"actionTypes": ["delete"]}))
    assert record is not None
    first = platform.policies.replace(replace(record, version=2))
    second = platform.policies.replace(replace(first, version=3))  # with the ETag the first write answered
    assert platform.policies.get(record.id) == second and second.etag != first.etag  # the ETag is compared too
    with pytest.raises(StaleWrite):
        platform.policies.replace(replace(first, version=4))  # an older read
    alert = _alert(1)
    platform.alerts.put_alert(alert)
    read = platform.alerts.get_alert(alert.id)
    assert read is not None
    changed = platform.alerts.replace_alert(replace(read, status="resolved"))
    again = platform.alerts.replace_alert(replace(changed, comment="done"))
    stored = platform.alerts.get_alert(alert.id)
    assert stored == again and stored is not None and stored.etag == again.etag != changed.etag
    with pytest.raises(StaleWrite):
        platform.alerts.replace_alert(replace(read, status="dismissed"))


def test_the_daily_limit_pauses_the_policy(storage: Storage) -> None:
    platform = Platform(storage, daily_limit=4)
    policy_id = platform.policy(filter={"actionTypes": ["delete"]})
    writer = platform.writer()
    writer.save(SUB, _items([T0 + timedelta(seconds=i) for i in range(6)]))
    assert len(platform.alerts.search(AlertQuery(), 100, None, caller="t").items) == 4
    record = platform.policies.get(policy_id)
    assert record is not None and record.state == "paused" and "more than 4 alerts" in (record.paused_message or "")


def _alert(n: int, **changes: Any) -> Alert:
    at = T0 + timedelta(minutes=n)
    fields: dict[str, Any] = {
        "id": alert_id("p", str(n)),
        "policy_id": "p1" if n % 2 else "p2",
        "policy_name": "P",
        "severity": ["low", "medium", "high"][n % 3],
        "kind": "singleActivity",
        "title": f"alert {n}",
        "user": AlertUser(id=f"user-{n % 3}", upn=f"u{n % 3}@contoso.com", type="user"),
        "first_activity_at": at,
        "last_activity_at": at,
        "activity_ids": (f"act-{n}",),
        "activity_count": 1,
        "raised_at": at,
    }
    fields.update(changes)
    return Alert(**fields)


def test_alerts_are_listed_newest_first_with_filters_and_continuation(storage: Storage) -> None:
    platform = Platform(storage)
    alerts = [_alert(n) for n in range(20)]
    for alert in alerts:
        stored, created = platform.alerts.put_alert(alert)
        assert created
        assert platform.alerts.put_alert(alert) == (stored, False)  # idempotent
    current = platform.alerts.get_alert(alerts[4].id)
    assert current is not None
    platform.alerts.replace_alert(replace(current, status="resolved", comment="fixed"))

    def listing(query: AlertQuery, limit: int = 3) -> list[str]:
        ids: list[str] = []
        token = None
        while True:
            page = platform.alerts.search(query, limit, token, caller="me")
            ids += [item["id"] for item in page.items]
            token = page.continuation
            if not token:
                return ids

    def expected(keep: Any) -> list[str]:
        chosen = [a for a in alerts if keep(a)]
        return [a.id for a in sorted(chosen, key=lambda a: a.first_activity_at, reverse=True)]

    assert listing(AlertQuery()) == expected(lambda a: True)
    assert listing(AlertQuery(status="resolved")) == [alerts[4].id]
    assert listing(AlertQuery(status="open", severity="high")) == expected(
        lambda a: a.severity == "high" and a.id != alerts[4].id
    )
    assert listing(AlertQuery(policy_id="p1", severity="low")) == expected(
        lambda a: a.policy_id == "p1" and a.severity == "low"
    )
    assert listing(AlertQuery(user="U1@contoso.com")) == expected(lambda a: a.user.upn == "u1@contoso.com")
    assert listing(AlertQuery(user="user-2", start=T0 + timedelta(minutes=5), end=T0 + timedelta(minutes=15))) == (
        expected(lambda a: a.user.id == "user-2" and 5 <= (a.first_activity_at - T0).seconds // 60 < 15)
    )
    page = platform.alerts.search(AlertQuery(), 2, None, caller="me")
    with pytest.raises(Exception, match="another caller"):
        platform.alerts.search(AlertQuery(), 2, page.continuation, caller="someone else")


# --- the API through the local host ----------------------------------------------------------------


def test_policies_and_alerts_api(app_host: Any, emulator: Any, runtime: Runtime) -> None:
    admin, user = emulator.mint_token("global_admin"), emulator.mint_token("user")
    base = app_host.base_url
    status, templates = call(base, "GET", "/api/policy-templates", user, key=None)
    assert status == 200 and len(templates["items"]) == 8
    body = json.dumps({"templateId": "role-assignment-or-elevated-access"}).encode()
    status, refused = call(base, "POST", "/api/policies", user, body=body, key=None)
    assert status == 403 and refused["error"]["message"].startswith("Creating, changing or deleting policies needs")
    status, created = call(base, "POST", "/api/policies", admin, body=body, key=None)  # no function key needed
    assert status == 201 and created["state"] == "enabled" and created["createdBy"] == "admin@contoso.com"
    bad = json.dumps({"name": "x", "severity": "low", "kind": "singleActivity", "filter": {"ipInRanges": ["nope"]}})
    status, error = call(base, "POST", "/api/policies", admin, body=bad.encode(), key=None)
    assert status == 400 and error["error"]["message"].startswith("filter.ipInRanges.0:")
    status, error = call(base, "POST", "/api/policies", admin, key=None,
                         body=json.dumps({"name": "x", "severity": "low", "kind": "singleActivity",
                                          "webhookUrl": "http://example.com/"}).encode())  # fmt: skip
    assert status == 400 and error["error"]["message"].startswith("webhookUrl:")
    status, _ = call(base, "GET", "/api/policies", None, key=None)
    assert status == 401

    # An activity after the policy was created raises an alert as it is stored.
    runtime.clock.advance(60)  # type: ignore[attr-defined]
    at = runtime.clock.now()
    raw = make_event(SUB, at, user=USERS[1], operation="Microsoft.Authorization/roleAssignments/write")
    act: Activity = normalize_event(raw, ingested_at=at)
    runtime.activities.save(SUB, [(raw, act)])
    status, listing = call(base, "GET", "/api/alerts?severity=high&status=open", user, key=None)
    assert status == 200 and [a["activityIds"] for a in listing["items"]] == [[act.id]]
    alert = listing["items"][0]
    status, one = call(base, "GET", f"/api/alerts/{alert['id']}", user, key=None)
    assert status == 200 and [a["id"] for a in one["activities"]] == [act.id] and one["policyId"] == created["id"]
    patch = json.dumps({"status": "resolved", "comment": "expected change"}).encode()
    status, refused = call(base, "PATCH", f"/api/alerts/{alert['id']}", user, body=patch, key=None)
    assert status == 403 and refused["error"]["message"].startswith("Changing an alert's status or comment needs")
    status, changed = call(base, "PATCH", f"/api/alerts/{alert['id']}", admin, body=patch, key=None)
    assert status == 200 and changed["status"] == "resolved" and changed["comment"] == "expected change"
    status, error = call(base, "PATCH", f"/api/alerts/{alert['id']}", admin, key=None,
                         body=json.dumps({"status": "closed"}).encode())  # fmt: skip
    assert status == 400 and error["error"]["message"].startswith("status:")
    status, listing = call(base, "GET", "/api/alerts?status=resolved", user, key=None)
    assert [a["id"] for a in listing["items"]] == [alert["id"]]

    # Changing and deleting.
    definition = {k: created[k] for k in ("name", "severity", "kind", "filter", "enabled")}
    definition["enabled"] = False
    status, replaced = call(base, "PUT", f"/api/policies/{created['id']}", admin,
                            body=json.dumps(definition).encode(), key=None)  # fmt: skip
    assert status == 200 and replaced["state"] == "disabled" and replaced["version"] == 2
    status, _ = call(base, "DELETE", f"/api/policies/{created['id']}", admin, key=None)
    assert status == 204
    status, _ = call(base, "GET", f"/api/policies/{created['id']}", user, key=None)
    assert status == 404

    # A webhook's whole URL (it may carry its own secret) only for administrators; others see its host.
    hook = "https://hooks.example.com:8443/in?sig=secret-in-the-url"
    hooked = service.create_policy(runtime.policies, None, runtime.clock, ADMIN,
                                   {"name": "w", "severity": "low", "kind": "singleActivity", "webhookUrl": hook},
                                   webhook_secret="k" * 32).id  # fmt: skip
    for token, shown in ((admin, True), (user, False), (emulator.mint_token("app"), False)):
        status, one = call(base, "GET", f"/api/policies/{hooked}", token, key=None)
        status_all, listing = call(base, "GET", "/api/policies", token, key=None)
        assert status == status_all == 200
        (listed,) = [p for p in listing["items"] if p["id"] == hooked]
        for answer in (one, listed):
            assert answer["webhookHost"] == "hooks.example.com:8443"
            assert answer.get("webhookUrl") == (hook if shown else None)
            assert shown or "secret-in-the-url" not in json.dumps(answer)


# --- webhooks to a local HTTPS receiver -------------------------------------------------------------


class Receiver:
    """An HTTPS server on loopback whose certificate a trustme CA signed; answers `statuses` in turn."""

    def __init__(
        self, ca: trustme.CA, statuses: list[int], *, names: tuple[str, ...] = ("127.0.0.1", "localhost"),
        trickle: float = 0.0, endless_body: bool = False,
    ) -> None:  # fmt: skip
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.server_names: list[str | None] = []
        self.stop = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if trickle:  # the status line a byte at a time, each well within the read timeout
                    for byte in f"HTTP/1.1 {status} OK\r\n".encode():
                        if receiver.stop.wait(trickle):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    return
                self.send_response(status)
                if endless_body:  # a body that never ends: the connector must not read it
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    while not receiver.stop.wait(0.05):
                        self.wfile.write(b"x" * 65536)
                    return
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(context)
        context.sni_callback = lambda _sock, name, _ctx: receiver.server_names.append(name)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ca(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    authority = trustme.CA()
    pem = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pem))  # read when the poster builds its transport
    return authority


def _webhook_alert(
    platform: Platform, url: str, *, timeout: float = 5, allow_private: bool = True
) -> tuple[str, NotifyPorts]:
    platform.policy(filter={"actionTypes": ["delete"]}, webhookUrl=url)
    platform.writer().save(SUB, _items([T0]))
    poster = HttpWebhookPoster(timeout=timeout, allow_private=allow_private)
    ports = NotifyPorts(
        platform.alerts, platform.policies, platform.queue, poster, platform.clock,
        "webhook-secret", max_attempts=3, base_delay_seconds=0,
    )  # fmt: skip
    (message,) = platform.storage.alert_queue.receive_messages()
    platform.storage.alert_queue.delete_message(message)
    return json.loads(message.content)["alertId"], ports


def test_webhook_is_signed_and_delivered_over_https(storage: Storage, ca: trustme.CA) -> None:
    receiver = Receiver(ca, [200])
    try:
        platform = Platform(storage)
        alert, ports = _webhook_alert(platform, receiver.url)
        assert run_notify(ports, json.dumps({"alertId": alert}).encode()) == "delivered"
        ((headers, body),) = receiver.requests
        now = platform.clock.now().timestamp()
        assert verify("webhook-secret", headers["X-Connector-Timestamp"], body, headers["X-Connector-Signature"],
                      now=now)  # fmt: skip
        assert json.loads(body)["alert"]["id"] == alert == headers["X-Connector-Alert-Id"]
        stored = platform.alerts.get_alert(alert)
        assert stored is not None and stored.delivery == "delivered"
        for table in (platform.alerts.alerts, platform.policies.table, platform.alerts.counters):
            assert "webhook-secret" not in json.dumps(list(table.list_entities()), default=str)  # never stored
    finally:
        receiver.close()


def test_of_two_first_messages_for_one_alert_only_the_claimer_posts(storage: Storage, ca: trustme.CA) -> None:
    receiver = Receiver(ca, [500, 500])
    try:
        platform = Platform(storage)
        alert, ports = _webhook_alert(platform, receiver.url)
        body = json.dumps({"alertId": alert}).encode()
        assert run_notify(ports, body, message_id="first") == "retrying"
        assert run_notify(ports, body, message_id="second") == "skipped"
        assert run_notify(ports, body, message_id="first") == "retrying"  # the claimer's redelivery
        assert len(receiver.requests) == 2
        stored = platform.alerts.get_alert(alert)
        assert stored is not None and stored.delivery_claim == "first" and stored.delivery == "pending"
    finally:
        receiver.close()


def test_webhook_failures_are_retried_then_poisoned(storage: Storage, ca: trustme.CA) -> None:
    receiver = Receiver(ca, [500, 502, 503])
    try:
        platform = Platform(storage)
        alert, ports = _webhook_alert(platform, receiver.url)
        body = json.dumps({"alertId": alert}).encode()
        for attempt in (1, 2):
            assert run_notify(ports, body) == "retrying"
            (message,) = platform.storage.alert_queue.receive_messages()
            platform.storage.alert_queue.delete_message(message)
            body = message.content
            assert json.loads(body)["attempt"] == attempt + 1
        assert run_notify(ports, body) == "undelivered"
        (poisoned,) = platform.storage.alert_poison_queue.receive_messages()
        assert json.loads(poisoned.content)["alertId"] == alert
        stored = platform.alerts.get_alert(alert)
        assert stored is not None and stored.delivery == "undelivered" and "HTTP 503" in (stored.delivery_message or "")
        assert len(receiver.requests) == 3
    finally:
        receiver.close()


def test_a_receiver_with_an_untrusted_certificate_is_not_delivered_to(storage: Storage, ca: trustme.CA) -> None:
    receiver = Receiver(trustme.CA(), [200])  # signed by a CA nobody trusts
    try:
        platform = Platform(storage)
        alert, ports = _webhook_alert(platform, receiver.url)
        assert run_notify(ports, json.dumps({"alertId": alert}).encode()) == "retrying"
        assert not receiver.requests
        stored = platform.alerts.get_alert(alert)
        assert stored is not None and "could not be reached" in (stored.delivery_message or "")
    finally:
        receiver.close()


def test_a_webhook_whose_name_resolves_to_loopback_is_refused_at_send(storage: Storage, ca: trustme.CA) -> None:
    receiver = Receiver(ca, [200])
    try:
        platform = Platform(storage)
        url = receiver.url.replace("127.0.0.1", "localhost")
        alert, ports = _webhook_alert(platform, url, allow_private=False)  # saved with the opt-out, sent without
        assert run_notify(ports, json.dumps({"alertId": alert}).encode()) == "retrying"
        assert not receiver.requests and not receiver.server_names  # no connection at all
        stored = platform.alerts.get_alert(alert)
        assert stored is not None
        assert "resolves to an internal address" in (stored.delivery_message or "")
        assert "Error" not in (stored.delivery_message or "")  # generic text, no exception types
    finally:
        receiver.close()


def test_a_webhook_by_name_connects_to_the_resolved_address_and_names_the_host_in_tls(
    storage: Storage, ca: trustme.CA
) -> None:
    receiver = Receiver(ca, [200], names=("localhost",))  # a certificate for the name only
    try:
        platform = Platform(storage)
        url = receiver.url.replace("127.0.0.1", "localhost")
        alert, ports = _webhook_alert(platform, url)
        assert run_notify(ports, json.dumps({"alertId": alert}).encode()) == "delivered"
        ((headers, _),) = receiver.requests
        assert receiver.server_names == ["localhost"]  # SNI: the name, not the address connected to
        assert headers["Host"] == f"localhost:{receiver.server.server_address[1]}"
    finally:
        receiver.close()


def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_deadline(storage: Storage, ca: trustme.CA) -> None:
    receiver = Receiver(ca, [200], trickle=0.5)  # each byte within the read timeout, the whole never
    try:
        platform = Platform(storage)
        alert, ports = _webhook_alert(platform, receiver.url, timeout=2)
        started = time.monotonic()
        assert run_notify(ports, json.dumps({"alertId": alert}).encode()) == "retrying"
        elapsed = time.monotonic() - started
        assert elapsed < 4, elapsed
        stored = platform.alerts.get_alert(alert)
        assert stored is not None and "no answer within 2 s" in (stored.delivery_message or "")
    finally:
        receiver.close()


def test_a_receiver_whose_body_never_ends_is_delivered_on_its_status(storage: Storage, ca: trustme.CA) -> None:
    receiver = Receiver(ca, [202], endless_body=True)
    try:
        platform = Platform(storage)
        alert, ports = _webhook_alert(platform, receiver.url, timeout=3)
        started = time.monotonic()
        assert run_notify(ports, json.dumps({"alertId": alert}).encode()) == "delivered"
        assert time.monotonic() - started < 2
    finally:
        receiver.close()


# --- through the pull: the emulator's Activity Log, concurrent and redelivered messages --------------


@pytest.mark.slow
def test_pulls_at_once_redelivered_and_overlapping_raise_each_alert_once(
    emulator: Any, azurite: Any, clock: FakeClock
) -> None:
    from connector import service as connector_service
    from ingestion.fanout import run_fanout
    from ingestion.messages import PullMessage
    from ingestion.pull import pull_subscription
    from tests.support.platform import connector_environ, make_runtime

    runtime = make_runtime(connector_environ(emulator, azurite, POLICY_DAILY_ALERT_LIMIT="100000"), clock)
    try:
        every = service.create_policy(runtime.policies, runtime.engine, clock, ADMIN,
                                      {"name": "all", "severity": "low", "kind": "singleActivity"},
                                      webhook_secret=None).id  # fmt: skip
        bursts = service.create_policy(runtime.policies, runtime.engine, clock, ADMIN,
                                       {"name": "bursts", "severity": "low", "kind": "repeatedActivity",
                                        "repeated": {"count": 3, "windowMinutes": 30}},
                                       webhook_secret=None).id  # fmt: skip
        emulator.set_events_per_hour(200)
        emulator.event_page_size = 50
        connector_service.connect(runtime.connector, runtime.subscriptions, runtime.arm, clock, ADMIN)
        connector = runtime.connector.get()
        assert connector is not None
        sub = next(s.subscription_id for s in emulator.subscriptions if s.listed and s.state == "Enabled"
                   and not s.forbidden)  # fmt: skip
        clock.advance(timedelta(hours=2))
        message = PullMessage(subscription_id=sub, connection_id=connector.connection_id, enqueued_at=clock.now())
        together = threading.Barrier(3)

        def pull() -> None:
            together.wait(timeout=30)
            pull_subscription(runtime.pull, message)

        threads = [threading.Thread(target=pull) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        pull_subscription(runtime.pull, message)  # a redelivery
        clock.advance(timedelta(minutes=5))
        run_fanout(runtime.connector, runtime.subscriptions, runtime.arm, runtime.pull_queue, clock)
        for queued in runtime.storage.pull_queue.receive_messages(messages_per_page=32):
            if PullMessage.model_validate_json(queued.content).subscription_id == sub:
                pull_subscription(runtime.pull, PullMessage.model_validate_json(queued.content))  # re-reads the overlap
            runtime.storage.pull_queue.delete_message(queued)

        rows = [row for row in runtime.storage.table("activities").query_entities("PartitionKey ne ''")
                if row["subscription_id"] == sub]  # fmt: skip
        stored = {row["id"] for row in rows}
        assert stored, "the emulator generated no events"
        ids: list[str] = []
        token = None
        while True:
            page = runtime.alerts.search(AlertQuery(policy_id=every), 100, token, caller="t")
            ids += [a["activityIds"][0] for a in page.items]
            token = page.continuation
            if not token:
                break
        assert sorted(ids) == sorted(stored)  # one alert per stored activity, none twice
        # Each burst alert counts its activities exactly, and no activity counts towards two bursts.
        burst_alerts = runtime.alerts.search(AlertQuery(policy_id=bursts), 100, None, caller="t").items
        assert burst_alerts, "no principal acted three times within 30 minutes"
        counted: set[str] = set()
        for alert in burst_alerts:
            # A burst that grows backwards (an earlier page read later) keeps the time it was raised
            # with; its activities say where it starts. Each activity counts towards one burst, once.
            key = safe_key(alert["user"]["id"])
            times = {r["id"]: wire_time(r["timestamp"]) for r in rows if r.get("user_key") == key}
            ids = alert["activityIds"]
            start, end = min(times[i] for i in ids), alert["lastActivityAt"]
            assert start <= alert["time"] and all(start <= times[i] <= end for i in ids)
            assert alert["activityCount"] == len(ids) == len(set(ids)) and not counted & set(ids)
            counted |= set(ids)
    finally:
        runtime.storage.close()


HOSTED_SECRET = "hosted-webhook-secret-of-32-bytes-or-more"


def test_the_hosted_app_delivers_an_alert_to_its_webhook_from_the_queue(
    emulator: Any, azurite: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The whole path in the local host: the API creates the policy, a stored activity raises the
    alert, the alert queue's trigger POSTs it, signed, to a local HTTPS receiver."""
    import time

    from core.runtime import install_runtime
    from tests.conftest import NEVER
    from tests.support.platform import connector_environ, hosted_app, make_runtime

    authority = trustme.CA()
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(emulator.ca_pem_path.read_bytes() + authority.cert_pem.bytes())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))  # the emulator's CA and the receiver's
    receiver = Receiver(authority, [200])
    environ = connector_environ(
        emulator,
        azurite,
        FANOUT_SCHEDULE=NEVER,
        RETENTION_SCHEDULE=NEVER,
        ALERT_WEBHOOK_SECRET=HOSTED_SECRET,
    )
    runtime = make_runtime(environ, clock)
    install_runtime(runtime)
    try:
        with hosted_app(environ, monkeypatch) as host:
            document = {"name": "hook", "severity": "high", "kind": "singleActivity",
                        "filter": {"actionTypes": ["delete"]}, "webhookUrl": receiver.url}  # fmt: skip
            status, created = call(host.base_url, "POST", "/api/policies", emulator.mint_token("global_admin"),
                                   body=json.dumps(document).encode(), key=None)  # fmt: skip
            assert status == 201, created
            clock.advance(60)
            raw = make_event(SUB, clock.now(), operation=DELETE)
            runtime.activities.save(SUB, [(raw, normalize_event(raw, ingested_at=clock.now()))])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                (alert,) = runtime.alerts.search(AlertQuery(), 10, None, caller="t").items
                if alert["delivery"]["status"] == "delivered":
                    break
                time.sleep(0.25)
            assert alert["delivery"]["status"] == "delivered"
            ((headers, body),) = receiver.requests
            signature = (headers["X-Connector-Timestamp"], body, headers["X-Connector-Signature"])
            assert verify(HOSTED_SECRET, *signature, now=clock.now().timestamp())
            assert json.loads(body)["alert"]["id"] == alert["id"]
    finally:
        install_runtime(None)
        receiver.close()
        runtime.storage.close()
