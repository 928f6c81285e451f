"""The normalized activity model and its API shape (the fields of docs/normalization.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from core.timefmt import wire_time
from ingestion.models import Activity, ActivityUser, parse_timestamp

pytestmark = pytest.mark.unit

API_KEYS = [
    "id",
    "timestamp",
    "ingestedAt",
    "app",
    "tenantId",
    "subscriptionId",
    "user",
    "ipAddress",
    "action",
    "actionName",
    "actionType",
    "category",
    "status",
    "subStatus",
    "resourceId",
    "resourceGroup",
    "resourceProvider",
    "resourceType",
    "correlationId",
    "operationId",
    "level",
]


def _api_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "evt-1",
        "timestamp": "2026-11-26T10:00:00.1234567Z",
        "ingestedAt": "2026-11-26T11:00:00+01:00",
        "app": "Microsoft Azure",
        "tenantId": "t",
        "subscriptionId": "s",
        "user": {"id": "u", "upn": "u@contoso.com", "name": "U", "type": "user", "appId": None},
        "ipAddress": "198.51.100.1",
        "action": "Microsoft.Compute/virtualMachines/write",
        "actionName": "Create or Update Virtual Machine",
        "actionType": "write",
        "category": "Administrative",
        "status": "Succeeded",
        "subStatus": None,
        "resourceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
        "resourceGroup": "rg",
        "resourceProvider": "Microsoft.Compute",
        "resourceType": "Microsoft.Compute/virtualMachines",
        "correlationId": "c",
        "operationId": "o",
        "level": "Informational",
    }
    body.update(changes)
    return body


def test_api_shape_keys_and_times() -> None:
    activity = Activity.model_validate(_api_body())
    api = activity.to_api()
    assert list(api) == API_KEYS
    assert list(api["user"]) == ["id", "upn", "name", "type", "appId"]
    assert api["timestamp"] == "2026-11-26T10:00:00.123456Z"
    assert api["ingestedAt"] == "2026-11-26T10:00:00.000000Z"
    assert activity.timestamp.tzinfo is UTC
    assert activity.ingested_at == datetime(2026, 11, 26, 10, tzinfo=UTC)


def test_round_trip_through_the_api_shape() -> None:
    activity = Activity.model_validate(_api_body())
    assert Activity.model_validate(activity.to_api()) == activity


def test_field_names_and_aliases_build_the_same_activity() -> None:
    by_alias = Activity.model_validate(_api_body())
    by_name = Activity(
        id="evt-1",
        timestamp=datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC),
        ingested_at=datetime(2026, 11, 26, 10, tzinfo=UTC),
        tenant_id="t",
        subscription_id="s",
        user=ActivityUser(id="u", upn="u@contoso.com", name="U", type="user", app_id=None),
        ip_address="198.51.100.1",
        action="Microsoft.Compute/virtualMachines/write",
        action_name="Create or Update Virtual Machine",
        action_type="write",
        category="Administrative",
        status="Succeeded",
        sub_status=None,
        resource_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
        resource_group="rg",
        resource_provider="Microsoft.Compute",
        resource_type="Microsoft.Compute/virtualMachines",
        correlation_id="c",
        operation_id="o",
        level="Informational",
    )
    assert by_name == by_alias
    assert by_name.app == "Microsoft Azure"


def test_naive_datetimes_are_utc_and_offsets_are_converted() -> None:
    activity = Activity.model_validate(
        _api_body(
            timestamp=datetime(2026, 11, 26, 10, 0),
            ingestedAt=datetime(2026, 11, 26, 5, 0, tzinfo=timezone(timedelta(hours=-5))),
        )
    )
    assert activity.timestamp == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert activity.timestamp.tzinfo is UTC
    assert activity.ingested_at.tzinfo is UTC
    assert activity.to_api()["ingestedAt"] == "2026-11-26T10:00:00.000000Z"


def test_blank_strings_are_null_in_the_model() -> None:
    activity = Activity.model_validate(
        _api_body(tenantId="", ipAddress="  ", subStatus="", user={"id": "", "upn": "", "type": "unknown", "appId": ""})
    )
    assert (activity.tenant_id, activity.ip_address, activity.sub_status) == (None, None, None)
    assert activity.user.model_dump() == {"id": None, "upn": None, "name": None, "type": "unknown", "app_id": None}


@pytest.mark.parametrize(
    "changes",
    [
        {"id": ""},
        {"subscriptionId": ""},
        {"actionType": "create"},
        {"user": {"type": "admin"}},
        {"timestamp": "yesterday"},
        {"timestamp": None},
    ],
)
def test_invalid_activities_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Activity.model_validate(_api_body(**changes))


def test_wire_time() -> None:
    assert wire_time(datetime(2026, 11, 26, 10, 0, tzinfo=UTC)) == "2026-11-26T10:00:00.000000Z"
    assert wire_time(datetime(2026, 11, 26, 10, 0)) == "2026-11-26T10:00:00.000000Z"
    assert wire_time(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00.000000Z"
    assert wire_time(datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))) == "2025-12-31T23:30:00.000000Z"
    earlier, later = datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert wire_time(earlier) < wire_time(later)


@pytest.mark.parametrize(
    "value", [None, 1795687000, 1.5, True, [], {}, "", "   ", "not a date", "2026-02-30T00:00:00Z"]
)
def test_parse_timestamp_refuses(value: object) -> None:
    assert parse_timestamp(value) is None
