"""Benchmark: parsing an Activity Log page into activities, ours vs the azure-mgmt-monitor SDK.

Run with ``python -m bench.bench_parse``. It builds one realistic, deterministic page of 200
events (users in the portal and the CLI, service principals, managed identities, Azure's own
callers; start and end events sharing a correlationId; 7-digit timestamps; end events with a
response body) and times, on the same bytes:

* ``parse_page``: the JSON straight into our lenient pydantic models, then normalized;
* the SDK: ``EventDataCollection`` through the generated ``Deserializer`` (built once, the way
  ``MonitorManagementClient`` builds it, and fed the response bytes the way the client's pager
  does), then each ``EventData`` serialized back to its REST dict (which the store needs as the
  raw event anyway) and normalized by the same ``normalize_event``;
* the SDK deserialization alone, to show where the time goes.

It first checks that both paths produce the same activities. Options: ``--events N``,
``--seconds S`` (time budget per measurement, default 2).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.mgmt.monitor import models as sdk_models
from azure.mgmt.monitor._utils.serialization import Deserializer

from ingestion.models import Activity, parse_timestamp
from ingestion.normalize import normalize_event, parse_page

SUBSCRIPTION = "8c1a5e4e-2d2b-4d41-9a52-0a7a1ef0b001"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
INGESTED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)

CLIENT_APPS = {
    "portal": "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
    "cli": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
    "powershell": "1950a258-227b-4e31-a9cf-717495945fc2",
}
OPERATIONS = [
    ("Microsoft.Compute/virtualMachines/write", "Create or Update Virtual Machine"),
    ("Microsoft.Compute/virtualMachines/start/action", "Start Virtual Machine"),
    ("Microsoft.Compute/virtualMachines/delete", "Delete Virtual Machine"),
    ("Microsoft.Network/networkSecurityGroups/securityRules/write", "Create or Update Security Rule"),
    ("Microsoft.Storage/storageAccounts/listKeys/action", "List Storage Account Keys"),
    ("Microsoft.Resources/deployments/write", "Create Deployment"),
    ("Microsoft.Resources/subscriptions/resourceGroups/delete", "Delete Resource Group"),
    ("Microsoft.Authorization/roleAssignments/write", "Create role assignment"),
    ("Microsoft.KeyVault/vaults/write", "Update Key Vault"),
    ("Microsoft.Web/sites/restart/action", "Restart Web App"),
]
FIRST_NAMES = ["Rob", "Alice", "Mei", "Jonas", "Fatima", "Lucas", "Priya", "Olga", "Kwame", "Sofia"]
LAST_NAMES = ["Robertson", "Martin", "Chen", "Berg", "Haddad", "Silva", "Iyer", "Ivanova", "Mensah", "Rossi"]
SYSTEM_CALLERS = ["Microsoft.RecoveryServices", "Microsoft.Advisor", "Microsoft.Resources"]


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _seven_digits(moment: datetime, rng: random.Random) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + str(rng.randrange(10)) + "Z"


def _loc(value: str, localized: str | None = None) -> dict[str, str]:
    return {"value": value, "localizedValue": value if localized is None else localized}


def _principal(rng: random.Random, resource_group: str) -> tuple[str | None, dict[str, str] | None]:
    roll = rng.random()
    common = {
        "aud": "https://management.core.windows.net/",
        "iss": f"https://sts.windows.net/{TENANT}/",
        "iat": "1795687000",
        "nbf": "1795687000",
        "exp": "1795691230",
        "http://schemas.microsoft.com/identity/claims/tenantid": TENANT,
        "uti": "IdP3SUJGtkGlt7dDQVRPAA",
        "ver": "1.0",
    }
    if roll < 0.55:  # a person, through the portal, the CLI or PowerShell
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        upn = f"{first}.{last}@contoso.com".lower()
        claims = {
            **common,
            "http://schemas.microsoft.com/claims/authnclassreference": "1",
            "aio": "AVQAq/8YAAAA" + uuid.UUID(int=rng.getrandbits(128)).hex,
            "http://schemas.microsoft.com/claims/authnmethodsreferences": "pwd,mfa",
            "appid": rng.choice(list(CLIENT_APPS.values())),
            "appidacr": "0",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": first,
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname": last,
            "ipaddr": f"203.0.113.{rng.randrange(1, 255)}",
            "name": f"{first} {last}",
            "http://schemas.microsoft.com/identity/claims/objectidentifier": _guid(rng),
            "puid": f"1003{rng.getrandbits(48):012X}",
            "rh": "0.AAAAv4j5cvGGr0GRqy180BHbR0ZIf3kAutdPukPawfj2MBMBAAA.",
            "http://schemas.microsoft.com/identity/claims/scope": "user_impersonation",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier": uuid.UUID(
                int=rng.getrandbits(128)
            ).hex,
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name": upn,
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": upn,
            "wids": "62e90394-69f5-4237-9190-012177145e10",
            "xms_tcdt": "1289241547",
        }
        return upn, claims
    if roll < 0.75:  # a service principal with an app-only token
        object_id = _guid(rng)
        return object_id, {
            **common,
            "appid": _guid(rng),
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{TENANT}/",
            "idtyp": "app",
            "http://schemas.microsoft.com/identity/claims/objectidentifier": object_id,
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier": object_id,
        }
    if roll < 0.90:  # a managed identity
        object_id = _guid(rng)
        mirid = (
            f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{resource_group}/providers/"
            f"Microsoft.Web/sites/func-{rng.randrange(100)}"
        )
        return object_id, {
            **common,
            "appid": _guid(rng),
            "appidacr": "2",
            "idtyp": "app",
            "http://schemas.microsoft.com/identity/claims/objectidentifier": object_id,
            "xms_mirid": mirid,
            "xms_az_rid": mirid,
        }
    return rng.choice(SYSTEM_CALLERS), None  # Azure itself


def generate_events(count: int, seed: int = 20261126) -> list[dict[str, Any]]:
    """``count`` realistic Activity Log events: start/end pairs of operations, newest first."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    moment = START
    while len(events) < count:
        operation, localized = rng.choice(OPERATIONS)
        resource_group = f"rg-{rng.choice(['prod', 'dev', 'data', 'ci'])}-{rng.randrange(20)}"
        provider = operation.split("/", 1)[0]
        resource_type = operation.rsplit("/", 1)[0]
        if resource_type.endswith(("/start", "/listKeys", "/restart")):
            resource_type = resource_type.rsplit("/", 1)[0]
        resource_id = (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{resource_group}/providers/"
            f"{resource_type}/res-{rng.randrange(1000)}"
        )
        caller, claims = _principal(rng, resource_group)
        correlation_id, operation_id = _guid(rng), _guid(rng)
        http_request = (
            {"clientRequestId": _guid(rng), "clientIpAddress": f"198.51.100.{rng.randrange(1, 255)}", "method": "PUT"}
            if claims is not None and rng.random() < 0.8
            else None
        )
        failed = rng.random() < 0.1
        for phase in ("BeginRequest", "EndRequest"):
            moment += timedelta(milliseconds=rng.randrange(50, 4000))
            event_data_id = _guid(rng)
            end = phase == "EndRequest"
            event: dict[str, Any] = {
                "authorization": {
                    "action": operation,
                    "scope": resource_id,
                    "evidence": {"role": "Contributor", "roleAssignmentScope": f"/subscriptions/{SUBSCRIPTION}"},
                },
                "channels": "Operation",
                "correlationId": correlation_id,
                "description": "",
                "eventDataId": event_data_id,
                "eventName": _loc(phase, "End request" if end else "Begin request"),
                "category": _loc("Administrative"),
                "eventTimestamp": _seven_digits(moment, rng),
                "id": f"{resource_id}/events/{event_data_id}/ticks/{rng.getrandbits(59)}",
                "level": "Error" if end and failed else "Informational",
                "operationId": operation_id,
                "operationName": _loc(operation, localized),
                "resourceGroupName": resource_group,
                "resourceProviderName": _loc(provider),
                "resourceType": _loc(resource_type),
                "resourceId": resource_id,
                "status": _loc(("Failed" if failed else "Succeeded") if end else "Started"),
                "subStatus": _loc(("Forbidden" if failed else "Created") if end else ""),
                "submissionTimestamp": _seven_digits(moment + timedelta(seconds=rng.randrange(30, 600)), rng),
                "subscriptionId": SUBSCRIPTION,
                "tenantId": "" if rng.random() < 0.3 else TENANT,
                "properties": {
                    "eventCategory": "Administrative",
                    "entity": resource_id,
                    "message": operation,
                    "hierarchy": f"{TENANT}/{SUBSCRIPTION}",
                    **(
                        {
                            "statusCode": "Created",
                            "serviceRequestId": _guid(rng),
                            "responseBody": json.dumps(
                                {"id": resource_id, "location": "westeurope", "tags": {"env": resource_group}}
                            ),
                        }
                        if end
                        else {"requestbody": json.dumps({"location": "westeurope", "properties": {}})}
                    ),
                },
                "relatedEvents": [],
            }
            if caller is not None:
                event["caller"] = caller
            if claims is not None:
                event["claims"] = claims
            if http_request is not None:
                event["httpRequest"] = http_request
            events.append(event)
    events = events[:count]
    events.reverse()  # the API answers newest first
    return events


