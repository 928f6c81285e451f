"""The Entra ID + ARM emulator over real HTTPS, driven by the real SDK clients.

The emulator runs on a free loopback port with a FakeClock set to the current minute (so the
tokens it mints are valid for PyJWT too). Tests that only read share one emulator; tests that
change its state (move its clock, add faults, change subscriptions) ask for the `isolated` fixture
and get their own, on the same state directory, so the CA and the signing keys are made once.
The process trusts the emulator's CA through REQUESTS_CA_BUNDLE, as the connector does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.client import HTTPSConnection
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jwt
import pytest
import requests
from azure.core import PipelineClient
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.policies import BearerTokenCredentialPolicy
from azure.core.rest import HttpRequest
from azure.identity import ClientSecretCredential
from azure.mgmt.monitor import MonitorManagementClient

from core.clock import FakeClock
from localdev.emulator import GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR, Emulator
from localdev.emulator.events import is_arm_event
from localdev.emulator.timefmt import parse_timestamp
from tests.support.timing import WELL_UNDER_DELAYED_ACK, median_round_trip

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ACTIVITY_PATH = "/subscriptions/{}/providers/Microsoft.Insights/eventtypes/management/values"
# The Activity Log writes 7 fractional digits, and sometimes 6, 2 or none at all.
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{2}|\.\d{6,7})?Z$")
UPN_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
ADMINISTRATIVE = {"value": "Administrative", "localizedValue": "Administrative"}
OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def ticks(stamp: str) -> int:
    """An event timestamp as 100 ns ticks: the text does not sort, since the number of digits varies."""
    return parse_timestamp(stamp)


def own_operations(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ARM activities of the generated operations themselves: not Azure Policy's audits or the
    other categories, and not the cascaded child deletes (which carry their parent's action)."""
    return [
        e
        for e in events
        if is_arm_event(e) and (e.get("authorization") or {}).get("action") == e["operationName"]["value"]
    ]


def time_filter(start: datetime, end: datetime | None = None) -> str:
    text = f"eventTimestamp ge '{iso(start)}'"
    return text + (f" and eventTimestamp le '{iso(end)}'" if end is not None else "")


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator-state")


def _this_minute() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(second=0, microsecond=0))


@pytest.fixture(scope="module")
def shared_emulator(state_dir: Path) -> Iterator[Emulator]:
    with Emulator(clock=_this_minute(), seed=7, state_dir=state_dir) as running:
        yield running


@pytest.fixture
def isolated() -> None:
    """Asked for by tests that change the emulator's state: they get an emulator of their own."""


@pytest.fixture
def emu(request: pytest.FixtureRequest, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    if "isolated" not in request.fixturenames:
        shared: Emulator = request.getfixturevalue("shared_emulator")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(shared.ca_pem_path))
        yield shared
        return
    with Emulator(clock=_this_minute(), seed=7, state_dir=state_dir) as running:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.ca_pem_path))
        yield running


@pytest.fixture
def clock(emu: Emulator) -> FakeClock:
    assert isinstance(emu.clock, FakeClock)
    return emu.clock


@pytest.fixture
def credential(emu: Emulator) -> ClientSecretCredential:
    return ClientSecretCredential(
        emu.tenant_id, emu.client_id, emu.client_secret, authority=emu.url, disable_instance_discovery=True
    )


@pytest.fixture
def http(emu: Emulator) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.verify = str(emu.ca_pem_path)
        yield session


@pytest.fixture
def arm_token(emu: Emulator, http: requests.Session) -> str:
    answer = http.post(
        f"{emu.url}/{emu.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "scope": f"{emu.url}/.default",
        },
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


class Arm:
    """Plain HTTPS calls to the emulated ARM with the connector's token."""

    def __init__(self, emu: Emulator, http: requests.Session, token: str) -> None:
        self.emu, self.http, self.token = emu, http, token

    def get(self, path_or_url: str, params: dict[str, str] | None = None, token: str | None = None) -> Any:
        url = path_or_url if path_or_url.startswith("https://") else self.emu.url + path_or_url
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return self.http.get(url, params=params, headers=headers)

    def activity(self, sub: str, flt: str | None, **extra: str) -> Any:
        params = {"api-version": "2015-04-01", **extra}
        if flt is not None:
            params["$filter"] = flt
        return self.get(ACTIVITY_PATH.format(sub), params)

    def all_events(self, sub: str, flt: str) -> tuple[list[dict[str, Any]], int]:
        answer = self.activity(sub, flt)
        pages = 1
        assert answer.status_code == 200, answer.text
        body = answer.json()
        events = list(body["value"])
        while body.get("nextLink"):
            answer = self.get(body["nextLink"])
            assert answer.status_code == 200, answer.text
            body = answer.json()
            events.extend(body["value"])
            pages += 1
        return events, pages


@pytest.fixture
def arm(emu: Emulator, http: requests.Session, arm_token: str) -> Arm:
    return Arm(emu, http, arm_token)


def production(emu: Emulator) -> str:
    return next(s.subscription_id for s in emu.subscriptions if s.display_name == "Contoso Production")


# -- Entra ID ---------------------------------------------------------------------------------------


def test_openid_configuration_and_jwks(emu: Emulator, http: requests.Session) -> None:
    config = http.get(f"{emu.url}/{emu.tenant_id}/v2.0/.well-known/openid-configuration").json()
    assert config["issuer"] == f"{emu.url}/{emu.tenant_id}/v2.0"
    assert config["token_endpoint"] == f"{emu.url}/{emu.tenant_id}/oauth2/v2.0/token"
    assert config["authorization_endpoint"].startswith(f"{emu.url}/{emu.tenant_id}/")
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    jwks = http.get(config["jwks_uri"]).json()
    assert len(jwks["keys"]) >= 1
    for key in jwks["keys"]:
        assert key["kty"] == "RSA" and key["use"] == "sig" and key["kid"] and key["n"] and key["e"] == "AQAB"
    assert len({key["kid"] for key in jwks["keys"]}) == len(jwks["keys"])

    unknown = http.get(f"{emu.url}/{'0' * 8}-0000-0000-0000-{'0' * 12}/v2.0/.well-known/openid-configuration")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_tenant"


