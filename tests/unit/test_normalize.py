"""Normalization of Activity Log events into activities (the rules of docs/normalization.md)."""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.timefmt import wire_time
from ingestion.models import Activity, ActivityLogEvent, ActivityLogPage, parse_timestamp
from ingestion.normalize import (
    InvalidEvent,
    InvalidPage,
    ParsedPage,
    action_type_of,
    identify,
    is_arm_activity,
    normalize_event,
    parse_page,
    resource_type_of_id,
    resource_type_of_operation,
)

pytestmark = pytest.mark.unit

INGESTED = datetime(2026, 11, 26, 10, 5, 0, tzinfo=UTC)
SUB = "8c1a5e4e-2d2b-4d41-9a52-0a7a1ef0b001"
OTHER_SUB = "0f3c7d2a-9b9e-4c1e-8e33-5a7e0d3a4b02"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
PORTAL_APP = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c"
CLI_APP = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

UPN_URI = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
NAME_URI = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
OID_URI = "http://schemas.microsoft.com/identity/claims/objectidentifier"
GIVEN_URI = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
SURNAME_URI = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
TENANT_URI = "http://schemas.microsoft.com/identity/claims/tenantid"

VM_ID = f"/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.Compute/virtualMachines/vm-web-01"
VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/vault1"
FUNC_ID = f"/subscriptions/{SUB}/resourceGroups/rg-apps/providers/Microsoft.Web/sites/func-orders"


def _loc(value: str, localized: str | None = None) -> dict[str, str]:
    return {"value": value, "localizedValue": value if localized is None else localized}


def _base_event(event_data_id: str, operation: str, resource_id: str, **overrides: Any) -> dict[str, Any]:
    """The common skeleton of a real Administrative event (REST shape, api-version 2015-04-01)."""
    provider = operation.split("/", 1)[0]
    resource_type = operation.rsplit("/", 1)[0]
    event: dict[str, Any] = {
        "authorization": {"action": operation, "scope": resource_id},
        "channels": "Operation",
        "correlationId": "b5768deb-836b-41cc-803e-3f4de2f9e40b",
        "description": "",
        "eventDataId": event_data_id,
        "eventName": _loc("EndRequest", "End request"),
        "category": _loc("Administrative"),
        "eventTimestamp": "2026-11-26T09:58:31.3810679Z",
        "id": f"{resource_id}/events/{event_data_id}/ticks/639001115113810679",
        "level": "Informational",
        "operationId": "04e575f8-48d0-4c43-a8b3-78c4eb01d287",
        "operationName": _loc(operation, "Create or Update Virtual Machine"),
        "resourceGroupName": resource_id.split("/")[4],
        "resourceProviderName": _loc(provider, "Microsoft Compute"),
        "resourceType": _loc(resource_type),
        "resourceId": resource_id,
        "status": _loc("Succeeded"),
        "subStatus": _loc("Created", "Created (HTTP Status Code: 201)"),
        "submissionTimestamp": "2026-11-26T10:00:50.0724829Z",
        "subscriptionId": SUB,
        "tenantId": TENANT,
        "properties": {
            "statusCode": "Created",
            "serviceRequestId": "f5b2ae6b-2f5c-4c36-9e3b-0ad5c0a3b7f1",
            "eventCategory": "Administrative",
            "entity": resource_id,
            "message": operation,
            "hierarchy": f"{TENANT}/{SUB}",
        },
        "relatedEvents": [],
    }
    event.update(overrides)
    return event


def portal_user_event() -> dict[str, Any]:
    """A user who changed a VM in the portal: a delegated (v1) token, the way ARM logs it."""
    return _base_event(
        "d0d36f97-b29c-4cd9-9d3d-ea2b92af3e9d",
        "Microsoft.Compute/virtualMachines/write",
        VM_ID,
        caller="rob@contoso.com",
        claims={
            "aud": "https://management.core.windows.net/",
            "iss": f"https://sts.windows.net/{TENANT}/",
            "iat": "1795687000",
            "nbf": "1795687000",
            "exp": "1795691230",
            "http://schemas.microsoft.com/claims/authnclassreference": "1",
            "aio": "AVQAq/8YAAAA...",
            "http://schemas.microsoft.com/claims/authnmethodsreferences": "pwd,mfa",
            "appid": PORTAL_APP,
            "appidacr": "2",
            GIVEN_URI: "Rob",
            SURNAME_URI: "Robertson",
            "ipaddr": "203.0.113.77",
            "name": "Rob Robertson",
            OID_URI: "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf",
            "puid": "10032001A2B3C4D5",
            "rh": "0.AAAAv4j5cvGGr0GRqy180BHbR0ZIf3kAutdPukPawfj2MBMBAAA.",
            "http://schemas.microsoft.com/identity/claims/scope": "user_impersonation",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier": "b-24Jf94A3FH2sHWVIFqO3",
            TENANT_URI: TENANT,
            NAME_URI: "rob@contoso.com",
            UPN_URI: "rob@contoso.com",
            "uti": "IdP3SUJGtkGlt7dDQVRPAA",
            "ver": "1.0",
            "xms_tcdt": "1289241547",
        },
        httpRequest={
            "clientRequestId": "ba7f1e76-9a3c-4a2f-8d3e-1c1a6c1e2b3d",
            "clientIpAddress": "198.51.100.23",
            "method": "PUT",
        },
    )


def service_principal_event() -> dict[str, Any]:
    """An app-only token of a service principal (a pipeline deleting a resource group)."""
    return _base_event(
        "5f3e0a12-7c44-4b8e-9a36-3b2a9c1d0e11",
        "Microsoft.Resources/subscriptions/resourceGroups/delete",
        f"/subscriptions/{SUB}/resourceGroups/rg-ci-1234",
        caller="9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
        claims={
            "aud": "https://management.azure.com/",
            "iss": f"https://sts.windows.net/{TENANT}/",
            "appid": "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{TENANT}/",
            "idtyp": "app",
            OID_URI: "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier": "9c8b7a6d-5e4f-4a3b",
            TENANT_URI: TENANT,
            "ver": "1.0",
        },
        httpRequest={"clientRequestId": "", "clientIpAddress": "20.42.1.9", "method": "DELETE"},
        status=_loc("Accepted"),
        subStatus=_loc("Accepted", "Accepted (HTTP Status Code: 202)"),
    )


