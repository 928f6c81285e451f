"""The activities and accounts API against real Azurite, called through the HTTP edge.

Storage is filled once per module through `ActivityStore.save` with real-shaped events over
three subscriptions, five identities (users, a service principal, an unknown caller) and five
days; every answer is compared with a brute-force expectation computed here from those events.
Tokens are real RS256 tokens checked by the real validator against a key made for the test.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import jwt
import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient
from cryptography.hazmat.primitives.asymmetric import rsa

from activities import tokens
from activities.layout import epoch_us, safe_key
from activities.reader import ActivityQueries
from activities.writer import ActivityStore
from activity_api import api
from core.auth import SigningKeys, TokenValidator
from core.clock import FakeClock
from core.http import handle_http
from core.runtime import Runtime
from core.settings import load_settings
from core.storage import Storage
from ingestion.models import Activity
from ingestion.normalize import normalize_event
from tests.support.events import USERS, make_event

pytestmark = pytest.mark.integration

TENANT = "72f988bf-0000-0000-0000-000000000000"
AUDIENCE = "api://azure-app-connector-test"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DAY0 = datetime(2026, 11, 20, tzinfo=UTC)
SUBS = [
    "aaaaaaaa-0000-0000-0000-000000000001",
    "bbbbbbbb-0000-0000-0000-000000000002",
    "cccccccc-0000-0000-0000-000000000003",
]
STATUSES = ["Succeeded", "Succeeded", "Succeeded", "Failed", "Started"]
TIE_AT = DAY0 + timedelta(days=2, hours=5, minutes=30, microseconds=123456)
SP_APP_ID = "44444444-4444-4444-4444-444444444444"
SP_OBJECT_ID = "55555555-5555-5555-5555-555555555555"
API_KEYS = {
    "id", "timestamp", "ingestedAt", "app", "tenantId", "subscriptionId", "user", "ipAddress", "action",
    "actionName", "actionType", "category", "status", "subStatus", "resourceId", "resourceGroup",
    "resourceProvider", "resourceType", "correlationId", "operationId", "level",
}  # fmt: skip


# --- tokens ------------------------------------------------------------------------------------

READER_OID = "5c0f9e8a-3b2d-4e71-9a6c-1d2e3f405162"
CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


class Issuer:
    """An Entra-like authority for the test: an RSA key, its JWKS, and tokens signed with it."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-" + uuid.uuid4().hex[:8]
        settings = self.settings = load_settings(
            {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AZURE_TENANT_ID": TENANT,
             "CONNECTOR_API_AUDIENCE": AUDIENCE}
        )  # fmt: skip
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        self.documents: dict[str, dict[str, Any]] = {
            settings.openid_configuration_url: {"issuer": settings.issuer, "jwks_uri": "https://login.test/jwks"},
            "https://login.test/jwks": {"keys": [jwk]},
        }

    def validator(self, clock: FakeClock) -> TokenValidator:
        keys = SigningKeys(self.settings.openid_configuration_url, lambda url: self.documents[url])
        return TokenValidator(keys=keys, issuer=self.settings.issuer, audience=AUDIENCE, tenant_id=TENANT, clock=clock)

    def token(self, *, key: Any = None, expires: datetime = NOW + timedelta(hours=1), **extra: Any) -> str:
        claims = {
            "iss": self.settings.issuer, "aud": AUDIENCE, "tid": TENANT, "oid": READER_OID,
            "upn": "reader@contoso.com", "scp": "Connector.Access", "azp": CLIENT_ID,
            "nbf": int((NOW - timedelta(minutes=5)).timestamp()),
            "exp": int(expires.timestamp()), **extra,
        }  # fmt: skip
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.kid})


# --- data --------------------------------------------------------------------------------------