def test_a_round_trip_takes_no_delayed_ack_wait(emu: Emulator) -> None:
    """Nagle's algorithm with the client's delayed ACK would add about 40 ms to every answer.

    Each GET opens a fresh connection (TLS handshake included), as the server closes it after the answer.
    """
    context = ssl.create_default_context(cafile=str(emu.ca_pem_path))
    port = int(emu.url.rsplit(":", 1)[1])
    path = f"/{emu.tenant_id}/v2.0/.well-known/openid-configuration"

    def once() -> None:
        connection = HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())["issuer"]
        finally:
            connection.close()

    assert median_round_trip(once) < WELL_UNDER_DELAYED_ACK


def _jwks_client(emu: Emulator) -> jwt.PyJWKClient:
    context = ssl.create_default_context(cafile=str(emu.ca_pem_path))
    return jwt.PyJWKClient(f"{emu.url}/{emu.tenant_id}/discovery/v2.0/keys", ssl_context=context)


def verify_user_token(emu: Emulator, client: jwt.PyJWKClient, token: str) -> dict[str, Any]:
    """What a resource server does: key by kid from the JWKS, RS256 only, aud, iss, exp/nbf, tid."""
    key = client.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=emu.audience, issuer=f"{emu.url}/{emu.tenant_id}/v2.0"
    )
    if claims["tid"] != emu.tenant_id:
        raise jwt.InvalidTokenError("wrong tenant")
    return claims


@pytest.mark.parametrize(
    ("kind", "role"),
    [("global_admin", GLOBAL_ADMINISTRATOR), ("security_admin", SECURITY_ADMINISTRATOR), ("user", None)],
)
def test_user_tokens_verify_against_the_jwks(emu: Emulator, kind: str, role: str | None) -> None:
    claims = verify_user_token(emu, _jwks_client(emu), emu.mint_token(kind))
    assert claims["ver"] == "2.0" and claims["tid"] == emu.tenant_id and claims["aud"] == emu.audience
    for name in ("oid", "sub", "upn", "preferred_username", "name", "iat", "nbf", "exp"):
        assert claims[name], name
    admin_roles = {GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR}
    if role is None:
        assert not admin_roles & set(claims["wids"])
    else:
        assert role in claims["wids"]
    if kind == "global_admin":
        assert claims["upn"] == "admin@contoso.com"
    assert jwt.get_unverified_header(emu.mint_token(kind))["kid"]


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("expired", jwt.ExpiredSignatureError),
        ("not_yet_valid", jwt.ImmatureSignatureError),
        ("wrong_audience", jwt.InvalidAudienceError),
        ("wrong_issuer", jwt.InvalidIssuerError),
        ("wrong_tenant", jwt.InvalidIssuerError),
        ("unknown_key", jwt.PyJWKClientError),
        ("alg_none", jwt.PyJWKClientError),
        ("hs256_public_key", jwt.InvalidAlgorithmError),
    ],
)
def test_forged_and_broken_tokens_fail_verification(emu: Emulator, kind: str, error: type[Exception]) -> None:
    token = emu.mint_token(kind)
    with pytest.raises(error):
        verify_user_token(emu, _jwks_client(emu), token)


def test_forged_tokens_are_what_they_claim_to_be(emu: Emulator) -> None:
    jwks = {key.key_id for key in _jwks_client(emu).get_signing_keys()}
    unknown = jwt.get_unverified_header(emu.mint_token("unknown_key"))
    assert unknown["alg"] == "RS256" and unknown["kid"] not in jwks

    none = emu.mint_token("alg_none")
    assert jwt.get_unverified_header(none)["alg"] == "none" and none.endswith(".")

    confused = emu.mint_token("hs256_public_key")
    header = jwt.get_unverified_header(confused)
    assert header["alg"] == "HS256" and header["kid"] in jwks
    public_pem = emu.keys.signing.public_pem
    signing_input, _, signature = confused.rpartition(".")
    expected = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected

    other = jwt.decode(emu.mint_token("wrong_tenant"), options={"verify_signature": False})
    assert other["tid"] != emu.tenant_id


def test_mint_token_overrides_claims(emu: Emulator) -> None:
    token = emu.mint_token("user", upn="someone@contoso.com", name=None, wids=[SECURITY_ADMINISTRATOR])
    claims = verify_user_token(emu, _jwks_client(emu), token)
    assert claims["upn"] == "someone@contoso.com"
    assert "name" not in claims
    assert claims["wids"] == [SECURITY_ADMINISTRATOR]
    with pytest.raises(ValueError, match="unknown token kind"):
        emu.mint_token("root")


def test_client_secret_credential_gets_an_app_token(emu: Emulator, credential: ClientSecretCredential) -> None:
    token = credential.get_token(f"{emu.url}/.default")
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["aud"] == emu.url
    assert claims["appid"] == emu.client_id and claims["idtyp"] == "app" and claims["tid"] == emu.tenant_id
    assert claims["oid"] == emu.connector_object_id
    assert token.expires_on > time.time() + 3000
    paths = [r.path for r in emu.request_log]
    assert f"/{emu.tenant_id}/v2.0/.well-known/openid-configuration" in paths
    assert f"/{emu.tenant_id}/oauth2/v2.0/token" in paths