def managed_identity_event() -> dict[str, Any]:
    """A Function App's system-assigned identity (its token says idtyp=app too)."""
    return _base_event(
        "77aa11bb-22cc-4d33-8e44-55ff66aa77bb",
        "Microsoft.Storage/storageAccounts/listKeys/action",
        f"/subscriptions/{SUB}/resourceGroups/rg-apps/providers/Microsoft.Storage/storageAccounts/stfunc01",
        caller="1d2c3b4a-5f6e-4d7c-8b9a-0f1e2d3c4b5a",
        claims={
            "aud": "https://management.azure.com",
            "appid": "6e5d4c3b-2a19-4f08-b7e6-d5c4b3a29181",
            "appidacr": "2",
            "idtyp": "app",
            OID_URI: "1d2c3b4a-5f6e-4d7c-8b9a-0f1e2d3c4b5a",
            TENANT_URI: TENANT,
            "xms_mirid": FUNC_ID,
            "xms_az_rid": FUNC_ID,
            "ver": "1.0",
        },
        httpRequest={"clientRequestId": "", "clientIpAddress": "40.112.1.1", "method": "POST"},
    )


def recovery_services_event() -> dict[str, Any]:
    """An event Azure itself logs, with a resource provider as caller and no claims."""
    event = _base_event(
        "c3d4e5f6-0718-4293-a4b5-c6d7e8f90a1b",
        "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/write",
        VAULT_ID,
        caller="Microsoft.RecoveryServices",
    )
    del event["tenantId"]
    return event


def expected_api(**changes: Any) -> dict[str, Any]:
    """The normalized portal-user event, as the API answers it."""
    body: dict[str, Any] = {
        "id": "d0d36f97-b29c-4cd9-9d3d-ea2b92af3e9d",
        "timestamp": "2026-11-26T09:58:31.381067Z",
        "ingestedAt": "2026-11-26T10:05:00.000000Z",
        "app": "Microsoft Azure",
        "tenantId": TENANT,
        "subscriptionId": SUB,
        "user": {
            "id": "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf",
            "upn": "rob@contoso.com",
            "name": "Rob Robertson",
            "type": "user",
            "appId": None,
        },
        "ipAddress": "198.51.100.23",
        "action": "Microsoft.Compute/virtualMachines/write",
        "actionName": "Create or Update Virtual Machine",
        "actionType": "write",
        "category": "Administrative",
        "status": "Succeeded",
        "subStatus": "Created",
        "resourceId": VM_ID,
        "resourceGroup": "rg-prod",
        "resourceProvider": "Microsoft.Compute",
        "resourceType": "Microsoft.Compute/virtualMachines",
        "correlationId": "b5768deb-836b-41cc-803e-3f4de2f9e40b",
        "operationId": "04e575f8-48d0-4c43-a8b3-78c4eb01d287",
        "level": "Informational",
    }
    body.update(changes)
    return body


def norm(event: dict[str, Any], subscription_id: str | None = SUB) -> Activity:
    return normalize_event(event, ingested_at=INGESTED, subscription_id=subscription_id)


# --------------------------------------------------------------------------------------------
# Real-shaped events, every field asserted
# --------------------------------------------------------------------------------------------


def test_user_in_the_portal_every_field() -> None:
    activity = norm(portal_user_event())
    assert activity.to_api() == expected_api()
    assert activity.timestamp == datetime(2026, 11, 26, 9, 58, 31, 381067, tzinfo=UTC)
    assert activity.ingested_at == INGESTED
    assert activity.user.app_id is None  # the portal's app id names the program, not the actor


def test_service_principal_app_only_token() -> None:
    api = norm(service_principal_event()).to_api()
    assert api["user"] == {
        "id": "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
        "upn": None,
        "name": None,
        "type": "servicePrincipal",
        "appId": "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
    }
    assert api["action"] == "Microsoft.Resources/subscriptions/resourceGroups/delete"
    assert api["actionType"] == "delete"
    assert api["ipAddress"] == "20.42.1.9"
    assert api["status"] == "Accepted"
    assert api["subStatus"] == "Accepted"
    assert api["resourceGroup"] == "rg-ci-1234"
    assert api["resourceProvider"] == "Microsoft.Resources"
    assert api["resourceType"] == "Microsoft.Resources/subscriptions/resourceGroups"
    assert api["tenantId"] == TENANT


def test_service_principal_without_idtyp_is_recognized_by_appid_and_guid_caller() -> None:
    event = service_principal_event()
    del event["claims"]["idtyp"]
    user = norm(event).user
    assert user.type == "servicePrincipal"
    assert user.id == "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    assert user.app_id == "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


def test_service_principal_without_object_id_falls_back_to_app_id() -> None:
    event = service_principal_event()
    del event["claims"][OID_URI]
    user = norm(event).user
    assert (user.type, user.id, user.app_id) == (
        "servicePrincipal",
        "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
    )


def test_managed_identity_with_idtyp_app_every_field() -> None:
    api = norm(managed_identity_event()).to_api()
    assert api["user"] == {
        "id": "1d2c3b4a-5f6e-4d7c-8b9a-0f1e2d3c4b5a",
        "upn": None,
        "name": "func-orders",
        "type": "managedIdentity",
        "appId": "6e5d4c3b-2a19-4f08-b7e6-d5c4b3a29181",
    }
    assert api["actionType"] == "action"
    assert api["action"] == "Microsoft.Storage/storageAccounts/listKeys/action"
    assert api["ipAddress"] == "40.112.1.1"


def test_user_assigned_managed_identity_named_after_its_resource() -> None:
    event = managed_identity_event()
    event["claims"]["xms_mirid"] = (
        f"/subscriptions/{SUB}/resourcegroups/rg-id/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/uami-deployer"
    )
    event["claims"]["name"] = "should not win"
    user = norm(event).user
    assert (user.type, user.name) == ("managedIdentity", "uami-deployer")


def test_managed_identity_takes_precedence_over_upn() -> None:
    event = managed_identity_event()
    event["claims"][UPN_URI] = "odd@contoso.com"
    user = norm(event).user
    assert user.type == "managedIdentity"
    assert user.app_id == "6e5d4c3b-2a19-4f08-b7e6-d5c4b3a29181"
    assert user.upn == "odd@contoso.com"


def test_user_takes_precedence_over_app_only() -> None:
    event = service_principal_event()
    event["claims"][UPN_URI] = "svc@contoso.com"
    user = norm(event).user
    assert (user.type, user.upn, user.app_id) == ("user", "svc@contoso.com", None)


