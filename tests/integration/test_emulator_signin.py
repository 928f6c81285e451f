"""The emulator's browser sign-in (authorization code + PKCE), driven over HTTPS as a browser would.

A FakeClock at the current minute lets the app's own validator (core/auth.py) accept the access
token and lets a test age a code past its lifetime.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from core.auth import GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR, SigningKeys, TokenValidator, pipeline_fetcher
from core.clock import FakeClock
from core.errors import Forbidden, Unauthenticated
from core.settings import load_settings
from localdev.emulator import Emulator
from localdev.emulator.signin import portal_client_id

pytestmark = pytest.mark.integration

REDIRECT = "http://127.0.0.1:7071/api/portal/"
ORIGIN = "http://127.0.0.1:7071"
PEOPLE = {
    "Global Administrator": "globaladmin@contoso.com",
    "Security Administrator": "secadmin@contoso.com",
    "Regular User": "user@contoso.com",
    "Guest User": "guest_example.com#EXT#@contoso.com",
}


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(second=0, microsecond=0))


@pytest.fixture(scope="module")
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(clock=clock, seed=7) as running, pytest.MonkeyPatch.context() as patch:
        patch.setenv("REQUESTS_CA_BUNDLE", str(running.ca_pem_path))  # for the app's key fetcher
        yield running


@pytest.fixture
def http(emu: Emulator) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(emu.ca_pem_path)
    return session


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(emu: Emulator, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "client_id": portal_client_id(emu.audience),
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": f"{emu.audience}/Connector.Access openid profile offline_access",
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "response_mode": "fragment",
        "client_info": "1",
        **extra,
    }


def authorize_url(emu: Emulator) -> str:
    return f"{emu.url}/{emu.tenant_id}/oauth2/v2.0/authorize"


def sign_in(http: requests.Session, emu: Emulator, person: str = "globaladmin", **extra: str) -> tuple[str, str]:
    """Choose a person on the sign-in page; returns (code, verifier)."""
    verifier, challenge = pkce()
    params = authorize_params(emu, challenge, **extra)
    answer = http.post(authorize_url(emu), params=params, data={"person": person}, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT)
    returned = parse_qs(urlsplit(location).fragment or urlsplit(location).query)
    assert returned["state"] == ["state-123"]
    return returned["code"][0], verifier


def redeem(http: requests.Session, emu: Emulator, code: str, verifier: str, **overrides: str) -> requests.Response:
    form = {
        "client_id": portal_client_id(emu.audience),
        "redirect_uri": REDIRECT,
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "scope": f"{emu.audience}/Connector.Access openid profile offline_access",
        "client_info": "1",
        **overrides,
    }
    return http.post(f"{emu.url}/{emu.tenant_id}/oauth2/v2.0/token", data=form, headers={"Origin": ORIGIN})


def validator(emu: Emulator, clock: FakeClock) -> TokenValidator:
    settings = load_settings(
        {**emu.connector_settings(), "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    )  # fmt: skip
    keys = SigningKeys(settings.openid_configuration_url, pipeline_fetcher())
    assert settings.api_audience is not None and settings.tenant_id is not None
    return TokenValidator(
        keys=keys, issuer=settings.issuer, audience=settings.api_audience, tenant_id=settings.tenant_id, clock=clock
    )


def assert_oauth_error(answer: requests.Response, error: str, code: int) -> None:
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}:")
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_the_sign_in_page_lists_the_four_people_as_buttons(http: requests.Session, emu: Emulator) -> None:
    answer = http.get(authorize_url(emu), params=authorize_params(emu, pkce()[1]))
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    page = answer.text
    buttons = re.findall(r'<button type="submit" name="person" value="([^"]+)"[^>]*>([^<]+)</button>', page)
    assert [name for _, name in buttons] == list(PEOPLE)
    for upn in PEOPLE.values():
        assert html.escape(upn) in page
    form = re.search(r'<form method="post" action="([^"]+)"', page)
    assert form is not None and "code_challenge=" in html.unescape(form.group(1))
    assert "<script" not in page


@pytest.mark.parametrize(("person", "upn", "wids"), [
    ("globaladmin", "globaladmin@contoso.com", {GLOBAL_ADMINISTRATOR}),
    ("secadmin", "secadmin@contoso.com", {SECURITY_ADMINISTRATOR}),
    ("user", "user@contoso.com", set()),
    ("guest", "guest_example.com#EXT#@contoso.com", set()),
])  # fmt: skip
def test_each_person_gets_an_access_token_the_app_accepts(
    http: requests.Session, emu: Emulator, clock: FakeClock, person: str, upn: str, wids: set[str]
) -> None:
    code, verifier = sign_in(http, emu, person)
    answer = redeem(http, emu, code, verifier)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == f"{emu.audience}/Connector.Access"
    assert body["expires_in"] > 3000 and body["ext_expires_in"] == body["expires_in"]
    assert body["refresh_token"]
    principal = validator(emu, clock).authenticate(f"Bearer {body['access_token']}")
    assert principal.upn == upn
    assert principal.role_ids & {GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR} == wids
    assert principal.is_admin == bool(wids)
    access = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert access["scp"] == "Connector.Access" and access["ver"] == "2.0"
    assert access["azp"] == portal_client_id(emu.audience)
    identity = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert identity["aud"] == portal_client_id(emu.audience)
    assert identity["nonce"] == "nonce-456"
    assert identity["oid"] == access["oid"] and identity["tid"] == emu.tenant_id
    assert identity["preferred_username"] == upn
    padded = body["client_info"] + "=" * (-len(body["client_info"]) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded)) == {"uid": access["oid"], "utid": emu.tenant_id}


def test_the_id_token_is_not_accepted_by_the_app(http: requests.Session, emu: Emulator, clock: FakeClock) -> None:
    code, verifier = sign_in(http, emu, "globaladmin")
    body = redeem(http, emu, code, verifier).json()
    with pytest.raises(Unauthenticated, match="another audience"):  # its audience is the client
        validator(emu, clock).authenticate(f"Bearer {body['id_token']}")


def test_a_non_admin_token_is_valid_but_not_admin(http: requests.Session, emu: Emulator, clock: FakeClock) -> None:
    from core.auth import require_admin

    code, verifier = sign_in(http, emu, "user")
    principal = validator(emu, clock).authenticate(f"Bearer {redeem(http, emu, code, verifier).json()['access_token']}")
    with pytest.raises(Forbidden, match="Global Administrator or Security Administrator"):
        require_admin(principal, "connector")


def test_the_code_comes_back_in_the_query_when_asked(http: requests.Session, emu: Emulator) -> None:
    verifier, challenge = pkce()
    params = authorize_params(emu, challenge, response_mode="query")
    answer = http.post(authorize_url(emu), params=params, data={"person": "secadmin"}, allow_redirects=False)
    location = urlsplit(answer.headers["Location"])
    assert not location.fragment
    query = parse_qs(location.query)
    assert query["state"] == ["state-123"] and query["client_info"]
    assert redeem(http, emu, query["code"][0], verifier).status_code == 200


def test_a_wrong_verifier_is_refused(http: requests.Session, emu: Emulator) -> None:
    code, _ = sign_in(http, emu)
    assert_oauth_error(redeem(http, emu, code, pkce()[0]), "invalid_grant", 501481)


def test_a_code_is_single_use(http: requests.Session, emu: Emulator) -> None:
    code, verifier = sign_in(http, emu)
    assert redeem(http, emu, code, verifier).status_code == 200
    assert_oauth_error(redeem(http, emu, code, verifier), "invalid_grant", 54005)


def test_an_expired_code_is_refused(http: requests.Session, emu: Emulator, clock: FakeClock) -> None:
    code, verifier = sign_in(http, emu)
    clock.advance(timedelta(minutes=11))
    try:
        assert_oauth_error(redeem(http, emu, code, verifier), "invalid_grant", 70008)
    finally:
        clock.set(clock.now() - timedelta(minutes=11))


def test_another_redirect_uri_is_refused(http: requests.Session, emu: Emulator) -> None:
    code, verifier = sign_in(http, emu)
    answer = redeem(http, emu, code, verifier, redirect_uri="http://127.0.0.1:7071/elsewhere/")
    assert_oauth_error(answer, "invalid_grant", 50011)


def test_another_client_id_is_refused(http: requests.Session, emu: Emulator) -> None:
    code, verifier = sign_in(http, emu)
    answer = redeem(http, emu, code, verifier, client_id="11111111-2222-3333-4444-555555555555")
    assert_oauth_error(answer, "invalid_grant", 70000)


def test_a_redemption_outside_a_browser_is_refused(http: requests.Session, emu: Emulator) -> None:
    code, verifier = sign_in(http, emu)
    form = {"client_id": portal_client_id(emu.audience), "redirect_uri": REDIRECT, "grant_type": "authorization_code"}
    answer = http.post(
        f"{emu.url}/{emu.tenant_id}/oauth2/v2.0/token", data={**form, "code": code, "code_verifier": verifier}
    )
    assert answer.status_code == 400 and answer.json()["error_codes"] == [9002327]


def test_the_refresh_token_gets_new_tokens(http: requests.Session, emu: Emulator, clock: FakeClock) -> None:
    code, verifier = sign_in(http, emu, "secadmin")
    first = redeem(http, emu, code, verifier).json()
    form = {
        "client_id": portal_client_id(emu.audience),
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
        "scope": f"{emu.audience}/Connector.Access openid profile offline_access",
    }
    url = f"{emu.url}/{emu.tenant_id}/oauth2/v2.0/token"
    answer = http.post(url, data=form, headers={"Origin": ORIGIN})
    assert answer.status_code == 200, answer.text
    second = answer.json()
    assert second["access_token"] != first["access_token"]
    assert validator(emu, clock).authenticate(f"Bearer {second['access_token']}").upn == "secadmin@contoso.com"
    assert "nonce" not in jwt.decode(second["id_token"], options={"verify_signature": False})
    other = http.post(url, data={**form, "client_id": "someone-else"}, headers={"Origin": ORIGIN})
    assert_oauth_error(other, "invalid_grant", 70000)
    unknown = http.post(url, data={**form, "refresh_token": "nope"}, headers={"Origin": ORIGIN})
    assert_oauth_error(unknown, "invalid_grant", 9002313)


@pytest.mark.parametrize("path", ["oauth2/v2.0/token", "v2.0/.well-known/openid-configuration"])
def test_cors_preflight_answers_the_portal_origin(http: requests.Session, emu: Emulator, path: str) -> None:
    answer = http.options(
        f"{emu.url}/{emu.tenant_id}/{path}",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,client-request-id",
        },
    )
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert answer.headers["Access-Control-Allow-Headers"] == "content-type,client-request-id"


def test_discovery_answers_a_browser(http: requests.Session, emu: Emulator) -> None:
    answer = http.get(f"{emu.url}/{emu.tenant_id}/v2.0/.well-known/openid-configuration", headers={"Origin": ORIGIN})
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert answer.json()["authorization_endpoint"] == authorize_url(emu)


def redirect_error(answer: requests.Response) -> dict[str, Any]:
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    return {k: v[0] for k, v in parse_qs(location.fragment or location.query).items()}


@pytest.mark.parametrize(("extra", "error"), [
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": ""}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "api://someone-else/Read openid"}, "invalid_scope"),
    ({"prompt": "none"}, "login_required"),
])  # fmt: skip
def test_bad_requests_go_back_with_an_oauth_error(
    http: requests.Session, emu: Emulator, extra: dict[str, str], error: str
) -> None:
    answer = http.get(authorize_url(emu), params=authorize_params(emu, pkce()[1], **extra), allow_redirects=False)
    returned = redirect_error(answer)
    assert returned["error"] == error and returned["state"] == "state-123"


def test_prompt_none_with_a_known_login_hint_signs_in_silently(http: requests.Session, emu: Emulator) -> None:
    verifier, challenge = pkce()
    params = authorize_params(emu, challenge, prompt="none", login_hint="secadmin@contoso.com")
    returned = redirect_error(http.get(authorize_url(emu), params=params, allow_redirects=False))
    assert redeem(http, emu, returned["code"], verifier).status_code == 200


@pytest.mark.parametrize("extra", [
    {"client_id": "11111111-2222-3333-4444-555555555555"},
    {"redirect_uri": "https://evil.example/callback"},
])  # fmt: skip
def test_an_unknown_client_or_redirect_uri_gets_an_error_page_not_a_redirect(
    http: requests.Session, emu: Emulator, extra: dict[str, str]
) -> None:
    answer = http.get(authorize_url(emu), params=authorize_params(emu, pkce()[1], **extra), allow_redirects=False)
    assert answer.status_code == 400 and "Location" not in answer.headers
    assert "AADSTS" in answer.text


def test_an_unknown_person_shows_the_page_again(http: requests.Session, emu: Emulator) -> None:
    params = authorize_params(emu, pkce()[1])
    answer = http.post(authorize_url(emu), params=params, data={"person": "mallory"}, allow_redirects=False)
    assert answer.status_code == 400 and "Global Administrator" in answer.text


def test_logout_goes_back_to_a_loopback_uri(http: requests.Session, emu: Emulator) -> None:
    url = f"{emu.url}/{emu.tenant_id}/oauth2/v2.0/logout"
    answer = http.get(url, params={"post_logout_redirect_uri": REDIRECT}, allow_redirects=False)
    assert answer.status_code == 302 and answer.headers["Location"] == REDIRECT
    elsewhere = http.get(url, params={"post_logout_redirect_uri": "https://evil.example/"}, allow_redirects=False)
    assert elsewhere.status_code == 200