def _service_principal(event: dict[str, Any]) -> dict[str, Any]:
    event["caller"] = SP_OBJECT_ID
    event["claims"] = {"appid": SP_APP_ID, "idtyp": "app", "oid": SP_OBJECT_ID, "ipaddr": "192.0.2.50"}
    event["httpRequest"]["clientIpAddress"] = "192.0.2.50"
    return event


def _unknown_caller(event: dict[str, Any]) -> dict[str, Any]:
    event["caller"] = "Microsoft.RecoveryServices"
    event["claims"] = {}
    event.pop("httpRequest")
    return event


def _events() -> dict[str, list[tuple[dict[str, Any], Activity]]]:
    rng = random.Random(20261126)
    per_sub: dict[str, list[tuple[dict[str, Any], Activity]]] = {sub: [] for sub in SUBS}

    def add(sub: str, raw: dict[str, Any]) -> None:
        per_sub[sub].append((raw, normalize_event(raw, ingested_at=NOW)))

    for sub in SUBS:
        for _ in range(110):
            at = DAY0 + timedelta(seconds=rng.randrange(5 * 86400), microseconds=rng.randrange(1_000_000))
            add(sub, make_event(sub, at, rng=rng, status=rng.choice(STATUSES)))
        for _ in range(6):
            at = DAY0 + timedelta(seconds=rng.randrange(5 * 86400))
            add(sub, _service_principal(make_event(sub, at, rng=rng)))
        for _ in range(4):
            at = DAY0 + timedelta(seconds=rng.randrange(5 * 86400))
            add(sub, _unknown_caller(make_event(sub, at, rng=rng)))
    # Ties: several events at the same instant, over users and subscriptions.
    for i in range(7):
        sub = SUBS[i % len(SUBS)]
        add(sub, make_event(sub, TIE_AT, rng=rng, user=USERS[i % len(USERS)]))
    # Day boundaries: the last and first microsecond of a day.
    add(SUBS[0], make_event(SUBS[0], DAY0 + timedelta(days=1) - timedelta(microseconds=1), rng=rng, user=USERS[0]))
    add(SUBS[0], make_event(SUBS[0], DAY0 + timedelta(days=1), rng=rng, user=USERS[0]))
    return per_sub


@dataclass
class World:
    runtime: Runtime
    issuer: Issuer
    storage: Storage
    raw: dict[str, dict[str, Any]]  # by id
    activities: list[Activity]
    requests: list[str]
    connection_string: str

    def call(
        self,
        handler: Callable[[func.HttpRequest, Runtime], func.HttpResponse],
        params: dict[str, str] | None = None,
        route: dict[str, str] | None = None,
        authorization: str | None = "default",
    ) -> tuple[int, Any]:
        headers = {}
        if authorization == "default":
            authorization = "Bearer " + self.issuer.token()
        if authorization is not None:
            headers["Authorization"] = authorization
        req = func.HttpRequest(
            "GET", "/api/x", headers=headers, params=params or {}, route_params=route or {}, body=b""
        )
        response = handle_http(req, handler, runtime=lambda: self.runtime)
        return response.status_code, json.loads(response.get_body())


@pytest.fixture(scope="module")
def world(storage_connection_string: str) -> Iterator[World]:
    requests: list[str] = []
    storage = Storage(
        TableServiceClient.from_connection_string(
            storage_connection_string, raw_response_hook=lambda response: requests.append(response.http_request.url)
        ),
        QueueServiceClient.from_connection_string(storage_connection_string),
        table_prefix="t" + uuid.uuid4().hex[:10],
        pull_queue="q" + uuid.uuid4().hex[:10],
    )
    storage.ensure()
    store = ActivityStore(storage)
    raw: dict[str, dict[str, Any]] = {}
    activities: list[Activity] = []
    for sub, items in _events().items():
        store.save(sub, items)
        for event, activity in items:
            raw[activity.id] = event
            activities.append(activity)
    issuer = Issuer()
    clock = FakeClock(NOW)
    unused: Any = None  # the API reads through `reader` only
    runtime = Runtime(
        settings=issuer.settings, clock=clock, tokens=issuer.validator(clock), arm=unused, connector=unused,
        subscriptions=unused, activities=store, reader=ActivityQueries(storage, clock=clock), pull_queue=unused,
        policies=unused, alerts=unused, alert_queue=unused, engine=unused, storage=storage,
    )  # fmt: skip
    yield World(runtime, issuer, storage, raw, activities, requests, storage_connection_string)
    storage.close()