def test_system_caller_without_claims_is_unknown_with_caller_as_id() -> None:
    api = norm(recovery_services_event()).to_api()
    assert api["user"] == {
        "id": "Microsoft.RecoveryServices",
        "upn": None,
        "name": None,
        "type": "unknown",
        "appId": None,
    }
    assert api["tenantId"] is None
    assert api["ipAddress"] is None
    assert api["actionType"] == "write"
    assert api["resourceGroup"] == "rg-backup"


def test_appid_with_non_guid_caller_is_unknown() -> None:
    event = service_principal_event()
    del event["claims"]["idtyp"]
    event["caller"] = "Microsoft.Automation"
    user = norm(event).user
    assert (user.type, user.id, user.app_id) == (
        "unknown",
        "Microsoft.Automation",
        "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
    )


@pytest.mark.parametrize("variant", ["missing", "null", "empty"])
def test_neither_caller_nor_claims_has_no_user_id(variant: str) -> None:
    event = recovery_services_event()
    if variant == "missing":
        del event["caller"]
    elif variant == "null":
        event["caller"] = None
        event["claims"] = None
    else:
        event["caller"] = ""
        event["claims"] = {}
    user = norm(event).user
    assert user.model_dump(by_alias=True) == {
        "id": None,
        "upn": None,
        "name": None,
        "type": "unknown",
        "appId": None,
    }


def test_user_by_caller_alone() -> None:
    event = recovery_services_event()
    event["caller"] = "alice@contoso.com"
    user = norm(event).user
    assert user.model_dump(by_alias=True) == {
        "id": "alice@contoso.com",
        "upn": "alice@contoso.com",
        "name": None,
        "type": "user",
        "appId": None,
    }


def test_user_without_object_id_is_keyed_by_upn_not_by_the_client_app() -> None:
    event = portal_user_event()
    del event["claims"][OID_URI]
    user = norm(event).user
    assert user.id == "rob@contoso.com"
    assert user.app_id is None


def test_user_by_upn_claim_with_guid_caller() -> None:
    event = portal_user_event()
    event["caller"] = "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf"
    user = norm(event).user
    assert (user.type, user.upn, user.id) == ("user", "rob@contoso.com", "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf")


def test_short_claim_names_of_v2_tokens() -> None:
    event = recovery_services_event()
    event["caller"] = None
    event["claims"] = {
        "oid": "oid-1",
        "upn": "eve@contoso.com",
        "given_name": "Eve",
        "family_name": "Adams",
        "tid": TENANT,
    }
    activity = norm(event)
    assert activity.user.model_dump(by_alias=True) == {
        "id": "oid-1",
        "upn": "eve@contoso.com",
        "name": "Eve Adams",
        "type": "user",
        "appId": None,
    }
    assert activity.tenant_id == TENANT  # the event has no tenantId: the token's tenant


def test_event_without_http_request_uses_ipaddr_claim() -> None:
    event = portal_user_event()
    del event["httpRequest"]
    assert norm(event).ip_address == "203.0.113.77"


@pytest.mark.parametrize("http_request", [None, {}, {"clientIpAddress": ""}, {"clientIpAddress": None}, "10.0.0.1"])
def test_ipaddr_claim_when_http_request_has_no_address(http_request: Any) -> None:
    event = portal_user_event()
    event["httpRequest"] = http_request
    assert norm(event).ip_address == "203.0.113.77"


def test_no_ip_anywhere_is_null() -> None:
    event = portal_user_event()
    del event["httpRequest"]
    del event["claims"]["ipaddr"]
    assert norm(event).ip_address is None


def test_given_name_and_surname_when_no_name_claim() -> None:
    event = portal_user_event()
    del event["claims"]["name"]
    assert norm(event).user.name == "Rob Robertson"
    del event["claims"][GIVEN_URI]
    assert norm(event).user.name == "Robertson"
    event["claims"][GIVEN_URI] = "Rob"
    del event["claims"][SURNAME_URI]
    assert norm(event).user.name == "Rob"
    del event["claims"][GIVEN_URI]
    # the xmlsoap .../claims/name holds the UPN in real events: it is not a display name
    assert event["claims"][NAME_URI] == "rob@contoso.com"
    assert norm(event).user.name is None


def nothing_known(event_id: str, timestamp: str) -> dict[str, Any]:
    """The activity of an event whose fields are all missing or empty, but its id and time."""
    return {
        "id": event_id,
        "timestamp": timestamp,
        "ingestedAt": "2026-11-26T10:05:00.000000Z",
        "app": "Microsoft Azure",
        "tenantId": None,
        "subscriptionId": SUB,
        "user": {"id": None, "upn": None, "name": None, "type": "unknown", "appId": None},
        "ipAddress": None,
        "action": None,
        "actionName": None,
        "actionType": "other",
        "category": None,
        "status": None,
        "subStatus": None,
        "resourceId": None,
        "resourceGroup": None,
        "resourceProvider": None,
        "resourceType": None,
        "correlationId": None,
        "operationId": None,
        "level": None,
    }


def test_empty_strings_become_null_everywhere() -> None:
    event = portal_user_event()
    for key in ("tenantId", "resourceGroupName", "resourceId", "correlationId", "operationId", "level"):
        event[key] = ""
    for key in ("category", "status", "subStatus", "resourceProviderName", "resourceType"):
        event[key] = _loc("", "")
    event["operationName"] = {"value": "", "localizedValue": "  "}
    event["caller"] = ""
    event["httpRequest"]["clientIpAddress"] = ""
    for key in list(event["claims"]):
        event["claims"][key] = ""
    api = norm(event).to_api()
    assert api == nothing_known("d0d36f97-b29c-4cd9-9d3d-ea2b92af3e9d", "2026-11-26T09:58:31.381067Z")


def test_event_with_only_id_and_timestamp() -> None:
    event = {"eventDataId": "only", "eventTimestamp": "2026-11-26T10:00:00Z"}
    api = norm(event).to_api()
    assert api == nothing_known("only", "2026-11-26T10:00:00.000000Z")


