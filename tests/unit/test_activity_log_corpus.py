"""Published, real Activity Log events (tests/data/activity_log): what each one normalizes to, or
that it is skipped. The files' sources and licences are in that folder's README."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingestion.normalize import is_arm_activity, normalize_event, parse_page

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "data" / "activity_log"
INGESTED = datetime(2026, 1, 1, tzinfo=UTC)

# The bytes as published: a changed file fails here before anything else.
SHA256 = {
    "learn/administrative.json": "0c99cf0b059d60f7f05d9b99966a05c202a3cc1dd57e8b7b7d29bf9040d71c60",
    "learn/alert.json": "c9ac43bc1df440e5a04d4970dba4b8e993c7dca748e6a7689b6f139ce21875a9",
    "learn/autoscale.json": "f2305573788133505fbf4e0b3aaafb7831bcf7ee5be78573a1b1986826de07a1",
    "learn/policy.json": "e43ff6f4b7d236c1585326d8fb69c135a67819d2714ad75d67fe17776f1d8e22",
    "learn/recommendation.json": "75967985973540504e18666fe91dda92aa341b88a38daaf0debbe3b447e30f16",
    "learn/resource-health.json": "341dd8ef445b86efa5fcf31c8a1aef20f1d9dbc80ddb05a87194670d7fd4ca81",
    "learn/security.json": "10649845f6f076d1bdae8eba1eeb8f251a557d4a5a1a250bbb1836a78a4f5817",
    "learn/service-health.json": "ad6c9aaed51604a1a31b038521342544ed372187920311df2e3ba46438bb6ab1",
    "rest-api-specs/GetActivityLogsFiltered.json": "988618cd4b9a47f916811a8e5837d4cade0e4b94bf6fb61b2452f0e88e35120a",
}

# Events of other categories than Administrative: read and skipped, never an activity.
SKIPPED = {
    "learn/alert.json": "Alert",
    "learn/autoscale.json": "Autoscale",
    "learn/policy.json": "Policy",
    "learn/recommendation.json": "Recommendation",
    "learn/resource-health.json": "ResourceHealth",
    "learn/security.json": "Security",
    "learn/service-health.json": "ServiceHealth",
}

ADMINISTRATIVE = {
    "id": "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e",
    "timestamp": "2018-01-29T20:42:31.381067Z",
    "ingestedAt": "2026-01-01T00:00:00.000000Z",
    "app": "Microsoft Azure",
    "tenantId": "aaaabbbb-0000-cccc-1111-dddd2222eeee",  # no tenantId on the event: the token's
    "subscriptionId": "<subscription ID>",
    "user": {
        "id": "f409edeb-4d29-44b5-9763-ee9348ad91bb",
        "upn": "rob@contoso.com",
        "name": "Rob Robertson",
        "type": "user",
        "appId": None,
    },
    "ipAddress": "111.111.1.111",  # no httpRequest: the ipaddr claim
    "action": "Microsoft.Network/networkSecurityGroups/write",
    "actionName": "Microsoft.Network/networkSecurityGroups/write",
    "actionType": "write",
    "category": "Administrative",
    "status": "Succeeded",
    "subStatus": None,  # "" is null
    "resourceId": "/subscriptions/<subscription ID>/resourcegroups/myResourceGroup/providers/"
    "Microsoft.Network/networkSecurityGroups/myNSG",
    "resourceGroup": "myResourceGroup",
    "resourceProvider": "Microsoft.Network",
    "resourceType": "Microsoft.Network/networkSecurityGroups",
    "correlationId": "aaaa0000-bb11-2222-33cc-444444dddddd",
    "operationId": "04e575f8-48d0-4c43-a8b3-78c4eb01d287",
    "level": "Informational",
}

REST_SPECS_EVENT = {
    "id": "44ade6b4-3813-45e6-ae27-7420a95fa2f8",
    "timestamp": "2015-01-21T22:14:26.979277Z",
    "ingestedAt": "2026-01-01T00:00:00.000000Z",
    "app": "Microsoft Azure",
    "tenantId": "1e8d8218-c5e7-4578-9acc-9abbd5d23315",
    "subscriptionId": "089bd33f-d4ec-47fe-8ba5-0753aa5c5b33",
    "user": {
        "id": "2468adf0-8211-44e3-95xq-85137af64708",  # as published, though not a GUID
        "upn": "admin@contoso.com",
        "name": "John Smith",
        "type": "user",
        "appId": None,
    },
    "ipAddress": "192.168.35.115",
    "action": "microsoft.support/supporttickets/write",
    "actionName": "microsoft.support/supporttickets/write",
    "actionType": "write",
    "category": None,  # an older event without a category: still an ARM activity
    "status": "Succeeded",
    "subStatus": "Created",
    "resourceId": None,
    "resourceGroup": "MSSupportGroup",
    "resourceProvider": "microsoft.support",
    "resourceType": "microsoft.support/supporttickets",  # no resourceType: the operation's
    "correlationId": "1e121103-0ba6-4300-ac9d-952bb5d0c80f",
    "operationId": "1e121103-0ba6-4300-ac9d-952bb5d0c80f",
    "level": "Informational",
}


def _bytes(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def _event(name: str) -> dict[str, Any]:
    # strict=False: the published Policy sample holds raw line breaks inside a string.
    event = json.loads(_bytes(name).decode("utf-8"), strict=False)
    assert isinstance(event, dict)
    return event


def test_the_corpus_is_complete_and_unchanged() -> None:
    found = {path.relative_to(CORPUS).as_posix() for path in CORPUS.rglob("*.json")}
    assert found == set(SHA256)
    for name, digest in SHA256.items():
        assert hashlib.sha256(_bytes(name)).hexdigest() == digest, f"{name} differs from the published bytes"


def test_the_published_policy_sample_is_not_strict_json() -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(_bytes("learn/policy.json"))
    assert "policyDefinitionEffect" in _event("learn/policy.json")["properties"]["policies"]


def test_the_administrative_sample_becomes_one_activity() -> None:
    event = _event("learn/administrative.json")
    page = parse_page(json.dumps({"value": [event]}), ingested_at=INGESTED)
    assert page.skipped == 0 and page.next_link is None
    [(raw, activity)] = page.items
    assert raw == event
    assert activity.to_api() == ADMINISTRATIVE


def test_the_rest_api_example_page() -> None:
    document = json.loads(_bytes("rest-api-specs/GetActivityLogsFiltered.json"))
    body = json.dumps(document["responses"]["200"]["body"])
    page = parse_page(body, ingested_at=INGESTED, subscription_id="089bd33f-d4ec-47fe-8ba5-0753aa5c5b33")
    assert page.skipped == 0
    assert page.next_link == "https://management.azure.com/########-####-####-####-############$skiptoken=######"
    assert [activity.to_api() for _, activity in page.items] == [REST_SPECS_EVENT]


@pytest.mark.parametrize(("name", "category"), sorted(SKIPPED.items()))
def test_events_of_other_categories_are_skipped(name: str, category: str) -> None:
    event = _event(name)
    assert event["category"]["value"] == category
    assert not is_arm_activity(event)
    page = parse_page(json.dumps({"value": [event]}), ingested_at=INGESTED, subscription_id="s")
    assert page.items == [] and page.skipped == 1 and page.invalid == ()
    # Were it not skipped, it would still normalize without a crash (a missing field is null).
    assert normalize_event(event, ingested_at=INGESTED, subscription_id="s").category == category


def test_the_whole_corpus_on_one_page() -> None:
    events = [_event(name) for name in sorted(SHA256) if name.startswith("learn/")]
    page = parse_page(json.dumps({"value": events}), ingested_at=INGESTED)
    assert [activity.id for _, activity in page.items] == [ADMINISTRATIVE["id"]]
    assert page.skipped == len(SKIPPED) == len(events) - 1