def activity_pages(count: int, *, ingested_at: datetime, first: int = 0) -> list[list[tuple[dict[str, Any], Activity]]]:
    """`count` parsed pages of 200 events, other events each (seeds first, first + 1, ...), each page
    ten minutes after the one before: what a pull of a busy subscription saves, page by page."""
    pages = []
    for number in range(first, first + count):
        events = generate_events(200, seed=number)
        for event in events:
            when = parse_timestamp(event["eventTimestamp"])
            assert when is not None
            event["eventTimestamp"] = (when + timedelta(minutes=10 * number)).isoformat().replace("+00:00", "Z")
        pages.append(parse_page(json.dumps({"value": events}).encode(), ingested_at=ingested_at).items)
    ids = {activity.id for page in pages for _, activity in page}
    assert len(ids) == 200 * count, "the pages must hold other events each"
    return pages


def make_page(count: int) -> bytes:
    next_link = (
        f"https://management.azure.com/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Insights/eventtypes/"
        "management/values?api-version=2015-04-01&%24filter=eventTimestamp+ge+%272026-11-26T09%3A00%3A00Z%27"
        "&%24skipToken=eyJuZXh0IjoiMjAwIn0%3D"
    )
    return json.dumps({"value": generate_events(count), "nextLink": next_link}).encode()