@pytest.mark.parametrize(
    "key",
    ["category", "status", "subStatus", "resourceProviderName", "resourceType", "operationName", "httpRequest"],
)
def test_missing_or_null_field_is_null(key: str) -> None:
    event = portal_user_event()
    del event[key]
    missing = norm(event).to_api()
    event[key] = None
    assert norm(event).to_api() == missing
    api_key = {
        "resourceProviderName": "resourceProvider",
        "operationName": "action",
        "httpRequest": "ipAddress",
    }.get(key, key)
    if key == "httpRequest":
        assert missing["ipAddress"] == "203.0.113.77"  # falls back to the claim
    elif key in ("resourceProviderName", "resourceType"):  # read from the resource ID instead
        assert missing[api_key] == expected_api()[api_key]
    else:
        assert missing[api_key] is None


@pytest.mark.parametrize("sub_status", [_loc("", ""), {"value": ""}, {"localizedValue": "x"}, {}, None])
def test_empty_sub_status_is_null(sub_status: Any) -> None:
    event = service_principal_event()
    event["subStatus"] = sub_status
    assert norm(event).sub_status is None


def test_failed_event_keeps_sub_status() -> None:
    event = portal_user_event()
    event["status"] = _loc("Failed")
    event["subStatus"] = _loc("Forbidden", "Forbidden (HTTP Status Code: 403)")
    event["level"] = "Error"
    activity = norm(event)
    assert (activity.status, activity.sub_status, activity.level) == ("Failed", "Forbidden", "Error")


def test_wrong_types_never_crash() -> None:
    event = portal_user_event()
    event["caller"] = 12345
    event["claims"]["ipaddr"] = None
    event["claims"]["name"] = ["Rob"]
    event["claims"]["iat"] = 1795687000
    event["operationName"] = "Microsoft.Compute/virtualMachines/delete"
    event["status"] = ["Succeeded"]
    event["resourceGroupName"] = {"name": "rg"}
    event["level"] = 4
    event["httpRequest"] = {"clientIpAddress": ["198.51.100.23"], "method": "PUT"}
    activity = norm(event)
    assert activity.user.type == "user"  # the upn claim survives its neighbours' bad types
    assert activity.user.upn == "rob@contoso.com"
    assert activity.user.name == "Rob Robertson"  # the broken name claim is dropped: given + surname
    assert activity.ip_address is None  # neither source usable
    assert activity.action == "Microsoft.Compute/virtualMachines/delete"  # a bare string is the value
    assert activity.action_name is None
    assert activity.action_type == "delete"
    assert activity.status is None
    assert activity.resource_group is None
    assert activity.level == "4"


def test_claims_that_are_not_an_object_are_ignored() -> None:
    event = portal_user_event()
    event["caller"] = "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    event["claims"] = "appid=1;idtyp=app"
    user = norm(event).user
    assert user.model_dump(by_alias=True) == {
        "id": "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
        "upn": None,
        "name": None,
        "type": "unknown",
        "appId": None,
    }


def test_normalizing_does_not_touch_the_raw_event() -> None:
    event = portal_user_event()
    event["status"] = ["broken"]
    event["claims"]["bad"] = None
    before = copy.deepcopy(event)
    norm(event)
    assert event == before


# --------------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-26T10:00:00.1234567Z", datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-26T10:00:00.9999999Z", datetime(2026, 11, 26, 10, 0, 0, 999999, tzinfo=UTC)),
        ("2026-11-26T10:00:00.123456789Z", datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-26T10:00:00.5z", datetime(2026, 11, 26, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-26t10:00:00z", datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-26T12:30:00.1234567+02:30", datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-26T02:00:00.0000001-08:00", datetime(2026, 11, 26, 10, 0, 0, 0, tzinfo=UTC)),
        ("2026-11-27T01:00:00+15:00", datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-26T10:00:00", datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-26 10:00:00.1234567", datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)),
        ("  2026-11-26T10:00:00Z ", datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)),
    ],
)
def test_event_timestamps_become_utc(raw: str, expected: datetime) -> None:
    event = portal_user_event()
    event["eventTimestamp"] = raw
    activity = norm(event)
    assert activity.timestamp == expected
    assert activity.timestamp.utcoffset() == timedelta(0)
    assert activity.to_api()["timestamp"] == expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_non_utc_offset_moves_across_midnight() -> None:
    event = portal_user_event()
    event["eventTimestamp"] = "2026-12-31T23:30:00.7654321-05:00"
    assert norm(event).to_api()["timestamp"] == "2027-01-01T04:30:00.765432Z"


def test_ingested_at_is_utc_too() -> None:
    paris = timezone(timedelta(hours=1))
    activity = normalize_event(
        portal_user_event(), ingested_at=datetime(2026, 11, 26, 11, 5, tzinfo=paris), subscription_id=SUB
    )
    assert activity.ingested_at == INGESTED
    assert activity.ingested_at.tzinfo is UTC
    assert activity.to_api()["ingestedAt"] == "2026-11-26T10:05:00.000000Z"


def _seven_digits(moment: datetime, extra_digit: int = 7) -> str:
    """Azure's form: seven fractional digits, then the offset ("...:00.1234567+02:00")."""
    text = moment.isoformat(timespec="microseconds")
    return text[:26] + str(extra_digit) + text[26:]


@given(st.datetimes(timezones=st.timezones(), allow_imaginary=False), st.integers(0, 9))
def test_parse_timestamp_round_trips_any_offset(moment: datetime, extra_digit: int) -> None:
    text = _seven_digits(moment, extra_digit)
    try:
        expected = moment.astimezone(UTC)
    except OverflowError:
        assert parse_timestamp(text) is None
        return
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is UTC
    assert wire_time(expected).endswith("Z")
    assert parse_timestamp(wire_time(expected)) == expected


# --------------------------------------------------------------------------------------------
# Refused events
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"eventDataId": None}, "no eventDataId"),
        ({"eventDataId": ""}, "no eventDataId"),
        ({"eventDataId": "   "}, "no eventDataId"),
        ({"eventDataId": ["x"]}, "no eventDataId"),
        ({"eventTimestamp": None}, "no parseable eventTimestamp"),
        ({"eventTimestamp": ""}, "no parseable eventTimestamp"),
        ({"eventTimestamp": "yesterday"}, "no parseable eventTimestamp"),
        ({"eventTimestamp": "2026-13-45T10:00:00Z"}, "no parseable eventTimestamp"),
        ({"eventTimestamp": 1795687000}, "no parseable eventTimestamp"),
        ({"eventTimestamp": {"value": "2026-11-26T10:00:00Z"}}, "no parseable eventTimestamp"),
    ],
)
def test_invalid_events(changes: dict[str, Any], reason: str) -> None:
    event = portal_user_event()
    event.update(changes)
    with pytest.raises(InvalidEvent, match=reason) as raised:
        norm(event)
    assert isinstance(raised.value, ValueError)
    assert raised.value.reason == f"event has {reason}"


