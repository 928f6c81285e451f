"""Policies on the in-memory fakes: definitions, templates, matching, evaluation's guarantees, webhooks.

The engine runs as the writer calls it (on the activities new to a save, before they are marked
stored); redelivery, a crash half-way and two workers at once are played out on the fakes, whose
counters keep the adapter's contract (a ledger beside a summary, changed together or not at all).
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.clock import FakeClock
from core.errors import InvalidInput
from ingestion.models import Activity
from ingestion.normalize import normalize_event
from policies import service
from policies.engine import advance_bursts
from policies.matching import compile_filter
from policies.models import PolicyDefinition, parse_alert_change, parse_definition
from policies.notify import NotifyPorts, WebhookFailed, backoff_seconds, run_notify, sign, verify
from policies.templates import BY_ID, TEMPLATES
from tests.fakes import FakeActivityWriter
from tests.support.events import USERS, make_event
from tests.support.policy_world import ADMIN, START, SUB, World

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1] / "data" / "activity_log"
ALICE, BOB = USERS[0], USERS[1]


def activity(
    at: datetime = START,
    *,
    operation: str = "Microsoft.Compute/virtualMachines/write",
    status: str = "Succeeded",
    user: tuple[str, str, str, str] = ALICE,
    seed: int | None = None,
    **changes: Any,
) -> Activity:
    rng = random.Random(seed if seed is not None else random.getrandbits(64))
    event = make_event(SUB, at, rng=rng, user=user, operation=operation, status=status)
    event.update(changes)
    return normalize_event(event, ingested_at=at + timedelta(minutes=2))


def learn_event(name: str) -> dict[str, Any]:
    # strict=False: the published samples hold raw line breaks inside strings.
    return json.loads((DATA / name).read_text(encoding="utf-8"), strict=False)


def real(event: dict[str, Any]) -> Activity:
    return normalize_event(event, ingested_at=START, subscription_id=SUB)


# --- definitions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"severity": "high", "kind": "singleActivity"}, "name"),
        ({"name": "x", "severity": "urgent", "kind": "singleActivity"}, "severity"),
        ({"name": "x", "severity": "low", "kind": "sometimes"}, "kind"),
        ({"name": "x", "severity": "low", "kind": "repeatedActivity"}, "repeated"),
        ({"name": "x", "severity": "low", "kind": "singleActivity", "repeated": {"count": 2, "windowMinutes": 1}},
         "repeated"),
        ({"name": "x", "severity": "low", "kind": "repeatedActivity", "repeated": {"count": 1, "windowMinutes": 5}},
         "repeated.count"),
        ({"name": "x", "severity": "low", "kind": "repeatedActivity", "repeated": {"count": 5, "windowMinutes": 0}},
         "repeated.windowMinutes"),
        ({"name": "x", "severity": "low", "kind": "singleActivity", "filter": {"ipInRanges": ["10.0.0.0/33"]}},
         "filter.ipInRanges.0"),
        ({"name": "x", "severity": "low", "kind": "singleActivity", "filter": {"userTypes": ["robot"]}},
         "filter.userTypes.0"),
        ({"name": "x", "severity": "low", "kind": "singleActivity", "filter": {"actions": []}}, "filter.actions"),
        ({"name": "x", "severity": "low", "kind": "singleActivity", "filter": {"colour": ["red"]}}, "filter.colour"),
        ({"name": "x", "severity": "low", "kind": "singleActivity", "webhookUrl": "http://example.com/hook"},
         "webhookUrl"),
        ({"name": "x", "severity": "low", "kind": "singleActivity", "webhookUrl": "https://u:p@example.com/"},
         "webhookUrl"),
        ({"name": "x", "severity": "low", "kind": "singleActivity", "enabled": "maybe"}, "enabled"),
    ],
)  # fmt: skip
def test_a_bad_definition_is_refused_naming_the_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_definition(document)
    assert caught.value.field == field, caught.value.message


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        ({}, "status", "status: is required"),
        ({"status": "closed"}, "status", "status: Input should be"),
        ({"status": "resolved", "owner": "me"}, "owner", "owner: is not a field of an alert change (status, comment)"),
        ({"status": "resolved", "comment": "x" * 1025}, "comment", "comment: String should have at most 1024"),
        ([], "body", "body: Input should be"),
    ],
)
def test_a_bad_alert_change_is_refused_naming_the_field(document: Any, field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_alert_change(document)
    assert caught.value.field == field and caught.value.message.startswith(message), caught.value.message


def test_a_webhook_needs_the_signing_secret_configured() -> None:
    world = World()
    document = {"name": "x", "severity": "low", "kind": "singleActivity", "webhookUrl": "https://example.com/h"}
    with pytest.raises(InvalidInput) as caught:
        service.create_policy(world.policies, None, world.clock, ADMIN, document, webhook_secret=None)
    assert caught.value.field == "webhookUrl" and "ALERT_WEBHOOK_SECRET" in caught.value.message


def test_a_webhook_url_is_answered_whole_only_when_shown_and_its_host_always() -> None:
    world = World()
    hooked = world.policy(webhookUrl="https://hooks.example.com/in?sig=abc")
    plain = world.policy()
    record, other = world.policies.get(hooked), world.policies.get(plain)
    assert record is not None and other is not None
    hidden = record.to_api()
    assert "webhookUrl" not in hidden and hidden["webhookHost"] == "hooks.example.com"
    assert "sig=abc" not in json.dumps(hidden)
    shown = record.to_api(show_webhook_url=True)
    assert shown["webhookUrl"] == "https://hooks.example.com/in?sig=abc" and shown["webhookHost"] == "hooks.example.com"
    assert other.to_api()["webhookHost"] is None and other.to_api(show_webhook_url=True)["webhookUrl"] is None


def test_an_unknown_template_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        service.create_policy(World().policies, None, FakeClock(START), ADMIN, {"templateId": "nope"},
                              webhook_secret=None)  # fmt: skip
    assert caught.value.field == "templateId"


def test_a_policy_from_a_template_is_ordinary_and_takes_overrides() -> None:
    world = World()
    record = service.create_policy(
        world.policies, None, world.clock, ADMIN, {"templateId": "mass-deletion", "severity": "low"},
        webhook_secret=None,
    )  # fmt: skip
    assert record.definition.name == "Mass deletion of resources" and record.definition.severity == "low"
    changed = service.replace_policy(
        world.policies, None, world.clock, ADMIN, record.id,
        {**record.definition.to_json(), "name": "Deletions"}, webhook_secret=None,
    )  # fmt: skip
    assert changed.definition.name == "Deletions" and changed.version == 2


# --- templates against activities that must and must not match --------------------------------------


def _with_op(event: dict[str, Any], op: str, status: str = "Succeeded") -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["operationName"] = {"value": op, "localizedValue": op}
    event["authorization"]["action"] = op
    event["status"] = {"value": status, "localizedValue": status}
    event["eventDataId"] = f"{random.getrandbits(128):032x}"
    return event


ADMINISTRATIVE = learn_event("learn/administrative.json")  # rob@contoso.com writes an NSG from 111.111.1.111
SUPPORT = learn_event("rest-api-specs/GetActivityLogsFiltered.json")["responses"]["200"]["body"]["value"][0]
SP = ("", "", "9f1c2b3a-0000-4000-8000-00000000abcd", "")


def _sp_event(op: str = "Microsoft.Compute/virtualMachines/write") -> Activity:
    event = make_event(SUB, START, operation=op, rng=random.Random(3))
    event["caller"] = SP[2]
    event["claims"] = {"appid": "11112222-0000-4000-8000-000000000000", "idtyp": "app",
                       "http://schemas.microsoft.com/identity/claims/objectidentifier": SP[2]}  # fmt: skip
    return normalize_event(event, ingested_at=START)


def op(name: str, status: str = "Succeeded", base: dict[str, Any] = ADMINISTRATIVE) -> Activity:
    """The real sample event, doing `name` instead."""
    return real(_with_op(base, name, status))


def from_ip(ip: str | None) -> Activity:
    return real({**ADMINISTRATIVE, "claims": {**ADMINISTRATIVE["claims"], "ipaddr": ip}})


TEMPLATE_CASES: list[tuple[str, Activity, bool]] = [
    ("mass-deletion", activity(operation="Microsoft.Storage/storageAccounts/delete"), True),
    ("mass-deletion", activity(operation="Microsoft.Storage/storageAccounts/delete", status="Failed"), False),
    ("mass-deletion", real(ADMINISTRATIVE), False),
    ("role-assignment-or-elevated-access", op("Microsoft.Authorization/roleAssignments/write"), True),
    ("role-assignment-or-elevated-access", op("Microsoft.Authorization/elevateAccess/action", base=SUPPORT), True),
    ("role-assignment-or-elevated-access", real(SUPPORT), False),
    ("role-assignment-or-elevated-access", op("Microsoft.Authorization/roleAssignments/delete"), False),
    ("secrets-read", op("Microsoft.Storage/storageAccounts/listKeys/action"), True),
    ("secrets-read", op("Microsoft.KeyVault/vaults/accessPolicies/write"), True),
    ("secrets-read", op("Microsoft.Web/sites/config/list/action"), False),
    ("logging-turned-off", op("microsoft.insights/diagnosticSettings/delete"), True),
    ("logging-turned-off", op("Microsoft.Insights/activityLogAlerts/delete"), True),
    ("logging-turned-off", op("Microsoft.Insights/diagnosticSettings/write"), False),
    ("policy-assignment-removed", op("Microsoft.Authorization/policyAssignments/delete"), True),
    ("policy-assignment-removed", op("Microsoft.Authorization/policyAssignments/write"), False),
    ("failed-operations-burst", op("Microsoft.Network/networkSecurityGroups/write", "Failed"), True),
    ("failed-operations-burst", real(ADMINISTRATIVE), False),
    ("outside-ip-ranges", real(ADMINISTRATIVE), True),
    ("outside-ip-ranges", from_ip("10.20.30.40"), False),
    ("outside-ip-ranges", from_ip(None), False),
    ("new-service-principal", _sp_event(), True),
    ("new-service-principal", real(ADMINISTRATIVE), False),
]  # fmt: skip


@pytest.mark.parametrize(("template", "act", "expected"), TEMPLATE_CASES)
def test_each_template_matches_what_it_should(template: str, act: Activity, expected: bool) -> None:
    definition = PolicyDefinition.model_validate(BY_ID[template].definition)
    first_seen = {}
    if act.user.id:
        from activities.layout import account_key

        first_seen[account_key(act.user) or ""] = act.timestamp
    assert compile_filter(definition.filter)(act, first_seen) is expected


def test_every_template_is_valid_and_covered() -> None:
    assert {t.id for t in TEMPLATES} == {case[0] for case in TEMPLATE_CASES}
    for template in TEMPLATES:
        assert template.to_api()["definition"]["name"]


def test_a_principal_seen_before_is_not_new() -> None:
    act = _sp_event()
    spec = PolicyDefinition.model_validate(BY_ID["new-service-principal"].definition).filter
    from activities.layout import account_key

    key = account_key(act.user) or ""
    assert not compile_filter(spec)(act, {key: act.timestamp - timedelta(days=3)})


def test_filters_combine_fields_and_values() -> None:
    spec = parse_definition({
        "name": "x", "severity": "low", "kind": "singleActivity",
        "filter": {"actions": ["Microsoft.Compute/*"], "users": ["ALICE@contoso.com", "bob-id"],
                   "ipInRanges": ["203.0.113.0/24"], "resourceGroups": ["RG-1", "rg-2", "rg-3", "rg-4", "rg-5"]},
    }).filter  # fmt: skip
    test = compile_filter(spec)
    assert test(activity(), {})
    assert not test(activity(user=BOB), {})  # Bob acts from 203.0.113.20 but is not listed by UPN or id
    assert not test(activity(operation="Microsoft.Storage/storageAccounts/delete"), {})
    assert not test(activity(user=USERS[2]), {})


# --- single activity: exactly once ----------------------------------------------------------------


def test_each_matching_activity_raises_one_alert_and_redelivery_raises_none() -> None:
    world = World()
    world.policy(filter={"actions": ["Microsoft.Storage/*/delete"]})
    hit = activity(operation="Microsoft.Storage/storageAccounts/delete")
    miss = activity()
    world.save(hit, miss)
    assert [a.activity_ids for a in world.alerts.alerts.values()] == [(hit.id,)]
    # A crash after evaluation but before the events were marked stored: the retry evaluates again.
    world.engine.evaluate([hit, miss], {})
    world.save(hit, miss)  # a redelivered message: nothing new to the writer, nothing evaluated
    assert len(world.alerts.alerts) == 1 and world.alerts.creates == 1


def test_a_crash_half_way_is_repaired_by_the_retry() -> None:
    world = World()
    world.policy(filter={"actionTypes": ["delete"]})
    acts = [activity(operation="Microsoft.Storage/storageAccounts/delete") for _ in range(3)]
    world.alerts.fail_put = OSError("storage went away")
    with pytest.raises(OSError):
        world.save(*acts)
    assert not world.writer.activities  # not marked stored: the message is retried
    world.save(*acts)
    assert len(world.alerts.alerts) == 3 and world.alerts.creates == 3
    (daily,) = [s for p, (_, s) in world.alerts.summaries.items() if p.startswith("d-")]
    assert daily["count"] == 3  # counted once each, though evaluated twice


def test_only_activities_after_the_policy_was_created_or_changed_are_evaluated() -> None:
    world = World()
    world.clock.set(START)
    policy_id = world.policy(filter={"actionTypes": ["delete"]})
    before = activity(START - timedelta(seconds=1), operation="Microsoft.Storage/storageAccounts/delete")
    after = activity(START, operation="Microsoft.Storage/storageAccounts/delete")
    world.save(before, after)
    assert [a.activity_ids for a in world.alerts.alerts.values()] == [(after.id,)]
    world.clock.set(START + timedelta(hours=1))
    record = world.policies.get(policy_id)
    assert record is not None
    service.replace_policy(world.policies, world.engine, world.clock, ADMIN, policy_id,
                           record.definition.to_json(), webhook_secret=None)  # fmt: skip
    world.save(activity(START + timedelta(minutes=30), operation="Microsoft.Storage/storageAccounts/delete"))
    assert len(world.alerts.alerts) == 1


def test_disabled_and_deleted_policies_raise_nothing() -> None:
    world = World()
    world.policy(enabled=False)
    gone = world.policy()
    service.delete_policy(world.policies, world.engine, gone)
    world.save(activity())
    assert not world.alerts.alerts


def test_two_workers_at_once_raise_one_alert() -> None:
    world = World()
    world.policy(filter={"actionTypes": ["delete"]})
    other = world.new_engine()
    acts = [activity(operation="Microsoft.Storage/storageAccounts/delete")]

    def other_first() -> None:
        other.evaluate(acts, {})  # the other worker writes first

    world.alerts.before_count = other_first
    world.engine.evaluate(acts, {})
    assert len(world.alerts.alerts) == 1
    (daily,) = [s for p, (_, s) in world.alerts.summaries.items() if p.startswith("d-")]
    assert daily["count"] == 1


# --- repeated activity --------------------------------------------------------------------------------


def _burst_world(count: int = 3, minutes: int = 10, **repeated: Any) -> World:
    world = World()
    world.policy(kind="repeatedActivity", filter={"actionTypes": ["delete"]},
                 repeated={"count": count, "windowMinutes": minutes, **repeated})  # fmt: skip
    return world


def _deletes(times: list[datetime], user: tuple[str, str, str, str] = ALICE, op: str = "") -> list[Activity]:
    operation = op or "Microsoft.Storage/storageAccounts/delete"
    return [activity(t, operation=operation, user=user) for t in times]


def test_a_burst_exactly_at_the_window_raises_one_alert() -> None:
    world = _burst_world()
    world.save(*_deletes([START, START + timedelta(minutes=5), START + timedelta(minutes=10)]))
    (alert,) = world.alerts.alerts.values()
    assert alert.activity_count == 3 and alert.first_activity_at == START and alert.kind == "repeatedActivity"


def test_a_burst_just_past_the_window_raises_nothing() -> None:
    world = _burst_world()
    world.save(*_deletes([START, START + timedelta(minutes=5), START + timedelta(minutes=10, microseconds=1)]))
    assert not world.alerts.alerts


def test_one_short_of_the_count_raises_nothing_and_the_next_one_raises() -> None:
    world = _burst_world()
    world.save(*_deletes([START, START + timedelta(minutes=1)]))
    assert not world.alerts.alerts
    world.save(*_deletes([START + timedelta(minutes=2)]))  # a later page
    assert len(world.alerts.alerts) == 1


def test_a_continuing_burst_is_one_alert_and_a_later_one_another() -> None:
    world = _burst_world()
    world.save(*_deletes([START + timedelta(minutes=m) for m in range(0, 30, 2)]))  # 15 deletes, 2 min apart
    (alert,) = world.alerts.alerts.values()
    assert alert.activity_count == 15
    world.save(*_deletes([START + timedelta(hours=2, minutes=m) for m in range(3)]))
    assert len(world.alerts.alerts) == 2


def test_bursts_are_per_principal_and_optionally_per_action() -> None:
    world = _burst_world(sameAction=True)
    times = [START + timedelta(minutes=m) for m in range(2)]
    world.save(*_deletes(times), *_deletes([START + timedelta(minutes=3)], user=BOB))
    world.save(*_deletes([START + timedelta(minutes=4)], op="Microsoft.Compute/virtualMachines/delete"))
    assert not world.alerts.alerts  # Alice: 2 + 1 of another action; Bob: 1
    world.save(*_deletes([START + timedelta(minutes=5)]))
    (alert,) = world.alerts.alerts.values()
    assert alert.user.upn == ALICE[0] and alert.activity_count == 3


def test_out_of_order_pages_and_redelivery_count_each_activity_once() -> None:
    world = _burst_world(count=4)
    acts = _deletes([START + timedelta(minutes=m) for m in range(4)])
    world.save(*acts[2:])  # the Activity Log pages newest first
    world.engine.evaluate(acts[2:], {}, world.writer.summaries)  # evaluated again before being marked stored
    assert not world.alerts.alerts
    world.save(*acts[:2])
    (alert,) = world.alerts.alerts.values()
    assert alert.activity_count == 4 and set(alert.activity_ids) == {a.id for a in acts}
    world.save(*acts)  # a redelivery: nothing new to the writer
    world.engine.evaluate(acts, {}, world.writer.summaries)  # a crash after the alert, before the mark
    assert world.alerts.creates == 1 and next(iter(world.alerts.alerts.values())).activity_count == 4


def test_concurrent_pulls_count_a_burst_exactly() -> None:
    world = _burst_world(count=3)
    other = FakeActivityWriter(evaluator=world.new_engine())
    other.accounts, other.account_ledgers = world.writer.accounts, world.writer.account_ledgers  # one table
    acts = _deletes([START + timedelta(minutes=m) for m in range(3)])

    def other_first() -> None:
        other.save(SUB, [({}, a) for a in acts[1:]])  # another pull, overlapping in acts[1]

    world.writer.before_account = other_first
    world.save(*acts[:2])
    (alert,) = world.alerts.alerts.values()
    assert alert.activity_count == 3 and world.alerts.creates == 1


def test_a_crash_after_the_burst_was_counted_raises_its_alert_on_the_retry() -> None:
    world = _burst_world(count=3)
    acts = _deletes([START + timedelta(minutes=m) for m in range(3)])
    world.alerts.fail_put = OSError("storage went away")
    with pytest.raises(OSError):
        world.save(*acts)
    assert not world.alerts.alerts and not world.writer.activities
    world.save(*acts)  # the retry: counted already (nothing new to the account), the alert is raised now
    (alert,) = world.alerts.alerts.values()
    assert alert.activity_count == 3


def test_repeated_policies_cannot_ask_for_a_principal_s_first_activity() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_definition({"name": "x", "severity": "low", "kind": "repeatedActivity",
                          "repeated": {"count": 2, "windowMinutes": 5},
                          "filter": {"firstActivityOfPrincipal": True}})  # fmt: skip
    assert caught.value.field == "filter.firstActivityOfPrincipal"


def test_advance_bursts_is_idempotent_and_keeps_the_alert_id() -> None:
    events = [(i * 60_000_000, f"id{i}") for i in range(5)]
    state = advance_bursts(None, events[:3], count=3, window_us=600_000_000, new_id=lambda first: f"alert-{first}")
    again = advance_bursts(state, events[3:], count=3, window_us=600_000_000, new_id=lambda first: "other")
    assert [b["id"] for b in again["bursts"]] == ["alert-id0"] and again["bursts"][0]["count"] == 5
    assert advance_bursts(again, [], count=3, window_us=600_000_000, new_id=lambda first: "x") == again


def test_a_long_burst_keeps_counting_past_the_ids_it_keeps() -> None:
    state = None
    for i in range(250):
        state = advance_bursts(state, [(i * 1_000_000, f"id{i}")], count=3, window_us=600_000_000,
                               new_id=lambda first: "a")  # fmt: skip
    assert state is not None
    (burst,) = state["bursts"]
    assert burst["count"] == 250 and len(state["events"]) == 50


# --- the daily limit ----------------------------------------------------------------------------------


def test_past_the_daily_limit_the_policy_is_paused_with_a_message() -> None:
    world = World(daily_limit=3)
    world.writer.evaluator = world.engine = world.new_engine(daily_limit=3)
    policy_id = world.policy(filter={"actionTypes": ["delete"]})
    acts = _deletes([START + timedelta(seconds=s) for s in range(5)])
    world.save(*acts)
    assert len(world.alerts.alerts) == 3
    record = world.policies.get(policy_id)
    assert record is not None and record.state == "paused" and "more than 3 alerts" in (record.paused_message or "")
    assert record.to_api()["state"] == "paused"
    world.engine.evaluate(acts, {})  # re-evaluated: the refused stay refused, nothing more is raised
    world.save(*_deletes([START + timedelta(minutes=1)]))
    assert len(world.alerts.alerts) == 3
    # Re-enabled (a change): a new version with a fresh daily count, from now on.
    world.clock.set(START + timedelta(minutes=5))
    service.replace_policy(world.policies, world.engine, world.clock, ADMIN, policy_id,
                           record.definition.to_json(), webhook_secret=None)  # fmt: skip
    world.save(*_deletes([START + timedelta(minutes=6)]))
    assert len(world.alerts.alerts) == 4
    refreshed = world.policies.get(policy_id)
    assert refreshed is not None and refreshed.state == "enabled"


# --- webhooks on the fakes ----------------------------------------------------------------------------


class Receiver:
    def __init__(self, answers: list[int | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.calls.append((url, body, headers))
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return answer


def _webhook_world(answers: list[int | Exception]) -> tuple[World, NotifyPorts, Receiver]:
    world = World()
    world.policy(filter={"actionTypes": ["delete"]}, webhookUrl="https://hooks.example.com/alerts")
    receiver = Receiver(answers)
    ports = NotifyPorts(world.alerts, world.policies, world.queue, receiver, world.clock, "s3cret", max_attempts=3)
    world.save(*_deletes([START]))
    return world, ports, receiver


def test_an_alert_is_posted_signed_and_marked_delivered() -> None:
    world, ports, receiver = _webhook_world([204])
    (message,) = world.queue.take()
    assert run_notify(ports, json.dumps({"alertId": message.alert_id}).encode()) == "delivered"
    (_, body, headers) = receiver.calls[0]
    now = world.clock.now().timestamp()
    assert verify("s3cret", headers["X-Connector-Timestamp"], body, headers["X-Connector-Signature"], now=now)
    assert not verify("other", headers["X-Connector-Timestamp"], body, headers["X-Connector-Signature"], now=now)
    assert json.loads(body)["alert"]["id"] == message.alert_id
    assert world.alerts.alerts[message.alert_id].delivery == "delivered"
    assert run_notify(ports, json.dumps({"alertId": message.alert_id}).encode()) == "skipped"  # a repeat
    assert len(receiver.calls) == 1


def test_failures_are_retried_with_backoff_then_poisoned_and_marked_undelivered() -> None:
    world, ports, _ = _webhook_world([500, WebhookFailed("ConnectionError"), 503])
    (message,) = world.queue.take()
    body = json.dumps({"alertId": message.alert_id, "attempt": 1}).encode()
    assert run_notify(ports, body) == "retrying"
    (second,) = world.queue.take()
    assert second.attempt == 2 and 30 <= second.delay_seconds <= 36
    assert run_notify(ports, json.dumps({"alertId": message.alert_id, "attempt": 2}).encode()) == "retrying"
    (third,) = world.queue.take()
    assert 60 <= third.delay_seconds <= 72
    assert run_notify(ports, json.dumps({"alertId": message.alert_id, "attempt": 3}).encode()) == "undelivered"
    assert [p.alert_id for p in world.queue.poisoned] == [message.alert_id]
    alert = world.alerts.alerts[message.alert_id]
    assert alert.delivery == "undelivered" and "503" in (alert.delivery_message or "")
    assert "s3cret" not in (alert.delivery_message or "")


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign("k", "1700000000", b"{}") == f"sha256={expected}"
    assert not verify("k", "1700000000", b"{}", sign("k", "1700000000", b"{}"), now=1700000000 + 301)
    assert backoff_seconds(1, 30) >= 30 and backoff_seconds(20, 30) <= 3600 * 1.2


def test_a_burst_counter_stays_within_the_table_limits_however_large_the_burst() -> None:
    """A mass deletion of 1,000 events (long ids, one page or many) keeps the counter under its character
    budget, counts every event, and the most counters a summary keeps fit in one entity."""
    from activities.layout import MAX_STRING_CHARS
    from policies.engine import MAX_COUNTER_CHARS, MAX_COUNTERS

    events = [(i * 100_000, f"{i:08d}-" + "x" * 200) for i in range(1000)]
    at_once = advance_bursts(None, events, count=20, window_us=600_000_000, new_id=lambda first: "a" * 32)
    paged: dict[str, Any] | None = None
    for start in range(0, 1000, 100):
        paged = advance_bursts(paged, events[start : start + 100], count=20, window_us=600_000_000,
                               new_id=lambda first: "a" * 32)  # fmt: skip
    for state in (at_once, paged):
        assert state is not None
        assert len(json.dumps(state, separators=(",", ":"))) <= MAX_COUNTER_CHARS <= MAX_STRING_CHARS
        assert [b["count"] for b in state["bursts"]] == [1000]
        assert state["events"] and state["events"][-1][1] == events[-1][1]  # the newest are kept
    # Strings are stored as UTF-16: the counters of one summary stay well under the 1 MiB entity limit.
    assert MAX_COUNTERS * MAX_COUNTER_CHARS * 2 <= 512 * 1024


def test_an_event_id_longer_than_the_budget_is_counted_but_not_kept() -> None:
    from policies.engine import MAX_COUNTER_CHARS

    events = [(i, "y" * (MAX_COUNTER_CHARS + 1) if i == 3 else f"id{i}") for i in range(5)]
    state = advance_bursts(None, events, count=5, window_us=600_000_000, new_id=lambda first: "b")
    assert len(json.dumps(state, separators=(",", ":"))) <= MAX_COUNTER_CHARS
    assert [b["count"] for b in state["bursts"]] == [5]


def test_the_engine_s_contention_errors_are_retried_by_the_pull_as_transient() -> None:
    from core.optimistic import WriteContention
    from ingestion.pull import FAILURES, _retry
    from policies.store import CounterContention

    for raised in (CounterContention("counter partition kept changing"), WriteContention("The policy p")):
        assert next(policy for kinds, policy in FAILURES if isinstance(raised, kinds)) is _retry


def _burst_webhook_world() -> tuple[World, NotifyPorts]:
    world = World()
    world.policy(kind="repeatedActivity", filter={"actionTypes": ["delete"]},
                 repeated={"count": 3, "windowMinutes": 10}, webhookUrl="https://hooks.example.com/alerts")  # fmt: skip
    receiver = Receiver([500, 500, 500])
    ports = NotifyPorts(world.alerts, world.policies, world.queue, receiver, world.clock, "s3cret", max_attempts=5)
    return world, ports


def test_a_growing_burst_starts_one_delivery_chain() -> None:
    world, ports = _burst_webhook_world()
    world.save(*_deletes([START, START + timedelta(minutes=1), START + timedelta(minutes=2)]))
    (first,) = world.queue.take()
    assert first.attempt == 1
    assert run_notify(ports, json.dumps({"alertId": first.alert_id, "attempt": 1}).encode()) == "retrying"
    (second,) = world.queue.take()
    assert second.attempt == 2
    world.save(*_deletes([START + timedelta(minutes=3)]))  # the burst grows while its delivery is retried
    world.save(*_deletes([START + timedelta(minutes=4)]))
    assert world.queue.take() == []  # the chain on its way is the only one
    assert world.alerts.alerts[first.alert_id].activity_count == 5


def test_a_burst_grown_before_its_first_attempt_still_makes_one_delivery_chain() -> None:
    world, ports = _burst_webhook_world()
    world.save(*_deletes([START, START + timedelta(minutes=1), START + timedelta(minutes=2)]))
    world.save(*_deletes([START + timedelta(minutes=3)]))  # grown while its first message waits
    first, again = world.queue.take()
    assert (first.alert_id, first.attempt) == (again.alert_id, again.attempt) == (first.alert_id, 1)
    body = json.dumps({"alertId": first.alert_id, "attempt": 1}).encode()
    assert run_notify(ports, body, message_id="m1") == "retrying"
    assert run_notify(ports, body, message_id="m2") == "skipped"
    (second,) = world.queue.take()
    assert second.attempt == 2 and len(ports.poster.calls) == 1  # type: ignore[attr-defined]
    # The claimer's redelivery (its run failed after the attempt) runs again; the other's does not.
    assert run_notify(ports, body, message_id="m1") == "retrying"
    assert run_notify(ports, body, message_id="m2") == "skipped"
    assert len(ports.poster.calls) == 2  # type: ignore[attr-defined]


def test_two_first_messages_running_at_once_make_one_delivery_chain() -> None:
    world, ports = _burst_webhook_world()
    world.save(*_deletes([START, START + timedelta(minutes=1), START + timedelta(minutes=2)]))
    world.save(*_deletes([START + timedelta(minutes=3)]))
    first, _ = world.queue.take()
    body = json.dumps({"alertId": first.alert_id, "attempt": 1}).encode()
    outcomes: list[str] = []

    class SlowReceiver(Receiver):
        def post(self, url: str, payload: bytes, headers: dict[str, str]) -> int:
            if not self.calls:  # the second message runs while the first one's POST waits for an answer
                outcomes.append(run_notify(ports_now, body, message_id="m2"))
            return super().post(url, payload, headers)

    receiver = SlowReceiver([500])
    ports_now = replace(ports, poster=receiver)
    assert run_notify(ports_now, body, message_id="m1") == "retrying"
    assert outcomes == ["skipped"] and len(receiver.calls) == 1
    assert [m.attempt for m in world.queue.take()] == [2]  # one chain goes on


def test_an_alert_whose_delivery_began_before_claims_were_recorded_keeps_its_one_chain() -> None:
    world, ports = _burst_webhook_world()
    world.save(*_deletes([START, START + timedelta(minutes=1), START + timedelta(minutes=2)]))
    (first,) = world.queue.take()
    alert = world.alerts.alerts[first.alert_id]
    # As an earlier version left it: an attempt failed and its retry is queued, no claim stored.
    world.alerts.alerts[alert.id] = replace(alert, delivery_message="Attempt 1 failed; retrying in 30 s.")
    world.save(*_deletes([START + timedelta(minutes=3)]))  # the burst grows: no new first message
    assert world.queue.take() == []
    body = json.dumps({"alertId": first.alert_id, "attempt": 1}).encode()
    assert run_notify(ports, body, message_id="late") == "skipped"
    assert ports.poster.calls == []  # type: ignore[attr-defined]


def test_an_alert_whose_message_was_lost_before_any_attempt_is_enqueued_again() -> None:
    world, _ = _burst_webhook_world()
    acts = _deletes([START, START + timedelta(minutes=1), START + timedelta(minutes=2)])
    world.save(*acts)
    (lost,) = world.queue.take()  # a crash after the alert was written: its message never went out
    world.engine.evaluate(acts, {}, world.writer.summaries)  # the retry evaluates them again
    (again,) = world.queue.take()
    assert again.alert_id == lost.alert_id and again.attempt == 1


def test_a_burst_that_grows_back_past_midnight_is_counted_on_one_day_once() -> None:
    world = _burst_world()
    midnight = datetime(2026, 11, 27, tzinfo=UTC)  # after the policy was created (START - 1 h)
    world.save(*_deletes([midnight + timedelta(minutes=m) for m in (2, 4, 6)]))
    world.save(*_deletes([midnight - timedelta(minutes=2)]))  # a late event: the burst now starts the day before
    (alert,) = world.alerts.alerts.values()
    assert alert.activity_count == 4
    counted = {partition: sorted(rows) for partition, rows in world.alerts.ledgers.items() if rows}
    assert list(counted.values()) == [[alert.id]] and next(iter(counted)).endswith("-20261127")