# --- the brute-force expectation ----------------------------------------------------------------


def expected(world: World, **filters: str) -> list[str]:
    start = datetime.fromisoformat(filters["from"]) if "from" in filters else None
    end = datetime.fromisoformat(filters["to"]) if "to" in filters else None

    def keep(a: Activity) -> bool:
        user = filters.get("user")
        if user is not None and user.lower() not in {(a.user.upn or "").lower(), (a.user.id or "").lower()}:
            return False
        if "subscriptionId" in filters and a.subscription_id.lower() != filters["subscriptionId"].lower():
            return False
        if "action" in filters and (a.action or "").lower() != filters["action"].lower():
            return False
        if "status" in filters and (a.status or "").lower() != filters["status"].lower():
            return False
        if "ipAddress" in filters and a.ip_address != filters["ipAddress"]:
            return False
        if start is not None and a.timestamp < start:
            return False
        return not (end is not None and a.timestamp >= end)

    chosen = sorted(filter(keep, world.activities), key=lambda a: (-epoch_us(a.timestamp), safe_key(a.id)))
    return [a.id for a in chosen]


def collect(world: World, params: dict[str, str], limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every page of a search; checks each page's size and that no item repeats."""
    items: list[dict[str, Any]] = []
    pages = 0
    continuation: str | None = None
    while True:
        query = {**params, "limit": str(limit)}
        if continuation:
            query["continuation"] = continuation
        status, body = world.call(api.list_activities, query)
        assert status == 200, body
        assert set(body) == {"items", "continuation"}
        assert len(body["items"]) <= limit
        items.extend(body["items"])
        pages += 1
        continuation = body["continuation"]
        if continuation is None:
            break
        assert pages < 200
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)), "an item was repeated across pages"
    return items, pages


# --- filters ------------------------------------------------------------------------------------

DAY2 = (DAY0 + timedelta(days=2)).isoformat()
DAY3 = (DAY0 + timedelta(days=3)).isoformat()

CASES: list[dict[str, str]] = [
    {},
    {"user": "alice@contoso.com"},
    {"user": "ALICE@Contoso.com"},
    {"user": USERS[1][2]},
    {"user": USERS[1][2].upper()},
    {"user": SP_OBJECT_ID},
    {"user": "microsoft.recoveryservices"},
    {"subscriptionId": SUBS[1]},
    {"subscriptionId": SUBS[1].upper()},
    {"action": "microsoft.compute/VIRTUALMACHINES/write"},
    {"status": "FAILED"},
    {"ipAddress": "198.51.100.7"},
    {"from": DAY2},
    {"to": DAY2},
    {"from": DAY2, "to": DAY3},
    {"from": (DAY0 + timedelta(days=1)).isoformat(), "to": (DAY0 + timedelta(days=1, microseconds=1)).isoformat()},
    {"user": "bob@contoso.com", "subscriptionId": SUBS[0]},
    {"user": "carol@contoso.com", "from": DAY2, "to": DAY3, "status": "succeeded"},
    {"subscriptionId": SUBS[2], "action": "Microsoft.Storage/storageAccounts/delete", "from": DAY2},
    {"subscriptionId": SUBS[0], "ipAddress": "203.0.113.10", "status": "Succeeded", "to": DAY3},
    {"action": "Microsoft.Compute/virtualMachines/restart/action", "status": "Succeeded", "from": DAY2, "to": DAY3},
    {"user": USERS[0][2], "subscriptionId": SUBS[0], "action": "Microsoft.Compute/virtualMachines/write",
     "status": "succeeded", "ipAddress": "203.0.113.10", "from": DAY0.isoformat(), "to": DAY3},
]  # fmt: skip