def test_event_missing_both_keys_is_invalid() -> None:
    event = portal_user_event()
    del event["eventDataId"]
    del event["eventTimestamp"]
    with pytest.raises(InvalidEvent):
        norm(event)


@pytest.mark.parametrize("raw", [[], "event", 42, None])
def test_non_object_event_is_invalid(raw: Any) -> None:
    with pytest.raises(InvalidEvent, match="not a JSON object"):
        normalize_event(raw, ingested_at=INGESTED, subscription_id=SUB)


# --------------------------------------------------------------------------------------------
# Subscription, tenant, action type
# --------------------------------------------------------------------------------------------


def test_subscription_from_the_event_first_then_the_argument() -> None:
    event = portal_user_event()
    assert norm(event, subscription_id=OTHER_SUB).subscription_id == SUB
    event["subscriptionId"] = ""
    assert norm(event, subscription_id=OTHER_SUB).subscription_id == OTHER_SUB
    del event["subscriptionId"]
    assert norm(event, subscription_id=OTHER_SUB).subscription_id == OTHER_SUB


def test_subscription_from_the_resource_path_as_a_last_resort() -> None:
    event = portal_user_event()
    del event["subscriptionId"]
    assert norm(event, subscription_id=None).subscription_id == SUB
    del event["resourceId"]
    assert norm(event, subscription_id=None).subscription_id == SUB  # from the event's "id"
    del event["id"]
    with pytest.raises(InvalidEvent, match="no subscription"):
        norm(event, subscription_id=None)


def test_tenant_falls_back_to_the_token_tenant() -> None:
    event = portal_user_event()
    event["tenantId"] = ""
    event["claims"][TENANT_URI] = "11111111-2222-3333-4444-555555555555"
    assert norm(event).tenant_id == "11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("Microsoft.Compute/virtualMachines/write", "write"),
        ("Microsoft.Network/networkSecurityGroups/securityRules/delete", "delete"),
        ("Microsoft.Compute/virtualMachines/start/action", "action"),
        ("Microsoft.Resources/deployments/validate/action", "action"),
        ("Microsoft.Resources/subscriptions/resourceGroups/read", "read"),
        ("MICROSOFT.STORAGE/STORAGEACCOUNTS/WRITE", "write"),
        ("Microsoft.Authorization/policies/audit/Action", "action"),
        ("Microsoft.Authorization/policies/auditIfNotExists", "other"),
        ("Microsoft.Resourcehealth/healthevent/Activated/action", "action"),
        ("Microsoft.Resources/checkPolicyCompliance", "other"),
        ("write", "write"),
        ("writes", "other"),
        ("", "other"),
        (None, "other"),
    ],
)
def test_action_type(operation: str | None, expected: str) -> None:
    assert action_type_of(operation) == expected
    if operation:
        event = portal_user_event()
        event["operationName"] = _loc(operation)
        assert norm(event).action_type == expected


def test_identify_is_usable_on_its_own() -> None:
    assert identify("Microsoft.RecoveryServices", None).model_dump(by_alias=True) == {
        "id": "Microsoft.RecoveryServices",
        "upn": None,
        "name": None,
        "type": "unknown",
        "appId": None,
    }
    assert identify("3f2504e0-4f89-41d3-9a0c-0305e82c3301", {"idtyp": "APP"}).type == "servicePrincipal"
    assert identify("{3F2504E0-4F89-41D3-9A0C-0305E82C3301}", {"appid": "x"}).type == "servicePrincipal"
    assert identify("3f2504e0-4f89-41d3-9a0c", {"appid": "x"}).type == "unknown"


# --------------------------------------------------------------------------------------------
# Hypothesis: arbitrary JSON-ish input never crashes
# --------------------------------------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.sampled_from(["", " "])
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
KNOWN_CLAIMS = [
    UPN_URI,
    OID_URI,
    GIVEN_URI,
    SURNAME_URI,
    NAME_URI,
    TENANT_URI,
    "upn",
    "oid",
    "tid",
    "name",
    "appid",
    "azp",
    "idtyp",
    "xms_mirid",
    "ipaddr",
    "given_name",
    "family_name",
]
claim_values = st.one_of(
    json_scalars,
    st.just("app"),
    st.just("3f2504e0-4f89-41d3-9a0c-0305e82c3301"),
    st.just("a@b"),
    st.just(FUNC_ID),
    st.just("/"),
)
claims_strategy = json_values | st.dictionaries(st.sampled_from(KNOWN_CLAIMS) | st.text(max_size=5), claim_values)
localizable = json_values | st.fixed_dictionaries(
    {}, optional={"value": json_scalars | st.just("A/b/write"), "localizedValue": json_scalars}
)
EVENT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "authorization": json_values | st.fixed_dictionaries({}, optional={"action": json_scalars, "scope": json_scalars}),
    "caller": json_scalars | st.sampled_from(["x@y", "3f2504e0-4f89-41d3-9a0c-0305e82c3301", "Microsoft.Foo"]),
    "channels": json_values,
    "claims": claims_strategy,
    "correlationId": json_values,
    "description": json_values,
    "eventName": localizable,
    "category": localizable,
    "httpRequest": json_values
    | st.fixed_dictionaries({}, optional={"clientIpAddress": json_scalars, "method": json_scalars}),
    "id": json_values | st.just(f"/subscriptions/{SUB}/events/x"),
    "level": json_values,
    "operationId": json_values,
    "operationName": localizable,
    "properties": json_values,
    "resourceGroupName": json_values,
    "resourceId": json_values | st.just("/subscriptions/"),
    "resourceProviderName": localizable,
    "resourceType": localizable,
    "status": localizable,
    "subStatus": localizable,
    "submissionTimestamp": json_values,
    "subscriptionId": json_values,
    "tenantId": json_values,
}
event_shaped = st.fixed_dictionaries({}, optional=EVENT_FIELDS)
anything_dict = st.dictionaries(st.text(max_size=20), json_values, max_size=8)
valid_timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.timezones()
).map(_seven_digits)