def test_rejected_sign_in_fails_with_client_authentication_error(emu: Emulator, isolated: None) -> None:
    def fresh() -> ClientSecretCredential:
        return ClientSecretCredential(
            emu.tenant_id, emu.client_id, emu.client_secret, authority=emu.url, disable_instance_discovery=True
        )

    emu.reject_sign_in(True)
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        fresh().get_token(f"{emu.url}/.default")
    emu.reject_sign_in(False)
    assert fresh().get_token(f"{emu.url}/.default").token

    wrong = ClientSecretCredential(
        emu.tenant_id, emu.client_id, "not-the-secret", authority=emu.url, disable_instance_discovery=True
    )
    with pytest.raises(ClientAuthenticationError, match="Invalid client secret"):
        wrong.get_token(f"{emu.url}/.default")


def test_token_endpoint_errors(emu: Emulator, http: requests.Session) -> None:
    url = f"{emu.url}/{emu.tenant_id}/oauth2/v2.0/token"
    base = {"grant_type": "client_credentials", "client_id": emu.client_id, "client_secret": emu.client_secret}
    cases = [
        ({**base, "scope": f"{emu.url}/user_impersonation"}, 400, "invalid_scope"),
        ({**base, "scope": "https://unknown.example/.default"}, 400, "invalid_resource"),
        (
            {**base, "client_id": "00000000-0000-0000-0000-000000000001", "scope": f"{emu.url}/.default"},
            400,
            "unauthorized_client",
        ),
        ({**base, "grant_type": "password", "scope": f"{emu.url}/.default"}, 400, "unsupported_grant_type"),
        (
            {k: v for k, v in base.items() if k != "client_secret"} | {"scope": f"{emu.url}/.default"},
            401,
            "invalid_client",
        ),
    ]
    for form, status, error in cases:
        answer = http.post(url, data=form)
        assert (answer.status_code, answer.json()["error"]) == (status, error), form
        assert answer.json()["error_description"].startswith("AADSTS")
        assert emu.client_secret not in answer.text


# -- ARM: authentication and subscriptions ---------------------------------------------------------


def test_arm_requires_a_valid_token(
    emu: Emulator, arm: Arm, http: requests.Session, clock: FakeClock, isolated: None
) -> None:
    url = f"{emu.url}/subscriptions?api-version=2022-12-01"
    missing = http.get(url)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "AuthenticationFailed"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer ")
    cases = {
        "garbage": ("not.a.token", "InvalidAuthenticationToken"),
        "user token for the connector API": (emu.mint_token("global_admin"), "InvalidAuthenticationTokenAudience"),
        "unknown key": (emu.mint_token("unknown_key", aud=emu.url), "InvalidAuthenticationToken"),
        "alg none": (emu.mint_token("alg_none", aud=emu.url), "InvalidAuthenticationToken"),
        "hs256": (emu.mint_token("hs256_public_key", aud=emu.url), "InvalidAuthenticationToken"),
        "other tenant": (emu.mint_token("wrong_tenant", aud=emu.url), "InvalidAuthenticationTokenTenant"),
        "expired": (emu.mint_token("expired", aud=emu.url), "ExpiredAuthenticationToken"),
    }
    for name, (token, code) in cases.items():
        answer = arm.get(url, token=token)
        assert answer.status_code == 401, name
        assert answer.json()["error"]["code"] == code, name
    assert arm.get(url, token=emu.mint_token("global_admin", aud=emu.url)).status_code == 200
    assert arm.get(url).status_code == 200
    clock.advance(timedelta(hours=2))
    stale = arm.get(url)
    assert stale.status_code == 401 and stale.json()["error"]["code"] == "ExpiredAuthenticationToken"


def _pipeline(emu: Emulator, credential: ClientSecretCredential) -> PipelineClient[Any, Any]:
    return PipelineClient(base_url=emu.url, policies=[BearerTokenCredentialPolicy(credential, f"{emu.url}/.default")])


def list_subscriptions(client: PipelineClient[Any, Any]) -> tuple[list[dict[str, Any]], int]:
    url: str | None = "/subscriptions?api-version=2022-12-01"
    found: list[dict[str, Any]] = []
    pages = 0
    while url:
        response = client.send_request(HttpRequest("GET", client.format_url(url)))
        response.raise_for_status()
        body = response.json()
        found.extend(body["value"])
        pages += 1
        url = body.get("nextLink")
        if url:
            assert url.startswith("https://")
    return found, pages


def test_list_subscriptions_pages_through_exactly_the_listed_ones(
    emu: Emulator, credential: ClientSecretCredential, isolated: None
) -> None:
    client = _pipeline(emu, credential)
    found, pages = list_subscriptions(client)
    assert pages == 2  # six subscriptions, three a page
    assert sorted(s["subscriptionId"] for s in found) == sorted(s.subscription_id for s in emu.subscriptions)
    legacy = next(s for s in found if s["displayName"] == "Contoso Legacy")
    assert legacy["state"] == "Disabled"
    for sub in found:
        assert sub["id"] == f"/subscriptions/{sub['subscriptionId']}"
        assert sub["tenantId"] == emu.tenant_id and sub["authorizationSource"] == "RoleBased"
        assert set(sub["subscriptionPolicies"]) >= {"locationPlacementId", "quotaId", "spendingLimit"}

    hidden = emu.subscriptions[1].subscription_id
    emu.set_subscription(hidden, listed=False)
    added = emu.add_subscription("Contoso Analytics")
    new_added = emu.add_subscription("Contoso Research", state="Warned")
    found, pages = list_subscriptions(client)
    ids = {s["subscriptionId"] for s in found}
    assert hidden not in ids and {added.subscription_id, new_added.subscription_id} <= ids
    assert len(found) == 7 and pages == 3
    assert {s["subscriptionId"]: s["state"] for s in found}[new_added.subscription_id] == "Warned"


