"""Real-shaped Activity Log events for tests that do not need the emulator."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any

USERS = [
    ("alice@contoso.com", "Alice Smith", "11111111-1111-1111-1111-111111111111", "203.0.113.10"),
    ("bob@contoso.com", "Bob Jones", "22222222-2222-2222-2222-222222222222", "203.0.113.20"),
    ("carol@contoso.com", "Carol White", "33333333-3333-3333-3333-333333333333", "198.51.100.7"),
]
OPERATIONS = [
    "Microsoft.Compute/virtualMachines/write",
    "Microsoft.Storage/storageAccounts/delete",
    "Microsoft.Network/networkSecurityGroups/write",
    "Microsoft.Compute/virtualMachines/restart/action",
]


def ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def make_event(
    subscription_id: str,
    at: datetime,
    *,
    rng: random.Random | None = None,
    user: tuple[str, str, str, str] | None = None,
    operation: str | None = None,
    status: str = "Succeeded",
) -> dict[str, Any]:
    rng = rng or random.Random()
    upn, name, oid, ip = user or rng.choice(USERS)
    op = operation or rng.choice(OPERATIONS)
    event_id = str(uuid.UUID(int=rng.getrandbits(128)))
    rg = f"rg-{rng.randint(1, 5)}"
    provider_type = op.rsplit("/", 1)[0]
    resource = f"res{rng.randint(1, 9)}"
    resource_id = f"/subscriptions/{subscription_id}/resourceGroups/{rg}/providers/{provider_type}/{resource}"
    return {
        "authorization": {"action": op, "scope": resource_id},
        "caller": upn,
        "channels": "Operation",
        "claims": {
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": upn,
            "http://schemas.microsoft.com/identity/claims/objectidentifier": oid,
            "name": name,
            "ipaddr": ip,
        },
        "correlationId": str(uuid.UUID(int=rng.getrandbits(128))),
        "eventDataId": event_id,
        "eventName": {"value": "EndRequest", "localizedValue": "End request"},
        "category": {"value": "Administrative", "localizedValue": "Administrative"},
        "eventTimestamp": ts(at),
        "submissionTimestamp": ts(at + timedelta(seconds=30)),
        "id": f"{resource_id}/events/{event_id}/ticks/1",
        "level": "Informational",
        "operationId": str(uuid.UUID(int=rng.getrandbits(128))),
        "operationName": {"value": op, "localizedValue": op},
        "resourceGroupName": rg,
        "resourceProviderName": {"value": op.split("/")[0], "localizedValue": op.split("/")[0]},
        "resourceType": {"value": "/".join(op.split("/")[:2]), "localizedValue": ""},
        "resourceId": resource_id,
        "status": {"value": status, "localizedValue": status},
        "subStatus": {"value": "", "localizedValue": ""},
        "subscriptionId": subscription_id,
        "tenantId": "72f988bf-0000-0000-0000-000000000000",
        "httpRequest": {"clientRequestId": str(uuid.uuid4()), "clientIpAddress": ip, "method": "PUT"},
        "properties": {"statusCode": "OK"},
    }