def _no_blank_strings(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_no_blank_strings(item) for item in value.values())
    return not (isinstance(value, str) and not value.strip())


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(event_shaped, anything_dict),
    event_data_id=st.text(min_size=1, max_size=40).filter(lambda text: text.strip() != ""),
    timestamp=valid_timestamps,
    subscription_id=st.sampled_from([SUB, None]),
)
def test_arbitrary_events_never_crash(
    body: dict[str, Any], event_data_id: str, timestamp: str, subscription_id: str | None
) -> None:
    event = {**body, "eventDataId": event_data_id, "eventTimestamp": timestamp}
    before = copy.deepcopy(event)
    try:
        activity = normalize_event(event, ingested_at=INGESTED, subscription_id=subscription_id)
    except InvalidEvent as error:
        # the only refusal left possible: nothing names a subscription
        assert subscription_id is None
        assert error.reason == "event names no subscription and none was given"
        return
    assert event == before or json.dumps(event, sort_keys=True, default=str) == json.dumps(
        before, sort_keys=True, default=str
    )  # untouched (NaN != NaN, hence the second comparison)
    assert activity.id == event_data_id
    assert activity.timestamp == parse_timestamp(timestamp)
    assert activity.timestamp.tzinfo is UTC
    assert activity.user.type in {"user", "servicePrincipal", "managedIdentity", "unknown"}
    assert activity.action_type in {"write", "delete", "action", "read", "other"}
    if activity.user.type == "user":
        assert activity.user.app_id is None
    api = activity.to_api()
    assert api["timestamp"].endswith("Z")
    assert _no_blank_strings({key: value for key, value in api.items() if key != "id"})
    assert Activity.model_validate(api) == activity
    json.dumps(api)  # serializable


# --------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------


def _page(events: list[Any], next_link: str | None = None) -> bytes:
    body: dict[str, Any] = {"value": events}
    if next_link is not None:
        body["nextLink"] = next_link
    return json.dumps(body).encode()


NEXT = (
    "https://management.azure.com/subscriptions/8c1a5e4e-2d2b-4d41-9a52-0a7a1ef0b001/providers/"
    "Microsoft.Insights/eventtypes/management/values?api-version=2015-04-01&%24filter=eventTimestamp"
    "+ge+%272026-11-26T09%3A00%3A00Z%27&%24skipToken=eyJuZXh0IjoiMjAwIn0%3D"
)


def test_parse_page_with_next_link(caplog: pytest.LogCaptureFixture) -> None:
    broken = portal_user_event()
    broken["eventTimestamp"] = "not a time"
    events: list[Any] = [
        portal_user_event(),
        service_principal_event(),
        broken,
        "not an event",
        managed_identity_event(),
        recovery_services_event(),
    ]
    with caplog.at_level(logging.WARNING, logger="ingestion.normalize"):
        page = parse_page(_page(events, NEXT), ingested_at=INGESTED, subscription_id=SUB)
    pairs, next_link, skipped = page.items, page.next_link, list(page.invalid)
    assert next_link == NEXT
    assert page.skipped == 2 == len(events) - len(pairs)
    assert [activity.id for _, activity in pairs] == [
        "d0d36f97-b29c-4cd9-9d3d-ea2b92af3e9d",
        "5f3e0a12-7c44-4b8e-9a36-3b2a9c1d0e11",
        "77aa11bb-22cc-4d33-8e44-55ff66aa77bb",
        "c3d4e5f6-0718-4293-a4b5-c6d7e8f90a1b",
    ]
    assert [activity.user.type for _, activity in pairs] == ["user", "servicePrincipal", "managedIdentity", "unknown"]
    assert [raw for raw, _ in pairs] == [events[0], events[1], events[4], events[5]]  # originals, unchanged
    assert pairs[0][0]["eventTimestamp"] == "2026-11-26T09:58:31.3810679Z"  # all 7 digits kept in raw
    assert pairs[0][1].to_api() == expected_api()
    assert [(item.position, item.event_data_id) for item in skipped] == [
        (2, "d0d36f97-b29c-4cd9-9d3d-ea2b92af3e9d"),
        (3, None),
    ]
    assert "no parseable eventTimestamp" in skipped[0].reason
    assert skipped[1].raw == "not an event"
    assert "Skipped 2 of 6 Activity Log events" in caplog.text


def test_parse_page_last_page() -> None:
    pairs, next_link, skipped, invalid, _ = parse_page(_page([portal_user_event()]), ingested_at=INGESTED)
    assert next_link is None and skipped == 0 and invalid == ()
    assert len(pairs) == 1
    assert pairs[0][1].subscription_id == SUB


@pytest.mark.parametrize(
    ("body", "expected_next"),
    [
        (b'{"value": [], "nextLink": null}', None),
        (b'{"value": [], "nextLink": ""}', None),
        (b'{"nextLink": "https://next"}', "https://next"),
        (b'{"value": null}', None),
        (b"{}", None),
    ],
)
def test_parse_page_empty_pages(body: bytes, expected_next: str | None) -> None:
    assert parse_page(body, ingested_at=INGESTED) == ParsedPage([], expected_next, 0, ())


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>502 Bad Gateway</html>", b"[]", b'"value"', b'{"value": {}}', b'{"value": [], "nextLink": 5}'],
)
def test_parse_page_rejects_what_is_not_a_page(body: bytes) -> None:
    with pytest.raises(InvalidPage):
        parse_page(body, ingested_at=INGESTED)


def test_parse_page_uses_subscription_argument_and_accepts_str() -> None:
    event = recovery_services_event()
    del event["subscriptionId"]
    del event["resourceId"]
    del event["id"]
    pairs = parse_page(json.dumps({"value": [event]}), ingested_at=INGESTED, subscription_id=OTHER_SUB).items
    assert pairs[0][1].subscription_id == OTHER_SUB