@pytest.mark.parametrize("filters", CASES, ids=lambda f: ",".join(sorted(f)) or "none")
def test_each_filter_alone_and_combined_matches_brute_force(world: World, filters: dict[str, str]) -> None:
    items, _ = collect(world, filters, 100)
    assert [item["id"] for item in items] == expected(world, **filters)
    for item in items:
        assert set(item) == API_KEYS  # no storage internals, no raw
        assert world.raw[item["id"]]["eventDataId"] == item["id"]


def test_single_filters_are_not_vacuous(world: World) -> None:
    # Guard against the cases above passing because everything is empty.
    for filters in CASES[:15]:
        assert expected(world, **filters), filters
    assert len(expected(world)) == len(world.activities) > 350


@pytest.mark.parametrize(
    "filters",
    [{}, {"user": "alice@contoso.com"}, {"subscriptionId": SUBS[0], "from": DAY2}, {"status": "failed"},
     {"from": (DAY0 + timedelta(days=1, hours=12)).isoformat(), "to": DAY3}],
    ids=["time", "user", "subscription", "sparse", "range"],
)  # fmt: skip
def test_paging_loses_and_repeats_nothing(world: World, filters: dict[str, str]) -> None:
    items, pages = collect(world, filters, 7)
    want = expected(world, **filters)
    assert [item["id"] for item in items] == want
    assert pages >= len(want) // 7


def test_newest_first_across_days_and_subscriptions(world: World) -> None:
    status, body = world.call(api.list_activities, {})
    assert status == 200 and len(body["items"]) == 100 and body["continuation"]
    stamps = [item["timestamp"] for item in body["items"]]
    assert stamps == sorted(stamps, reverse=True)
    everything, _ = collect(world, {}, 100)
    assert {item["subscriptionId"] for item in everything} == set(SUBS)
    days = [item["timestamp"][:10] for item in everything]
    assert days == sorted(days, reverse=True) and len(set(days)) == 5


def test_ties_keep_a_fixed_order_across_pages(world: World) -> None:
    window = {"from": TIE_AT.isoformat(), "to": (TIE_AT + timedelta(microseconds=1)).isoformat()}
    want = expected(world, **window)
    assert len(want) == 7
    for limit in (1, 2, 3, 7):
        items, _ = collect(world, window, limit)
        assert [item["id"] for item in items] == want == sorted(want)
    items, _ = collect(world, {**window, "subscriptionId": SUBS[0]}, 2)
    assert [item["id"] for item in items] == expected(world, **window, subscriptionId=SUBS[0])


def test_a_page_size_may_change_between_pages(world: World) -> None:
    status, first = world.call(api.list_activities, {"user": "bob@contoso.com", "limit": "10"})
    assert status == 200
    status, second = world.call(
        api.list_activities, {"user": "bob@contoso.com", "limit": "25", "continuation": first["continuation"]}
    )
    assert status == 200
    ids = [item["id"] for item in first["items"] + second["items"]]
    assert ids == expected(world, user="bob@contoso.com")[:35]


def test_first_user_page_costs_at_most_three_storage_requests(world: World) -> None:
    tokens._cache.clear()  # the key is read again, as in a fresh worker
    for user in ("alice@contoso.com", USERS[0][2]):
        world.requests.clear()
        status, body = world.call(api.list_activities, {"user": user})
        assert status == 200 and len(body["items"]) == 100 and body["continuation"]
        assert len(world.requests) <= 3, world.requests
    world.requests.clear()
    world.call(api.list_activities, {"user": "alice@contoso.com"})
    assert len(world.requests) == 2  # alias row + ledger page; the key is cached


