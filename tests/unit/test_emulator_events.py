"""The emulator's synthetic tenant and Activity Log generator, without starting a server."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.clock import FakeClock
from localdev.emulator import JSON_NULL, Emulator
from localdev.emulator.events import SLOT_SECONDS, apply_fields, is_arm_event
from localdev.emulator.tenant import POLICY_INSIGHTS_APP_ID
from localdev.emulator.timefmt import parse_datetime, parse_timestamp

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def make(seed: int = 7, **kwargs: object) -> tuple[Emulator, FakeClock]:
    clock = FakeClock(START)
    return Emulator(clock=clock, seed=seed, **kwargs), clock  # type: ignore[arg-type]


def ids(events: list[dict[str, object]]) -> list[object]:
    return [e["eventDataId"] for e in events]


def test_the_tenant_is_deterministic_from_the_seed() -> None:
    a, _ = make(7)
    b, _ = make(7)
    c, _ = make(8)
    assert (a.tenant_id, a.client_id, a.client_secret) == (b.tenant_id, b.client_id, b.client_secret)
    assert a.tenant_id != c.tenant_id and a.client_secret != c.client_secret
    assert [s.subscription_id for s in a.subscriptions] == [s.subscription_id for s in b.subscriptions]
    names = [s.display_name for s in a.subscriptions]
    assert names[:5] == [
        "Contoso Production",
        "Contoso Development",
        "Contoso Staging",
        "Contoso Sandbox",
        "Contoso Data",
    ]
    assert [s.state for s in a.subscriptions].count("Disabled") == 1
    sub = a.subscriptions[0].subscription_id
    window = (START - timedelta(hours=6), START)
    assert a.events(sub, *window) == b.events(sub, *window)
    assert ids(a.events(sub, *window)) != ids(c.events(c.subscriptions[0].subscription_id, *window))


def test_ranges_are_inclusive_and_ordered_newest_first() -> None:
    emu, _ = make()
    sub = emu.subscriptions[0].subscription_id
    events = emu.events(sub, START - timedelta(hours=3), START)
    keys = [(parse_timestamp(e["eventTimestamp"]), e["eventDataId"]) for e in events]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
    middle = events[len(events) // 2]
    at = parse_datetime(middle["eventTimestamp"])  # the 100 ns timestamp, cut to microseconds
    assert middle in emu.events(sub, at, at + timedelta(microseconds=1))
    if parse_timestamp(middle["eventTimestamp"]) % 10:  # a datetime cannot say the exact tick: `at` is before it
        assert middle not in emu.events(sub, at, at)
    injected = emu.inject_event(sub, at=START - timedelta(minutes=7))
    assert emu.events(sub, START - timedelta(minutes=7), START - timedelta(minutes=7)) == [injected]


def test_events_exist_only_from_creation_and_while_active() -> None:
    emu, clock = make()
    added = emu.add_subscription("Contoso Fresh")
    assert added.created_at == START
    assert emu.events(added.subscription_id, START - timedelta(days=1), START) == []
    clock.advance(timedelta(hours=3))
    assert emu.events(added.subscription_id, START, clock.now())
    disabled_at = clock.now()
    emu.set_subscription(added.subscription_id, state="Disabled")
    before = emu.events(added.subscription_id, START, disabled_at)
    clock.advance(timedelta(hours=3))
    assert emu.events(added.subscription_id, START, disabled_at) == before
    # Operations under way when it was disabled still end; nothing starts afterwards.
    assert emu.events(added.subscription_id, disabled_at + timedelta(minutes=2), clock.now()) == []
    emu.set_subscription(added.subscription_id, state="Enabled")
    clock.advance(timedelta(hours=1))
    assert emu.events(added.subscription_id, clock.now() - timedelta(hours=1), clock.now())
    with pytest.raises(KeyError):
        emu.events("00000000-0000-0000-0000-000000000000", START, START)
    with pytest.raises(ValueError, match="already exists"):
        emu.add_subscription("Again", subscription_id=added.subscription_id)
    with pytest.raises(ValueError, match="state"):
        emu.add_subscription("Odd", state="Paused")


def test_changing_the_rate_keeps_the_past() -> None:
    emu, clock = make()
    sub = emu.subscriptions[0].subscription_id
    past = emu.events(sub, START - timedelta(hours=6), START)
    emu.set_events_per_hour(600)
    assert emu.events(sub, START - timedelta(hours=6), START) == past
    clock.advance(timedelta(hours=2))
    busy = emu.events(sub, START, clock.now())
    emu.set_events_per_hour(0)
    clock.advance(timedelta(hours=2))
    quiet = emu.events(sub, START + timedelta(hours=2, minutes=2), clock.now())
    assert 0.5 * 1200 < len(busy) < 1.5 * 1200
    assert quiet == []
    assert emu.events(sub, START, START + timedelta(hours=2)) == busy


def test_rate_applies_per_active_subscription() -> None:
    emu, _ = make(events_per_hour=240)
    window = (START - timedelta(hours=8), START)
    counts = {s.display_name: len(emu.events(s.subscription_id, *window)) for s in emu.subscriptions}
    for name, count in counts.items():
        if name == "Contoso Legacy":
            assert count == 0
        else:
            assert 0.75 * 240 * 8 < count < 1.25 * 240 * 8, (name, count)


def test_surface_delays_are_bounded_and_often_the_maximum() -> None:
    emu, _ = make(max_surface_delay=timedelta(minutes=4))
    sub = emu.subscriptions[0].subscription_id
    events = emu.events(sub, START - timedelta(days=1), START)
    delays = [
        (parse_datetime(e["submissionTimestamp"]) - parse_datetime(e["eventTimestamp"])).total_seconds() for e in events
    ]
    assert min(delays) >= 10 and max(delays) <= 240
    at_maximum = sum(1 for d in delays if d > 239.99) / len(delays)
    assert 0.08 < at_maximum < 0.25
    assert sum(1 for d in delays if d > 60) / len(delays) > 0.2

    instant, _ = make(max_surface_delay=0)
    for event in instant.events(instant.subscriptions[0].subscription_id, START - timedelta(hours=2), START):
        assert parse_timestamp(event["submissionTimestamp"]) == parse_timestamp(event["eventTimestamp"])


def test_surfaced_by_limits_the_ground_truth() -> None:
    emu, _ = make()
    sub = emu.subscriptions[0].subscription_id
    window = (START - timedelta(hours=1), START)
    everything = emu.events(sub, *window)
    surfaced = emu.events(sub, *window, surfaced_by=START)
    assert surfaced == [e for e in everything if parse_datetime(e["submissionTimestamp"]) <= START]
    assert len(surfaced) < len(everything)


def test_identities_cover_every_kind() -> None:
    emu, _ = make()
    events = emu.events(emu.subscriptions[0].subscription_id, START - timedelta(days=3), START)
    kinds: Counter[str] = Counter()
    for event in events:
        claims = event.get("claims") or {}
        if "xms_mirid" in claims:
            kinds["managedIdentity"] += 1
        elif "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn" in claims:
            kinds["user"] += 1
        elif "appid" in claims:
            kinds["servicePrincipal"] += 1
        elif event.get("caller"):
            kinds["system"] += 1
        else:
            kinds["nobody"] += 1
    assert set(kinds) == {"managedIdentity", "user", "servicePrincipal", "system", "nobody"}
    assert kinds["user"] > kinds["servicePrincipal"] > kinds["nobody"]
    guests = [e for e in events if "#EXT#" in str(e.get("caller"))]
    assert guests


def test_failed_events_carry_an_error_body() -> None:
    emu, _ = make()
    events = emu.events(emu.subscriptions[0].subscription_id, START - timedelta(days=1), START)
    failed = [e for e in events if e["status"]["value"] == "Failed"]
    assert failed
    for event in failed:
        assert event["level"] in ("Error", "Warning")
        assert "HTTP Status Code" in event["subStatus"]["localizedValue"]
        assert '"error"' in event["properties"]["statusMessage"]
    started = [e for e in events if e["status"]["value"] == "Started"]
    assert all(e["subStatus"] == {"value": "", "localizedValue": ""} for e in started)


def test_returned_events_are_copies() -> None:
    emu, _ = make()
    sub = emu.subscriptions[0].subscription_id
    first = emu.events(sub, START - timedelta(hours=1), START)
    first[0]["caller"] = "changed"
    first[0]["status"]["value"] = "changed"
    if "claims" in first[0]:
        first[0]["claims"]["x"] = "y"
    again = emu.events(sub, START - timedelta(hours=1), START)
    assert again[0]["caller"] != "changed" and again[0]["status"]["value"] != "changed"
    assert "x" not in (again[0].get("claims") or {})


def test_apply_fields() -> None:
    base = {
        "caller": "a@contoso.com",
        "description": "",
        "httpRequest": {"method": "PUT"},
        "authorization": {"action": "Microsoft.Compute/virtualMachines/write", "scope": "/x"},
        "operationName": {"value": "Microsoft.Compute/virtualMachines/write", "localizedValue": "x"},
        "level": "Informational",
        "eventDataId": "1",
        "id": "/x/events/1/ticks/5",
    }
    event = apply_fields(
        base,
        {
            "httpRequest": None,
            "description": JSON_NULL,
            "operation": "Microsoft.Web/sites/delete",
            "status": "Failed",
            "eventDataId": "2",
        },
    )
    assert "httpRequest" not in event and event["description"] is None
    assert event["operationName"] == {"value": "Microsoft.Web/sites/delete", "localizedValue": "Delete Web App"}
    assert event["authorization"]["action"] == "Microsoft.Web/sites/delete"
    assert event["resourceType"]["value"] == "Microsoft.Web/sites"
    assert event["resourceProviderName"]["value"] == "Microsoft.Web"
    assert event["level"] == "Error" and event["id"] == "/x/events/2/ticks/5"
    assert base["caller"] == "a@contoso.com" and "httpRequest" in base


def test_a_day_of_six_subscriptions_holds_the_configured_rate() -> None:
    emu, _ = make()
    total = sum(len(emu.events(s.subscription_id, START - timedelta(days=1), START)) for s in emu.subscriptions)
    assert total > 5 * 24 * 60 * 0.8
    slot_events = max(
        len(emu.events(emu.subscriptions[0].subscription_id, START - timedelta(seconds=SLOT_SECONDS), START)), 1
    )
    assert slot_events < 60


def test_fault_bookkeeping() -> None:
    emu, _ = make()
    sub = emu.subscriptions[0].subscription_id
    emu.add_fault("429", subscription_id=sub, count=2, retry_after=9)
    assert emu.take_fault(emu.subscriptions[1].subscription_id) is None
    first = emu.take_fault(sub)
    assert first is not None and first.kind == "429" and first.retry_after == 9 and first.status == 429
    assert emu.take_fault(sub) is not None
    assert emu.take_fault(sub) is None
    emu.add_fault("5xx", count=-1, status=502)
    assert all((f := emu.take_fault(sub)) is not None and f.status == 502 for _ in range(5))
    emu.clear_faults()
    assert emu.faults == []
    with pytest.raises(ValueError):
        emu.add_fault("5xx", status=404)
    with pytest.raises(ValueError):
        emu.add_fault("slow", count=0)


# --- as messy as the real Activity Log ------------------------------------------------------------


def _day(emu: Emulator) -> list[dict[str, Any]]:
    return emu.events(emu.subscriptions[0].subscription_id, START - timedelta(days=1), START)


def _category(event: dict[str, Any]) -> str | None:
    category = event.get("category")
    return category.get("value") if isinstance(category, dict) else None


def test_every_category_with_its_real_shape() -> None:
    emu, _ = make(events_per_hour=600)
    events = _day(emu)
    by_category: dict[str | None, list[dict[str, Any]]] = {}
    for event in events:
        by_category.setdefault(_category(event), []).append(event)
    assert set(by_category) == {
        "Administrative",
        None,
        "Policy",
        "ServiceHealth",
        "ResourceHealth",
        "Alert",
        "Autoscale",
        "Security",
        "Recommendation",
    }
    assert 0.75 * len(events) < len(by_category["Administrative"]) + len(by_category[None]) < 0.95 * len(events)
    for notice in by_category["ServiceHealth"]:  # platform notices: nobody acted
        assert not {"caller", "claims", "authorization", "httpRequest"} & set(notice)
        assert notice["eventName"] == {"value": None} and notice["channels"] == "Admin"
    for kind, spn in (
        ("Alert", "Microsoft.Insights/alertRules"),
        ("Autoscale", "Microsoft.Insights/autoscaleSettings"),
    ):
        for event in by_category[kind]:
            assert event["caller"] == spn
            assert event["claims"] == {"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/spn": spn}
    statuses = {e["status"]["value"] for e in by_category["ResourceHealth"] + by_category["ServiceHealth"]}
    assert statuses == {"Active", "Resolved", "In Progress", "Updated"}
    assert {"Critical", "Warning"} <= {e["level"] for e in events}
    for event in by_category["Recommendation"]:
        assert event["resourceId"].startswith("/SUBSCRIPTIONS/")
        assert event["resourceProviderName"]["value"] == "MICROSOFT.COMPUTE"
    assert all(is_arm_event(e) for e in by_category["Administrative"] + by_category[None])
    assert not any(
        is_arm_event(e) for name, group in by_category.items() if name not in ("Administrative", None) for e in group
    )


def test_policy_audits_a_write_under_its_correlation_id() -> None:
    emu, _ = make(events_per_hour=600)
    events = _day(emu)
    writes = {
        e["correlationId"]: e
        for e in events
        if _category(e) in ("Administrative", None) and e["operationName"]["value"].endswith("/write")
    }
    policy = [e for e in events if _category(e) == "Policy"]
    assert policy
    assert all(e["correlationId"] in writes for e in policy)
    callers = Counter(
        "policy-insights" if (e.get("claims") or {}).get("appid") == POLICY_INSIGHTS_APP_ID else "the writer"
        for e in policy
    )
    assert callers["policy-insights"] > 0 and callers["the writer"] > 0
    assert all(json.loads(e["properties"]["policies"])[0]["policyDefinitionEffect"] for e in policy)


def test_users_without_upn_and_service_principals_called_by_object_id() -> None:
    emu, _ = make(events_per_hour=600)
    events = _day(emu)
    upn = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
    personal = [e for e in events if (e.get("claims") or {}).get("idtyp") == "user"]
    assert personal
    for event in personal:
        claims = event["claims"]
        assert upn not in claims and "@" in event["caller"]
        assert claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"].startswith("live.com#")
    by_oid = [
        e
        for e in events
        if e.get("caller")
        and e["caller"] == (e.get("claims") or {}).get("http://schemas.microsoft.com/identity/claims/objectidentifier")
        and "xms_mirid" not in e["claims"]
        and e["claims"].get("appid") != POLICY_INSIGHTS_APP_ID
    ]
    assert by_oid


def test_a_resource_group_delete_cascades_to_its_resources() -> None:
    emu, _ = make(events_per_hour=600)
    events = _day(emu)
    children = [
        e
        for e in events
        if e.get("authorization", {}).get("action") == "Microsoft.Resources/subscriptions/resourceGroups/delete"
        and not e["operationName"]["value"].endswith("resourceGroups/delete")
    ]
    assert children
    parents = {e["correlationId"] for e in events if e["operationName"]["value"].endswith("resourceGroups/delete")}
    for child in children:
        assert "httpRequest" not in child and child["correlationId"] in parents
        assert child["resourceType"]["value"] == "Microsoft.Resources/subscriptions/resourceGroups"
        assert child["operationName"]["value"].endswith("/delete")
        assert "/providers/" in child["resourceId"].lower()


def test_value_shapes_of_real_events() -> None:
    emu, _ = make(events_per_hour=600)
    events = _day(emu)
    digits = Counter(
        len(e["eventTimestamp"].rsplit(".", 1)[1]) - 1 if "." in e["eventTimestamp"] else 0 for e in events
    )
    assert {0, 2, 6, 7} <= set(digits) and digits[7] > len(events) / 2
    for event in events:  # the text says the exact instant the API filters and orders by
        assert parse_datetime(event["eventTimestamp"]) <= parse_datetime(event["submissionTimestamp"])
    arm = [e for e in events if is_arm_event(e)]
    assert any("tenantId" not in e for e in arm) and any("resourceType" not in e for e in arm)
    assert any("category" not in e for e in arm)
    assert any(e["properties"].get("requestbody", "") is None for e in arm)
    assert any(e.get("subStatus") == {"value": None} for e in events)
    assert any(
        isinstance(json.loads(e["properties"]["statusMessage"]), dict)
        for e in arm
        if "statusMessage" in e["properties"]
    )


def test_the_rate_counts_every_event_of_every_category() -> None:
    emu, _ = make(events_per_hour=600)
    assert 0.85 * 600 * 24 < len(_day(emu)) < 1.15 * 600 * 24