def test_parse_page_logs_events_it_cannot_normalize(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ingestion.normalize"):
        page = parse_page(_page([{"eventDataId": "x"}]), ingested_at=INGESTED, subscription_id=SUB)
    assert page.items == [] and page.skipped == 1 and len(page.invalid) == 1
    assert "Skipped 1 of 1" in caplog.text


# --------------------------------------------------------------------------------------------
# Raw models
# --------------------------------------------------------------------------------------------


def test_raw_event_model_keeps_unknown_fields_and_reads_both_spellings() -> None:
    event = ActivityLogEvent.model_validate(portal_user_event())
    assert event.event_data_id == "d0d36f97-b29c-4cd9-9d3d-ea2b92af3e9d"
    assert event.operation_name is not None
    assert event.operation_name.localized_value == "Create or Update Virtual Machine"
    assert event.http_request is not None
    assert event.http_request.client_ip_address == "198.51.100.23"
    assert event.event_timestamp == datetime(2026, 11, 26, 9, 58, 31, 381067, tzinfo=UTC)
    assert event.claims is not None
    assert event.claims["iat"] == "1795687000"
    assert event.model_extra == {"relatedEvents": []}
    by_name = ActivityLogEvent(event_data_id="x", operation_name={"value": "a/read"})
    assert by_name.operation_name is not None
    assert by_name.operation_name.value == "a/read"


def test_raw_event_model_drops_only_what_is_broken() -> None:
    event = ActivityLogEvent.model_validate(
        {
            "eventDataId": 7,
            "claims": {"a": "b", "n": None, "l": [1], "i": 3},
            "status": {"value": ["x"], "localizedValue": "Succeeded"},
            "httpRequest": 5,
            "resourceType": "Microsoft.Web/sites",
            "submissionTimestamp": "soon",
            "caller": True,
        }
    )
    assert event.event_data_id == "7"
    assert event.claims == {"a": "b", "i": "3"}
    assert event.status is not None
    assert (event.status.value, event.status.localized_value) == (None, "Succeeded")
    assert event.http_request is None
    assert event.resource_type is not None
    assert event.resource_type.value == "Microsoft.Web/sites"
    assert event.submission_timestamp is None
    assert event.caller is None


def test_activity_log_page_model() -> None:
    page = ActivityLogPage.model_validate_json(_page([portal_user_event(), service_principal_event()], NEXT))
    assert page.next_link == NEXT
    assert [event.caller for event in page.value] == ["rob@contoso.com", "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"]
    assert ActivityLogPage.model_validate({"value": []}).next_link is None


# --------------------------------------------------------------------------------------------
# Scope: only ARM activities
# --------------------------------------------------------------------------------------------

OTHER_CATEGORIES = ["Policy", "ServiceHealth", "ResourceHealth", "Alert", "Autoscale", "Security", "Recommendation"]


@pytest.mark.parametrize(
    "category",
    [
        _loc("Administrative"),
        _loc("administrative", "Administratif"),
        "Administrative",
        None,
        {"value": None},
        {"value": ""},
        {"localizedValue": "x"},
        {},
        42,
    ],
)
def test_administrative_or_no_category_is_an_arm_activity(category: Any) -> None:
    event = portal_user_event()
    event["category"] = category
    assert is_arm_activity(event)
    del event["category"]
    assert is_arm_activity(event) and is_arm_activity(ActivityLogEvent.model_validate(event))


@pytest.mark.parametrize("category", [*OTHER_CATEGORIES, "SomethingAddedLater", "policy"])
def test_every_other_category_is_not(category: str) -> None:
    event = portal_user_event()
    event["category"] = _loc(category)
    assert not is_arm_activity(event)
    assert not is_arm_activity(ActivityLogEvent.model_validate(event))
    event["category"] = category  # a plain string is read as the value, as the model does
    assert not is_arm_activity(event)


def test_parse_page_keeps_arm_activities_and_counts_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    events: list[Any] = []
    for category in OTHER_CATEGORIES:
        event = portal_user_event()
        event["eventDataId"] = f"other-{category}"
        event["category"] = _loc(category)
        events.append(event)
    no_category = service_principal_event()
    del no_category["category"]
    null_category = managed_identity_event()
    null_category["category"] = {"value": None}
    policy_without_id = {"category": _loc("Policy")}  # skipped for its category, not refused
    events += [portal_user_event(), no_category, null_category, policy_without_id, {"eventDataId": "no-time"}]
    with caplog.at_level(logging.DEBUG, logger="ingestion.normalize"):
        page = parse_page(_page(events), ingested_at=INGESTED, subscription_id=SUB)
    assert [activity.id for _, activity in page.items] == [
        "d0d36f97-b29c-4cd9-9d3d-ea2b92af3e9d",
        "5f3e0a12-7c44-4b8e-9a36-3b2a9c1d0e11",
        "77aa11bb-22cc-4d33-8e44-55ff66aa77bb",
    ]
    assert page.skipped == len(OTHER_CATEGORIES) + 2 == len(events) - len(page.items)
    assert [item.event_data_id for item in page.invalid] == ["no-time"]
    assert "8 Activity Log events of subscription" in caplog.text and "2 Policy" in caplog.text


def test_a_page_of_policy_events_only() -> None:
    event = portal_user_event()
    event["category"] = _loc("Policy")
    page = parse_page(_page([event, event], NEXT), ingested_at=INGESTED)
    at = parse_timestamp(event["eventTimestamp"])
    assert at is not None
    assert page == ParsedPage([], NEXT, 2, (), (at, at))
    assert (page.skipped_after(at - timedelta(seconds=1)), page.skipped_after(at)) == (2, 0)


# --------------------------------------------------------------------------------------------
# Users without a UPN
# --------------------------------------------------------------------------------------------

MSA_OID = "5a0e6f25-89a2-4c49-a1a1-0a8d5f2e7c11"


def personal_account_claims(**extra: str) -> dict[str, str]:
    """A personal Microsoft account (or a guest) in a tenant: idtyp user, no upn claim."""
    return {
        "aud": "https://management.core.windows.net/",
        "appid": PORTAL_APP,
        "appidacr": "2",
        "http://schemas.microsoft.com/identity/claims/identityprovider": "live.com",
        "idtyp": "user",
        "ipaddr": "203.0.113.9",
        "name": "Pat Personal",
        OID_URI: MSA_OID,
        NAME_URI: "live.com#pat@outlook.com",
        "unique_name": "live.com#pat@outlook.com",
        TENANT_URI: TENANT,
        "ver": "1.0",
        **extra,
    }


def test_personal_account_with_email_caller_is_a_user() -> None:
    user = identify("pat@outlook.com", personal_account_claims())
    assert user.model_dump(by_alias=True) == {
        "id": MSA_OID,
        "upn": "pat@outlook.com",
        "name": "Pat Personal",
        "type": "user",
        "appId": None,
    }


def test_idtyp_user_with_a_guid_caller_is_a_user_not_a_service_principal() -> None:
    user = identify(MSA_OID, personal_account_claims())
    assert (user.type, user.id, user.upn, user.app_id) == ("user", MSA_OID, None, None)
    without_oid = {k: v for k, v in personal_account_claims().items() if k != OID_URI}
    assert identify(MSA_OID, without_oid).id == MSA_OID  # the caller, never the client app


def test_idtyp_user_without_caller_or_object_id_has_no_id() -> None:
    claims = {k: v for k, v in personal_account_claims().items() if k != OID_URI}
    user = identify(None, claims)
    assert (user.type, user.id) == ("user", None)


def test_managed_identity_still_comes_before_idtyp_user() -> None:
    user = identify(MSA_OID, personal_account_claims(xms_mirid=FUNC_ID))
    assert (user.type, user.name) == ("managedIdentity", "func-orders")


@pytest.mark.parametrize("idtyp", ["app", "APP", "device", ""])
def test_other_idtyp_values_are_not_users(idtyp: str) -> None:
    user = identify(MSA_OID, {"idtyp": idtyp, "appid": PORTAL_APP, OID_URI: MSA_OID})
    assert user.type == "servicePrincipal"


# --------------------------------------------------------------------------------------------
# Resource types: cascaded child operations
# --------------------------------------------------------------------------------------------

RG_ID = f"/subscriptions/{SUB}/resourceGroups/rg-ci-1234"


@pytest.mark.parametrize(
    ("resource_id", "expected"),
    [
        (VM_ID, "Microsoft.Compute/virtualMachines"),
        (f"{VM_ID}/extensions/CustomScript", "Microsoft.Compute/virtualMachines/extensions"),
        (f"{VM_ID}/providers/Microsoft.Authorization/locks/no-delete", "Microsoft.Authorization/locks"),
        (
            f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/x",
            "Microsoft.Authorization/roleAssignments",
        ),
        (RG_ID, "Microsoft.Resources/subscriptions/resourceGroups"),
        (RG_ID.upper() + "/", "Microsoft.Resources/subscriptions/resourceGroups"),
        (f"/subscriptions/{SUB}", "Microsoft.Resources/subscriptions"),
        (f"/SUBSCRIPTIONS/{SUB}/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM1", "MICROSOFT.COMPUTE/VIRTUALMACHINES"),
        (f"/subscriptions/{SUB}/resourceGroups", None),
        ("/providers/Microsoft.Management/managementGroups/mg1", "Microsoft.Management/managementGroups"),
        ("", None),
        ("not a resource id", None),
        (None, None),
    ],
)
def test_resource_type_of_id(resource_id: str | None, expected: str | None) -> None:
    assert resource_type_of_id(resource_id) == expected


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("Microsoft.Compute/virtualMachines/delete", "Microsoft.Compute/virtualMachines"),
        ("Microsoft.Compute/virtualMachines/start/action", "Microsoft.Compute/virtualMachines"),
        ("Microsoft.Insights/AlertRules/Resolved/Action", "Microsoft.Insights/AlertRules"),
        ("Microsoft.ServiceHealth/incident/action", None),
        ("Microsoft.Resources/subscriptions/resourceGroups/delete", "Microsoft.Resources/subscriptions/resourceGroups"),
        ("write", None),
        (None, None),
    ],
)
def test_resource_type_of_operation(operation: str | None, expected: str | None) -> None:
    assert resource_type_of_operation(operation) == expected