def test_time_range_reads_only_its_day_partitions(world: World) -> None:
    world.requests.clear()
    status, body = world.call(api.list_activities, {"from": DAY2, "to": DAY3, "limit": "100"})
    assert status == 200
    assert [item["id"] for item in body["items"]] == expected(world, **{"from": DAY2, "to": DAY3})[:100]
    queries = [url for url in world.requests if "activitiesbytime" in url]
    assert len(queries) == 1 and "PartitionKey%20ge" in queries[0] and "PartitionKey%20le" in queries[0]


# --- tokens ----------------------------------------------------------------------------------------


def _flip(token: str, index: int) -> str:
    data = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    data[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(data)).decode().rstrip("=")


def _first_token(world: World, params: dict[str, str]) -> str:
    status, body = world.call(api.list_activities, {**params, "limit": "5"})
    assert status == 200 and body["continuation"]
    return str(body["continuation"])


def _assert_bad(
    world: World,
    params: dict[str, str],
    field: str,
    handler: Callable[[func.HttpRequest, Runtime], func.HttpResponse] = api.list_activities,
) -> str:
    status, body = world.call(handler, params)
    assert status == 400, body
    assert body["error"]["code"] == "InvalidInput"
    assert body["error"]["message"].startswith(field + ":"), body
    return str(body["error"]["message"])


def test_tampered_or_garbage_continuation_is_400(world: World) -> None:
    params = {"subscriptionId": SUBS[0]}
    token = _first_token(world, params)
    raw_length = len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for index in (0, 1, 20, 40, raw_length - 3):
        message = _assert_bad(world, {**params, "continuation": _flip(token, index)}, "continuation")
        assert "continuation" in message
    for garbage in ("garbage!", "AAAA", token[:-6], token + "x", "e30", "%%%"):
        _assert_bad(world, {**params, "continuation": garbage}, "continuation")
    status, body = world.call(api.list_activities, {**params, "limit": "5", "continuation": token})
    assert status == 200 and len(body["items"]) == 5


def test_continuation_of_another_caller_or_expired_is_400(world: World) -> None:
    params = {"subscriptionId": SUBS[0], "limit": "5"}
    token = _first_token(world, params)
    someone_else = "Bearer " + world.issuer.token(oid="0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70", upn="eve@contoso.com")
    status, body = world.call(api.list_activities, {**params, "continuation": token}, authorization=someone_else)
    assert status == 400 and "another caller" in body["error"]["message"]
    app = "Bearer " + world.issuer.token(scp=None, upn=None, oid=None, idtyp="app", roles=["Activities.Read.All"])
    status, body = world.call(api.list_activities, {**params, "continuation": token}, authorization=app)
    assert status == 400 and "another caller" in body["error"]["message"]
    later = FakeClock(NOW + tokens.TOKEN_LIFETIME + timedelta(seconds=1))
    reader = ActivityQueries(world.storage, clock=later)
    runtime = dataclasses.replace(world.runtime, clock=later, tokens=world.issuer.validator(later), reader=reader)
    an_hour_on = dataclasses.replace(world, runtime=runtime)
    fresh = "Bearer " + world.issuer.token(expires=later.now() + timedelta(hours=1))
    status, body = an_hour_on.call(api.list_activities, {**params, "continuation": token}, authorization=fresh)
    assert status == 400 and "expired" in body["error"]["message"]


@pytest.mark.parametrize(
    "other",
    [{"subscriptionId": SUBS[1]}, {"subscriptionId": SUBS[0], "status": "failed"},
     {"subscriptionId": SUBS[0], "from": DAY2}, {}, {"user": "alice@contoso.com"}],
)  # fmt: skip
def test_continuation_reused_with_other_filters_is_400(world: World, other: dict[str, str]) -> None:
    token = _first_token(world, {"subscriptionId": SUBS[0]})
    message = _assert_bad(world, {**other, "continuation": token}, "continuation")
    assert "other filters" in message


def test_activities_token_is_refused_by_accounts(world: World) -> None:
    token = _first_token(world, {})
    _assert_bad(world, {"continuation": token}, "continuation", api.list_accounts)