def test_get_single_subscription_and_unknown_ids(emu: Emulator, arm: Arm) -> None:
    sub = production(emu)
    answer = arm.get(f"/subscriptions/{sub}", {"api-version": "2022-12-01"})
    assert answer.status_code == 200 and answer.json()["displayName"] == "Contoso Production"
    unknown = arm.get("/subscriptions/00000000-0000-0000-0000-00000000abcd", {"api-version": "2022-12-01"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "SubscriptionNotFound"
    malformed = arm.get("/subscriptions/not-a-guid", {"api-version": "2022-12-01"})
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "InvalidSubscriptionId"
    no_version = arm.get("/subscriptions")
    assert no_version.status_code == 400 and no_version.json()["error"]["code"] == "MissingApiVersionParameter"


# -- ARM: the Activity Log --------------------------------------------------------------------------


def test_activity_log_paging_equals_ground_truth(emu: Emulator, arm: Arm, clock: FakeClock) -> None:
    sub = production(emu)
    end = clock.now()
    start = end - timedelta(days=1)
    events, pages = arm.all_events(sub, time_filter(start, end))
    truth = emu.events(sub, start, end, surfaced_by=clock.now())
    assert pages == -(-len(truth) // 200) and pages >= 5
    ids = [e["eventDataId"] for e in events]
    assert len(ids) == len(set(ids))
    assert events == truth
    stamps = [(ticks(e["eventTimestamp"]), e["eventDataId"]) for e in events]
    assert stamps == sorted(stamps, reverse=True)
    # Without an end time the range runs to now.
    open_ended, _ = arm.all_events(sub, time_filter(end - timedelta(hours=2)))
    assert open_ended == emu.events(sub, end - timedelta(hours=2), end, surfaced_by=end)
    # Every event older than the longest surfacing delay has surfaced (test_events_surface_after_their_delay
    # covers the younger ones, which this shared, wall-clock-seeded emulator may or may not hold).
    settled = end - emu.max_surface_delay
    assert emu.events(sub, start, settled) == emu.events(sub, start, settled, surfaced_by=end)


def test_paging_is_stable_while_events_surface(emu: Emulator, arm: Arm, clock: FakeClock, isolated: None) -> None:
    sub = production(emu)
    first_seen = clock.now()
    start = first_seen - timedelta(hours=12)
    answer = arm.activity(sub, time_filter(start, first_seen))
    body = answer.json()
    events = list(body["value"])
    clock.advance(timedelta(minutes=10))  # late events of the range surface meanwhile
    # Both surface after the first page was served: one among the events already paged past, one among
    # those still to come. Neither may appear in this listing, which is a snapshot as of its first page.
    emu.inject_event(sub, at=first_seen - timedelta(minutes=1), delay=timedelta(minutes=5), caller="late@contoso.com")
    emu.inject_event(sub, at=start + timedelta(minutes=1), delay=timedelta(hours=12), caller="older@contoso.com")
    while body.get("nextLink"):
        body = arm.get(body["nextLink"]).json()
        events.extend(body["value"])
    ids = [e["eventDataId"] for e in events]
    assert len(ids) == len(set(ids))
    assert events == emu.events(sub, start, first_seen, surfaced_by=first_seen)
    # A fresh listing sees what surfaced since, including both injected events.
    fresh, _ = arm.all_events(sub, time_filter(start, first_seen))
    callers = {e.get("caller") for e in fresh}
    assert {"late@contoso.com", "older@contoso.com"} <= callers
    assert len(fresh) > len(events)


def test_events_surface_after_their_delay(emu: Emulator, arm: Arm, clock: FakeClock, isolated: None) -> None:
    sub = production(emu)
    now = clock.now()
    emu.set_events_per_hour(600, since=now - timedelta(hours=1))
    injected = emu.inject_event(sub, at=now - timedelta(seconds=30), delay=timedelta(seconds=120))
    assert injected["submissionTimestamp"] > injected["eventTimestamp"]

    def visible() -> set[str]:
        events, _ = arm.all_events(sub, time_filter(now - timedelta(minutes=30)))
        return {e["eventDataId"] for e in events}

    assert injected["eventDataId"] not in visible()
    clock.advance(timedelta(seconds=89))
    assert injected["eventDataId"] not in visible()
    clock.advance(timedelta(seconds=1))
    assert injected["eventDataId"] in visible()

    # Generated events too: some of the last minutes have not surfaced yet, and all have after the maximum delay.
    window_start, window_end = clock.now() - timedelta(minutes=20), clock.now()
    everything = {e["eventDataId"] for e in emu.events(sub, window_start, window_end)}
    surfaced = {e["eventDataId"] for e in emu.events(sub, window_start, window_end, surfaced_by=clock.now())}
    assert surfaced < everything
    assert {e["eventDataId"] for e in arm.all_events(sub, time_filter(window_start, window_end))[0]} == surfaced
    clock.advance(timedelta(minutes=5))
    later = {e["eventDataId"] for e in arm.all_events(sub, time_filter(window_start, window_end))[0]}
    assert later == everything


def test_start_and_end_events_share_correlation_id(emu: Emulator, clock: FakeClock) -> None:
    sub = production(emu)
    range_end = clock.now() - timedelta(minutes=10)
    events = own_operations(emu.events(sub, range_end - timedelta(days=1), range_end))
    # An operation lasts under two minutes: those begun in the range's last minutes may end after it.
    settled = ticks(iso(range_end - timedelta(minutes=2)))
    by_correlation: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_correlation[event["correlationId"]].append(event)
    pairs = 0
    for group in by_correlation.values():
        begins = [e for e in group if e["eventName"]["value"] == "BeginRequest"]
        ends = [e for e in group if e["eventName"]["value"] == "EndRequest"]
        if not begins or ticks(begins[0]["eventTimestamp"]) > settled:
            continue
        assert len(begins) == 1 and ends, group
        begin = begins[0]
        assert begin["status"]["value"] == "Started"
        for end in ends:
            assert ticks(end["eventTimestamp"]) > ticks(begin["eventTimestamp"])
            assert end["operationId"] == begin["operationId"]
            assert end["operationName"]["value"] == begin["operationName"]["value"]
            assert end["status"]["value"] in ("Succeeded", "Failed", "Accepted")
        pairs += 1
    assert pairs > 200


def test_events_have_the_activity_log_shape(emu: Emulator, clock: FakeClock) -> None:
    sub = production(emu)
    events = own_operations(emu.events(sub, clock.now() - timedelta(days=2), clock.now()))
    assert len(events) > 1200
    kinds: dict[str, int] = defaultdict(int)
    statuses, levels = set(), set()
    for event in events:
        assert TIMESTAMP.match(event["eventTimestamp"]) and TIMESTAMP.match(event["submissionTimestamp"])
        assert ticks(event["submissionTimestamp"]) > ticks(event["eventTimestamp"])
        # tenantId and category are missing on some events, as on real ones.
        assert event["subscriptionId"] == sub and event.get("tenantId", emu.tenant_id) == emu.tenant_id
        assert event.get("category", ADMINISTRATIVE) == ADMINISTRATIVE
        assert event["channels"] == "Operation"
        assert event["id"].lower().startswith(f"/subscriptions/{sub}/resourcegroups/")
        assert re.search(rf"/events/{event['eventDataId']}/ticks/\d{{18}}$", event["id"])
        assert event["authorization"]["action"] == event["operationName"]["value"]
        assert event["resourceId"].lower().startswith(f"/subscriptions/{sub}/resourcegroups/")
        for field in ("resourceProviderName", "resourceType", "status", "subStatus", "eventName", "operationName"):
            assert (field == "resourceType" and field not in event) or set(event[field]) == {"value", "localizedValue"}
        kinds[event["operationName"]["value"].rsplit("/", 1)[-1]] += 1
        statuses.add(event["status"]["value"])
        levels.add(event["level"])
    assert set(kinds) == {"write", "delete", "action", "read"}
    assert statuses == {"Started", "Succeeded", "Failed", "Accepted"}
    assert levels == {"Informational", "Error", "Warning"}

    users = [e for e in events if UPN_CLAIM in (e.get("claims") or {})]
    assert users and all("@" in e["caller"] and e["claims"][OID_CLAIM] for e in users)
    assert any(
        "name" not in e["claims"] and "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname" in e["claims"]
        for e in users
    )
    assert any("ipaddr" in e["claims"] for e in users)
    apps = [e for e in events if (e.get("claims") or {}).get("appidacr") == "1"]
    assert apps and all(UPN_CLAIM not in e["claims"] and "xms_mirid" not in e["claims"] for e in apps)
    assert any(e["claims"].get("idtyp") == "app" for e in apps)
    assert {e["caller"] for e in apps} <= {e["claims"]["appid"] for e in apps} | {e["claims"][OID_CLAIM] for e in apps}
    identities = [e for e in events if "xms_mirid" in (e.get("claims") or {})]
    assert any("/Microsoft.ManagedIdentity/userAssignedIdentities/" in e["claims"]["xms_mirid"] for e in identities)
    assert all(e["claims"]["idtyp"] == "app" and e["claims"]["appid"] for e in identities)
    system = [e for e in events if e.get("caller") == "Microsoft.RecoveryServices"]
    assert system and all(not e.get("claims") for e in system)
    assert any("caller" not in e and not e.get("claims") for e in events)
    assert any("httpRequest" not in e for e in users)
    with_http = [e for e in events if "httpRequest" in e]
    assert all(set(e["httpRequest"]) == {"clientRequestId", "clientIpAddress", "method"} for e in with_http)


@pytest.mark.parametrize(
    "flt",
    [
        "{time}",
        "{start}",
        "{time} and eventChannels eq 'Admin, Operation'",
        "{time} and levels eq 'Critical,Error,Warning,Informational'",
        "{time} and resourceGroupName eq 'RG-WEB-PROD'",
        "{time} and resourceProvider eq 'Microsoft.Compute'",
        "{time} and eventChannels eq 'Admin, Operation' and resourceGroupName eq 'rg-data-prod'",
        "EVENTTIMESTAMP GE '{start_value}' AND eventTimestamp LE '{end_value}'",
        "eventTimestamp le '{end_value}' and eventTimestamp ge '{start_value}'",
    ],
)
def test_valid_filters(emu: Emulator, arm: Arm, clock: FakeClock, flt: str) -> None:
    sub = production(emu)
    start, end = clock.now() - timedelta(hours=3), clock.now() - timedelta(minutes=5)
    text = flt.format(
        time=time_filter(start, end), start=time_filter(start), start_value=iso(start), end_value=iso(end)
    )
    events, _ = arm.all_events(sub, text)
    last = end if " le '" in text.lower() else clock.now()
    truth = emu.events(sub, start, last, surfaced_by=clock.now())
    if "resourceGroupName" in text:
        group = text.rsplit("'", 2)[1].lower()
        truth = [e for e in truth if (e.get("resourceGroupName") or "").lower() == group]
    if "resourceProvider" in text:
        provider = "microsoft.compute"
        truth = [e for e in truth if str((e.get("resourceProviderName") or {}).get("value")).lower() == provider]
    assert truth and events == truth


def test_filter_by_correlation_id_and_resource_uri(emu: Emulator, arm: Arm, clock: FakeClock) -> None:
    sub = production(emu)
    start, end = clock.now() - timedelta(hours=6), clock.now()
    truth = emu.events(sub, start, end, surfaced_by=end)
    pick = next(e for e in truth if e["eventName"]["value"] == "BeginRequest")
    by_correlation, _ = arm.all_events(sub, f"{time_filter(start, end)} and correlationId eq '{pick['correlationId']}'")
    assert pick in by_correlation and {e["correlationId"] for e in by_correlation} == {pick["correlationId"]}
    uri = pick["resourceId"].upper()
    by_resource, _ = arm.all_events(sub, f"{time_filter(start, end)} and resourceUri eq '{uri}'")
    assert by_resource == [e for e in truth if e["resourceId"].lower() == uri.lower()]


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        (None, "is required"),
        ("   ", "is required"),
        ("resourceGroupName eq 'rg-web-prod'", "start time"),
        ("eventTimestamp le '{end}'", "start time"),
        ("{time} or resourceGroupName eq 'x'", "'or'"),
        ("({time})", "parentheses"),
        ("not {time}", "'not'"),
        ("{time} and caller eq 'admin@contoso.com'", "'caller' is not supported"),
        ("{time} and status eq 'Failed'", "'status' is not supported"),
        ("eventTimestamp gt '{start}'", "'gt' is not supported"),
        ("{time} and resourceGroupName ne 'rg-web-prod'", "'ne' is not supported"),
        ("eventTimestamp ge '2026-13-45T00:00:00Z'", "not a valid date"),
        ("eventTimestamp ge 'yesterday'", "not a valid date"),
        ("eventTimestamp ge yesterday", "single quotes"),
        ("eventTimestamp ge '{start}", "not terminated"),
        ("eventTimestamp ge '{end}' and eventTimestamp le '{start}'", "later than"),
        ("{time} and eventTimestamp ge '{start}'", "only once"),
        ("{time} and resourceGroupName eq 'a' and resourceProvider eq 'b'", "only one of"),
        ("{time} and levels eq 'Loud'", "levels is invalid"),
        ("{time} and eventChannels eq 'Everything'", "eventChannels is invalid"),
        ("{time} and substringof('x', caller)", "functions"),
        ("eventTimestamp >= '{start}'", "not an operator"),
        ("{time} and", "ends where a clause"),
    ],
)
def test_invalid_filters_are_400(emu: Emulator, arm: Arm, clock: FakeClock, flt: str | None, message: str) -> None:
    start, end = clock.now() - timedelta(hours=1), clock.now()
    text = flt.format(time=time_filter(start, end), start=iso(start), end=iso(end)) if flt is not None else None
    answer = arm.activity(production(emu), text)
    assert answer.status_code == 400, answer.text
    error = answer.json()  # the Activity Log's own shape: code and message at the top level
    assert error["code"] == "BadRequest" and "error" not in error
    assert message in error["message"]


def test_ninety_day_limit(emu: Emulator, arm: Arm, clock: FakeClock) -> None:
    sub = production(emu)
    too_old = arm.activity(sub, time_filter(clock.now() - timedelta(days=90, minutes=1), clock.now()))
    assert too_old.status_code == 400 and "90 days" in too_old.json()["message"]
    oldest = clock.now() - timedelta(days=89, hours=23)
    inside = arm.activity(sub, time_filter(oldest, oldest + timedelta(hours=1)))
    assert inside.status_code == 200 and inside.json()["value"]


def test_activity_log_api_version_and_skiptoken_checks(emu: Emulator, arm: Arm, clock: FakeClock) -> None:
    sub = production(emu)
    flt = time_filter(clock.now() - timedelta(days=1), clock.now())
    wrong_version = arm.get(ACTIVITY_PATH.format(sub), {"api-version": "2024-01-01", "$filter": flt})
    assert wrong_version.status_code == 400 and wrong_version.json()["error"]["code"] == "NoRegisteredProviderFound"
    next_link = arm.activity(sub, flt).json()["nextLink"]
    assert "%24skipToken=" in next_link and "%24filter=" in next_link and next_link.startswith(emu.url)
    token = unquote(next_link.split("%24skipToken=", 1)[1])
    assert re.fullmatch(r"[a-z0-9]+!shard\d{2};asOf=\d+;end=\d+;after=\d+;id=[0-9a-f-]{36};f=[0-9a-f]{16}", token)
    tampered = arm.get(next_link.replace("ge%20", "ge%20%20"))
    assert tampered.status_code == 400 and tampered.json()["code"] == "InvalidSkipToken"
    garbage = arm.activity(sub, flt, **{"$skiptoken": "bm90IGpzb24"})
    assert garbage.status_code == 400 and garbage.json()["code"] == "InvalidSkipToken"


def test_disabled_subscription_serves_its_old_events(emu: Emulator, arm: Arm, clock: FakeClock, isolated: None) -> None:
    legacy = next(s for s in emu.subscriptions if s.display_name == "Contoso Legacy")
    assert legacy.state == "Disabled"
    recent, _ = arm.all_events(legacy.subscription_id, time_filter(clock.now() - timedelta(days=19), clock.now()))
    assert recent == []
    old_start = clock.now() - timedelta(days=22)
    old, _ = arm.all_events(legacy.subscription_id, time_filter(old_start, old_start + timedelta(hours=12)))
    assert old and old == emu.events(legacy.subscription_id, old_start, old_start + timedelta(hours=12))

    sub = production(emu)
    emu.set_subscription(sub, state="Disabled")
    before = emu.events(sub, clock.now() - timedelta(hours=1), clock.now())
    clock.advance(timedelta(hours=2))
    assert emu.events(sub, clock.now() - timedelta(hours=1, minutes=50), clock.now()) == []
    assert emu.events(sub, clock.now() - timedelta(hours=3), clock.now() - timedelta(hours=2)) == before
    emu.set_subscription(sub, state="Deleted")
    arm.token = emu.mint_token("global_admin", aud=emu.url)  # the connector's token expired meanwhile
    gone = arm.activity(sub, time_filter(clock.now() - timedelta(hours=3)))
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "SubscriptionNotFound"


def test_forbidden_and_unlisted_subscriptions_answer_403(
    emu: Emulator, arm: Arm, clock: FakeClock, isolated: None
) -> None:
    sub = production(emu)
    flt = time_filter(clock.now() - timedelta(hours=1))
    emu.set_subscription(sub, forbidden=True)
    answer = arm.activity(sub, flt)
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "AuthorizationFailed"
    assert emu.client_id in error["message"] and f"/subscriptions/{sub}" in error["message"]
    emu.set_subscription(sub, forbidden=False, listed=False)
    assert arm.activity(sub, flt).status_code == 403
    emu.set_subscription(sub, listed=True)
    assert arm.activity(sub, flt).status_code == 200
    unknown = arm.activity("00000000-0000-0000-0000-00000000abcd", flt)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "SubscriptionNotFound"


def test_429_fault_carries_retry_after(emu: Emulator, arm: Arm, clock: FakeClock, isolated: None) -> None:
    sub, other = production(emu), emu.subscriptions[1].subscription_id
    flt = time_filter(clock.now() - timedelta(hours=1))
    emu.add_fault("429", subscription_id=sub, retry_after=7)
    assert arm.activity(other, flt).status_code == 200
    throttled = arm.activity(sub, flt)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert throttled.headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"
    assert throttled.json()["error"]["code"] == "SubscriptionRequestsThrottled"
    assert arm.activity(sub, flt).status_code == 200
    # The subscription list is never faulted.
    emu.add_fault("429", count=-1)
    assert arm.get("/subscriptions", {"api-version": "2022-12-01"}).status_code == 200
    assert [arm.activity(s, flt).status_code for s in (sub, other, sub)] == [429, 429, 429]
    emu.clear_faults()
    assert arm.activity(sub, flt).status_code == 200


def test_5xx_and_slow_faults(emu: Emulator, arm: Arm, clock: FakeClock, isolated: None) -> None:
    sub = production(emu)
    flt = time_filter(clock.now() - timedelta(hours=1))
    emu.add_fault("5xx", count=2, status=503)
    codes = [arm.activity(sub, flt) for _ in range(3)]
    assert [c.status_code for c in codes] == [503, 503, 200]
    assert codes[0].json()["error"]["code"] == "ServiceUnavailable"
    emu.add_fault("5xx", status=500)
    assert arm.activity(sub, flt).status_code == 500
    emu.add_fault("slow", seconds=0.4)
    began = time.monotonic()
    slow = arm.activity(sub, flt)
    assert slow.status_code == 200 and time.monotonic() - began >= 0.4
    with pytest.raises(ValueError, match="unknown fault kind"):
        emu.add_fault("teapot")


def test_monitor_management_client_pages_through_the_emulator(
    emu: Emulator, credential: ClientSecretCredential, clock: FakeClock, isolated: None
) -> None:
    sub = production(emu)
    client = MonitorManagementClient(credential, sub, base_url=emu.url, credential_scopes=[f"{emu.url}/.default"])
    start, end = clock.now() - timedelta(hours=8), clock.now()
    emu.reset_request_log()
    items = list(client.activity_logs.list(filter=time_filter(start, end)))
    truth = emu.events(sub, start, end, surfaced_by=clock.now())
    assert [i.event_data_id for i in items] == [e["eventDataId"] for e in truth]
    requests_made = [r for r in emu.request_log if r.path.endswith("/eventtypes/management/values")]
    assert len(requests_made) == -(-len(truth) // 200) >= 2
    first = items[0]
    assert first.event_timestamp is not None and first.submission_timestamp is not None
    assert first.operation_name is not None and first.operation_name.value
    assert first.status is not None and first.status.value
    assert {i.category.value for i in items if i.category is not None} >= {"Administrative", "Policy"}
    assert any(i.http_request is not None and i.http_request.client_ip_address for i in items)
    assert any(i.claims and UPN_CLAIM in i.claims for i in items)

    emu.set_subscription(sub, forbidden=True)
    with pytest.raises(HttpResponseError) as raised:
        list(client.activity_logs.list(filter=time_filter(start, end)))
    assert raised.value.status_code == 403
    assert raised.value.error is not None and raised.value.error.code == "AuthorizationFailed"


def test_request_log_records_requests(emu: Emulator, arm: Arm, clock: FakeClock, isolated: None) -> None:
    emu.reset_request_log()
    sub = production(emu)
    flt = time_filter(clock.now() - timedelta(hours=1))
    arm.activity(sub, flt)
    arm.get("/subscriptions", {"api-version": "2022-12-01"})
    log = emu.request_log
    assert [(r.method, r.status) for r in log] == [("GET", 200), ("GET", 200)]
    assert log[0].path == ACTIVITY_PATH.format(sub)
    assert log[0].query == {"api-version": "2015-04-01", "$filter": flt}
    assert log[0].time == clock.now()
    emu.reset_request_log()
    assert emu.request_log == []


def test_control_api(emu: Emulator, http: requests.Session) -> None:
    control = f"{emu.url}/_emulator"
    info = http.get(f"{control}/info").json()
    assert info["tenantId"] == emu.tenant_id and info["clientId"] == emu.client_id
    assert info["clientSecret"] == emu.client_secret and info["url"] == emu.url
    assert info["audience"] == emu.audience and len(info["subscriptions"]) == 6
    assert json.loads((emu.state_dir / "emulator.json").read_text())["tenantId"] == emu.tenant_id

    token = http.post(f"{control}/tokens", json={"kind": "security_admin"}).json()["access_token"]
    assert SECURITY_ADMINISTRATOR in verify_user_token(emu, _jwks_client(emu), token)["wids"]
    assert http.post(f"{control}/tokens", json={"kind": "nope"}).status_code == 400

    assert http.get(f"{control}/nothing").status_code == 404
    assert http.post(f"{control}/faults", json={"kind": "429"}).status_code == 404  # the Python API's job


def test_inject_event_overrides_fields(emu: Emulator, clock: FakeClock, isolated: None) -> None:
    sub = production(emu)
    at = clock.now() - timedelta(minutes=1)
    event = emu.inject_event(
        sub,
        at=at,
        caller="svc@contoso.com",
        claims={},
        operation="Microsoft.Compute/virtualMachines/delete",
        status="Failed",
        httpRequest=None,
    )
    assert event["caller"] == "svc@contoso.com" and event["claims"] == {}
    assert event["operationName"] == {
        "value": "Microsoft.Compute/virtualMachines/delete",
        "localizedValue": "Delete Virtual Machine",
    }
    assert event["authorization"]["action"] == "Microsoft.Compute/virtualMachines/delete"
    assert event["status"] == {"value": "Failed", "localizedValue": "Failed"} and event["level"] == "Error"
    assert "httpRequest" not in event
    assert event["eventTimestamp"] == event["submissionTimestamp"]
    assert event in emu.events(sub, at, at, surfaced_by=clock.now())
    event["caller"] = "mutated"
    assert emu.events(sub, at, at)[0]["caller"] == "svc@contoso.com"


def test_cli_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localdev.emulator",
            "--port",
            "0",
            "--seed",
            "11",
            "--state-dir",
            str(state),
            "--events-per-hour",
            "120",
            "--max-surface-delay",
            "30",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"https://127\.0\.0\.1:\d+", url), url
        info = json.loads((state / "emulator.json").read_text())
        assert info["url"] == url and info["eventsPerHour"] == 120 and info["maxSurfaceDelaySeconds"] == 30
        assert (state / "ca.pem").exists()
        live = requests.get(f"{url}/_emulator/info", verify=str(state / "ca.pem"), timeout=10).json()
        assert live["tenantId"] == info["tenantId"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stderr is not None
        logged = process.stderr.read()
        assert url in logged and info["clientSecret"] not in logged
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- ARM as the real Activity Log behaves ---------------------------------------------------------


def test_unquoted_and_date_only_timestamps_are_accepted(emu: Emulator, arm: Arm, clock: FakeClock) -> None:
    sub = production(emu)
    day = clock.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    date_only, _ = arm.all_events(
        sub, f"eventTimestamp ge {day:%Y-%m-%d} and eventTimestamp le '{day:%Y-%m-%d}T06:00Z'"
    )
    assert date_only == emu.events(sub, day, day + timedelta(hours=6), surfaced_by=clock.now())
    start = clock.now() - timedelta(hours=2)
    unquoted, _ = arm.all_events(sub, f"eventTimestamp ge {iso(start)}")
    assert unquoted and unquoted == emu.events(sub, start, clock.now(), surfaced_by=clock.now())


def test_select_keeps_only_the_named_fields_on_every_page(emu: Emulator, arm: Arm, clock: FakeClock) -> None:
    sub = production(emu)
    flt = time_filter(clock.now() - timedelta(hours=12), clock.now())
    first = arm.activity(sub, flt, **{"$select": "eventDataId,EVENTTIMESTAMP, category"})
    assert first.status_code == 200
    body = first.json()
    assert "%24select=" in body["nextLink"]
    second = arm.get(body["nextLink"]).json()
    for event in body["value"] + second["value"]:
        assert set(event) <= {"eventDataId", "eventTimestamp", "category"} and "eventDataId" in event
    truth = emu.events(sub, clock.now() - timedelta(hours=12), clock.now(), surfaced_by=clock.now())
    assert [e["eventDataId"] for e in body["value"] + second["value"]] == [e["eventDataId"] for e in truth][:400]


def test_global_read_rate_limit_header(emu: Emulator, arm: Arm, clock: FakeClock, isolated: None) -> None:
    sub = production(emu)
    flt = time_filter(clock.now() - timedelta(hours=1))
    remaining = [
        int(arm.activity(sub, flt).headers["x-ms-ratelimit-remaining-subscription-global-reads"]) for _ in range(3)
    ]
    assert remaining[0] > remaining[1] > remaining[2] >= 0
    clock.advance(timedelta(seconds=60))  # the bucket refills with time
    assert int(arm.activity(sub, flt).headers["x-ms-ratelimit-remaining-subscription-global-reads"]) > remaining[2]


def test_page_latency_slows_activity_log_pages_only(
    emu: Emulator, arm: Arm, http: requests.Session, clock: FakeClock, isolated: None
) -> None:
    sub = production(emu)
    flt = time_filter(clock.now() - timedelta(hours=1))
    answer = http.put(f"{emu.url}/_emulator/page-latency", json={"seconds": 0.3})
    assert answer.status_code == 200 and answer.json() == {"seconds": 0.3} and emu.page_latency == 0.3
    assert http.get(f"{emu.url}/_emulator/info").json()["pageLatencySeconds"] == 0.3
    try:
        began = time.monotonic()
        assert arm.activity(sub, flt).status_code == 200
        assert time.monotonic() - began >= 0.3
        began = time.monotonic()
        assert arm.get("/subscriptions", {"api-version": "2022-12-01"}).status_code == 200
        assert time.monotonic() - began < 0.3
    finally:
        emu.set_page_latency(0)
    assert http.put(f"{emu.url}/_emulator/page-latency", json={"seconds": -1}).status_code == 400