def cascaded_child_event(operation: str, resource_id: str) -> dict[str, Any]:
    """One delete of a resource inside a deleted resource group, as ARM logs it: the parent's
    authorization action, resource type and provider, and no httpRequest."""
    event = service_principal_event()
    event.pop("httpRequest")
    event["eventDataId"] = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
    event["operationName"] = _loc(operation)
    event["resourceId"] = resource_id
    event["authorization"] = {"action": "Microsoft.Resources/subscriptions/resourceGroups/delete", "scope": RG_ID}
    return event


def test_cascaded_child_delete_names_its_own_type() -> None:
    vm = f"{RG_ID}/providers/Microsoft.Compute/virtualMachines/vm-ci-01"
    activity = norm(cascaded_child_event("Microsoft.Compute/virtualMachines/delete", vm))
    assert activity.resource_type == "Microsoft.Compute/virtualMachines"
    assert activity.resource_provider == "Microsoft.Compute"
    assert (activity.action, activity.action_type, activity.resource_id) == (
        "Microsoft.Compute/virtualMachines/delete",
        "delete",
        vm,
    )
    assert activity.ip_address is None and activity.user.type == "servicePrincipal"


def test_cascaded_child_keeps_the_operation_spelling_and_a_matching_provider() -> None:
    rule = f"{RG_ID.lower()}/providers/microsoft.network/networksecuritygroups/nsg/securityrules/allow-https"
    event = cascaded_child_event("Microsoft.Network/networkSecurityGroups/securityRules/delete", rule)
    event["resourceProviderName"] = _loc("MICROSOFT.NETWORK")
    activity = norm(event)
    assert activity.resource_type == "Microsoft.Network/networkSecurityGroups/securityRules"
    assert activity.resource_provider == "MICROSOFT.NETWORK"


def test_the_parent_delete_itself_is_unchanged() -> None:
    activity = norm(service_principal_event())
    assert activity.resource_type == "Microsoft.Resources/subscriptions/resourceGroups"
    assert activity.resource_provider == "Microsoft.Resources"


def test_an_operation_on_another_type_than_the_resource_keeps_the_event_type() -> None:
    # Tags written on a VM: the operation is on Microsoft.Resources/tags, not on the VM.
    event = portal_user_event()
    event["operationName"] = _loc("Microsoft.Resources/tags/write")
    event["resourceType"] = _loc("Microsoft.Resources/tags")
    event["resourceProviderName"] = _loc("Microsoft.Resources")
    activity = norm(event)
    assert (activity.resource_type, activity.resource_provider) == ("Microsoft.Resources/tags", "Microsoft.Resources")


def test_event_without_type_or_provider_reads_them_from_the_resource_id() -> None:
    event = portal_user_event()
    del event["resourceType"], event["resourceProviderName"]
    event["operationName"] = _loc("Microsoft.Resources/tags/write")
    activity = norm(event)
    assert (activity.resource_type, activity.resource_provider) == (
        "Microsoft.Compute/virtualMachines",
        "Microsoft.Compute",
    )
    del event["resourceId"]
    activity = norm(event)
    assert (activity.resource_type, activity.resource_provider) == ("Microsoft.Resources/tags", "Microsoft.Resources")