# --- input safety ------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["user", "subscriptionId", "action", "status", "ipAddress"])
def test_injection_attempts_find_nothing(world: World, field: str) -> None:
    for attempt in ("x' or PartitionKey ne '", "' or '1' eq '1", "x') or (PartitionKey ne 'x", "@pk"):
        status, body = world.call(api.list_activities, {field: attempt})
        assert status == 200, body
        assert body == {"items": [], "continuation": None}


def test_unknown_user_is_an_empty_result(world: World) -> None:
    for user in ("nobody@contoso.com", "99999999-9999-9999-9999-999999999999"):
        status, body = world.call(api.list_activities, {"user": user})
        assert (status, body) == (200, {"items": [], "continuation": None})


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01T00:00:00Z"}, "to"),
        ({"from": DAY3, "to": DAY2}, "from"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "5.0"}, "limit"),
        ({"user": ""}, "user"),
        ({"action": "   "}, "action"),
        ({"subscriptionId": ""}, "subscriptionId"),
        ({"foo": "1"}, "foo"),
        ({"subscriptionid": SUBS[0]}, "subscriptionid"),
        ({"continuation": "not-a-token"}, "continuation"),
        ({"user": "a" * 600}, "user"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(world: World, params: dict[str, str], field: str) -> None:
    message = _assert_bad(world, params, field)
    if field == "subscriptionid":
        assert "did you mean subscriptionId" in message


def test_equal_bounds_and_offsets_are_accepted(world: World) -> None:
    status, body = world.call(api.list_activities, {"from": DAY2, "to": DAY2})
    assert (status, body) == (200, {"items": [], "continuation": None})
    # An offset sent unencoded in a URL arrives with a space for its '+'.
    local = {"from": "2026-11-22T01:00:00 01:00", "to": "2026-11-23T01:00:00+01:00"}
    items, _ = collect(world, local, 100)
    assert [item["id"] for item in items] == expected(world, **{"from": DAY2, "to": DAY3})
    # The host's function-key parameter is not ours to refuse.
    assert world.call(api.list_activities, {"code": "hostkey", "limit": "1"})[0] == 200


def test_every_route_requires_a_valid_token(world: World) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad_tokens = [
        None,
        "Basic dXNlcjpwYXNz",
        "Bearer not.a.token",
        "Bearer " + world.issuer.token(key=other_key),
        "Bearer " + world.issuer.token(expires=NOW - timedelta(hours=2)),
        "Bearer " + world.issuer.token(tid="99999999-0000-0000-0000-000000000000"),
    ]
    an_id = world.activities[0].id
    routes = [(api.list_activities, None), (api.get_activity, {"id": an_id}), (api.list_accounts, None),
              (api.get_account, {"id": "alice@contoso.com"})]  # fmt: skip
    for handler, route in routes:
        for authorization in bad_tokens:
            status, body = world.call(handler, route=route, authorization=authorization)
            assert status == 401, (handler.__name__, authorization)
            assert body["error"]["code"] == "Unauthorized"
    # Authentication comes before parameter checks: no hint about parameters without a token.
    assert world.call(api.list_activities, {"limit": "0"}, authorization=None)[0] == 401


# --- one activity -----------------------------------------------------------------------------


def test_one_activity_has_its_raw_event(world: World) -> None:
    activity = world.activities[17]
    for asked in (activity.id, activity.id.upper()):
        status, body = world.call(api.get_activity, route={"id": asked})
        assert status == 200
        assert body["raw"] == world.raw[activity.id]
        assert {k: v for k, v in body.items() if k != "raw"} == activity.to_api()
        assert set(body) == API_KEYS | {"raw"}


def test_unknown_activity_is_404(world: World) -> None:
    for asked in ("00000000-dead-beef-0000-000000000000", "x' or PartitionKey ne '"):
        status, body = world.call(api.get_activity, route={"id": asked})
        assert status == 404
        assert body["error"]["code"] == "NotFound" and body["error"]["message"]
    _assert_bad(world, {"limit": "3"}, "limit", api.get_activity)


# --- accounts ---------------------------------------------------------------------------------


def _expected_accounts(world: World) -> list[tuple[str, int]]:
    last: dict[str, datetime] = {}
    counts: dict[str, int] = {}
    for a in world.activities:
        assert a.user.id is not None
        key = safe_key(a.user.id)
        counts[key] = counts.get(key, 0) + 1
        last[key] = max(last.get(key, a.timestamp), a.timestamp)
    order = sorted(last, key=lambda k: (-epoch_us(last[k]), k))
    return [(k, counts[k]) for k in order]


def test_accounts_most_recently_active_first_and_paged(world: World) -> None:
    status, body = world.call(api.list_accounts)
    assert status == 200 and body["continuation"] is None
    want = _expected_accounts(world)
    assert [(safe_key(a["id"]), a["activityCount"]) for a in body["items"]] == want
    seen = [a["lastSeen"] for a in body["items"]]
    assert seen == sorted(seen, reverse=True)
    for account in body["items"]:
        assert set(account) == {"id", "upn", "name", "type", "appId", "firstSeen", "lastSeen", "lastIpAddress",
                                "activityCount", "subscriptions", "subscriptionsTruncated"}  # fmt: skip
        assert account["subscriptionsTruncated"] is False

    paged: list[dict[str, Any]] = []
    continuation = None
    for _ in range(10):
        params = {"limit": "2", **({"continuation": continuation} if continuation else {})}
        status, page = world.call(api.list_accounts, params)
        assert status == 200 and len(page["items"]) <= 2
        paged.extend(page["items"])
        continuation = page["continuation"]
        if not continuation:
            break
    assert paged == body["items"]


def test_accounts_by_type(world: World) -> None:
    status, body = world.call(api.list_accounts, {"type": "ServicePrincipal"})
    assert status == 200
    assert [(a["id"], a["type"], a["appId"]) for a in body["items"]] == [(SP_OBJECT_ID, "servicePrincipal", SP_APP_ID)]
    status, body = world.call(api.list_accounts, {"type": "unknown"})
    assert [a["id"] for a in body["items"]] == ["Microsoft.RecoveryServices"]
    _assert_bad(world, {"type": "robot"}, "type", api.list_accounts)
    _assert_bad(world, {"limit": "1000"}, "limit", api.list_accounts)
    _assert_bad(world, {"sort": "name"}, "sort", api.list_accounts)
    token = world.call(api.list_accounts, {"limit": "1"})[1]["continuation"]
    _assert_bad(world, {"type": "user", "continuation": token}, "continuation", api.list_accounts)


def test_account_by_upn_or_id(world: World) -> None:
    listing = {a["id"]: a for a in world.call(api.list_accounts)[1]["items"]}
    upn, _name, oid, _ip = USERS[2]
    newest = max((a for a in world.activities if a.user.id == oid), key=lambda a: a.timestamp)
    for asked in (upn, upn.upper(), oid, oid.upper()):
        status, body = world.call(api.get_account, route={"id": asked})
        assert status == 200, body
        assert body == listing[oid]
        assert (body["upn"], body["name"], body["type"]) == (upn, newest.user.name, "user")
        assert body["lastSeen"] == newest.to_api()["timestamp"]
        assert body["activityCount"] == sum(1 for a in world.activities if a.user.id == oid)
    status, body = world.call(api.get_account, route={"id": "microsoft.recoveryservices"})
    assert status == 200 and body["type"] == "unknown"
    for asked in ("nobody@contoso.com", "99999999-9999-9999-9999-999999999999", "x' or PartitionKey ne '"):
        status, body = world.call(api.get_account, route={"id": asked})
        assert status == 404 and body["error"]["code"] == "NotFound"