# ---------------------------------------------------------------------------------------------


_SDK = Deserializer({name: kind for name, kind in sdk_models.__dict__.items() if isinstance(kind, type)})


def ours(body: bytes) -> list[Activity]:
    page = parse_page(body, ingested_at=INGESTED, subscription_id=SUBSCRIPTION)
    return [activity for _, activity in page.items]


def sdk_only(body: bytes) -> list[Any]:
    collection = _SDK("EventDataCollection", body, "application/json")
    return list(collection.value)


def sdk_then_normalize(body: bytes) -> list[Activity]:
    collection = _SDK("EventDataCollection", body, "application/json")
    return [
        normalize_event(event.serialize(keep_readonly=True), ingested_at=INGESTED, subscription_id=SUBSCRIPTION)
        for event in collection.value
    ]


def measure(run: Callable[[bytes], list[Any]], body: bytes, seconds: float) -> tuple[float, float, int]:
    """Best and median seconds per page over the rounds that fit in ``seconds`` (at least 5)."""
    run(body)  # warm up
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(timings) < 5:
        started = time.perf_counter()
        run(body)
        timings.append(time.perf_counter() - started)
    return min(timings), statistics.median(timings), len(timings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200, help="events on the page (default 200)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget per measurement (default 2)")
    args = parser.parse_args(argv)

    body = make_page(args.events)
    mine, theirs = ours(body), sdk_then_normalize(body)
    if [a.to_api() for a in mine] != [a.to_api() for a in theirs]:
        print("the two paths disagree: benchmark void", file=sys.stderr)
        return 1
    kinds: dict[str, int] = {}
    for activity in mine:
        kinds[activity.user.type] = kinds.get(activity.user.type, 0) + 1

    print(f"page: {args.events} events, {len(body) / 1024:.0f} KiB, principals {kinds}")
    print(f"python {sys.version.split()[0]}; {args.seconds:g} s of timed rounds per row\n")
    rows = [
        ("parse_page (JSON -> pydantic models -> Activity)", ours),
        ("SDK EventDataCollection deserialize only", sdk_only),
        ("SDK deserialize + serialize + normalize_event", sdk_then_normalize),
    ]
    results = [(label, *measure(run, body, args.seconds)) for label, run in rows]

    best_ours, median_ours = results[0][1], results[0][2]
    print(f"{'path':<50} {'best ms':>8} {'median ms':>10} {'events/s':>9} {'vs parse_page':>14} {'rounds':>7}")
    print("-" * 103)
    for label, best, median, rounds in results:
        rate = args.events / best
        ratio = best / best_ours
        print(f"{label:<50} {best * 1000:>8.2f} {median * 1000:>10.2f} {rate:>9,.0f} {ratio:>13.1f}x {rounds:>7}")
    print(
        f"\nevents/s and ratios from the best round (least disturbed by other load); by the median, parse_page "
        f"is {results[2][2] / median_ours:.1f}x faster than the SDK path."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
