"""The portal through the local host: its files and config.json need no key and no token, every
answer carries the security headers, nothing outside portal/static/ is ever served, and the routes
the page calls are anonymous at the host while the app requires a token on each of them.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from localdev.emulator.signin import portal_client_id
from tests.support.platform import call

pytestmark = pytest.mark.integration

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' {authority}; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
)
# Every route the page calls that carries data (the per-day counts come with their own module).
DATA_ROUTES = [
    ("GET", "/api/connectors"),
    ("GET", "/api/connectors/azure"),
    ("POST", "/api/connectors/azure"),
    ("DELETE", "/api/connectors/azure"),
    ("GET", "/api/activities"),
    ("GET", "/api/activities/0123456789abcdef"),
    ("GET", "/api/accounts"),
    ("GET", "/api/accounts/0123456789abcdef"),
    ("GET", "/api/connectors/azure/activity-per-day"),
]


def raw_get(base_url: str, path: str) -> http.client.HTTPResponse:
    """A GET with the path exactly as given: no client normalises `..` or decodes anything."""
    netloc = urlsplit(base_url).netloc
    connection = http.client.HTTPConnection(netloc, timeout=60)
    connection.putrequest("GET", path, skip_accept_encoding=True)
    connection.endheaders()
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def assert_portal_headers(headers: Any, emulator: Any) -> None:
    assert headers["Content-Security-Policy"] == CSP.format(authority=emulator.url)
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_the_page_needs_no_key_and_no_token(app_host: Any, emulator: Any) -> None:
    for path in ("/api/portal/", "/api/portal/index.html"):
        answer = requests.get(app_host.base_url + path, timeout=60)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
        assert answer.text.lstrip().lower().startswith("<!doctype html>")
        assert_portal_headers(answer.headers, emulator)


def test_the_bare_path_redirects_to_the_trailing_slash(app_host: Any, emulator: Any) -> None:
    answer = requests.get(app_host.base_url + "/api/portal", allow_redirects=False, timeout=60)
    assert answer.status_code == 301 and answer.headers["Location"] == "/api/portal/"
    assert_portal_headers(answer.headers, emulator)
    followed = requests.get(app_host.base_url + "/api/portal", timeout=60)
    assert followed.status_code == 200 and followed.url == app_host.base_url + "/api/portal/"


def test_config_json_describes_the_sign_in(app_host: Any, emulator: Any) -> None:
    answer = requests.get(app_host.base_url + "/api/portal/config.json", timeout=60)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert answer.headers["Cache-Control"] == "no-store"
    assert_portal_headers(answer.headers, emulator)
    assert answer.json() == {
        "clientId": portal_client_id(emulator.audience),
        "authority": f"{emulator.url}/{emulator.tenant_id}",
        "tenantId": emulator.tenant_id,
        "knownAuthorities": [urlsplit(emulator.url).netloc],
        "scopes": [f"{emulator.audience}/Connector.Access"],
    }


@pytest.mark.parametrize("path", [
    "/api/portal/../function_app.py",
    "/api/portal/%2e%2e/function_app.py",
    "/api/portal/%2E%2E/%2e%2e/function_app.py",
    "/api/portal/%2e%2e%2ffunction_app.py",
    "/api/portal/..%5cfunction_app.py",
    "/api/portal/%252e%252e/function_app.py",
    "/api/portal//etc/passwd",
    "/api/portal/%2fetc%2fpasswd",
    "/api/portal/C:/Windows/win.ini",
    "/api/portal/serving.py",
    "/api/portal/../serving.py",
    "/api/portal/%2e%2e/blueprint.py",
    "/api/portal/.hidden",
    "/api/portal/missing.js",
])  # fmt: skip
def test_nothing_outside_the_static_folder_is_served(app_host: Any, path: str) -> None:
    answer = raw_get(app_host.base_url, path)
    assert answer.status == 404, path


def test_a_missing_file_is_404_with_the_headers(app_host: Any, emulator: Any) -> None:
    answer = requests.get(app_host.base_url + "/api/portal/missing.js", timeout=60)
    assert answer.status_code == 404
    assert_portal_headers(answer.headers, emulator)


@pytest.mark.parametrize(("method", "path"), DATA_ROUTES)
def test_every_data_route_is_anonymous_at_the_host_but_needs_a_token(app_host: Any, method: str, path: str) -> None:
    status, body = call(app_host.base_url, method, path, key=None)
    assert status == 401, (method, path)
    assert body["error"]["code"] == "Unauthorized" and "bearer token" in body["error"]["message"]


@pytest.mark.parametrize(("method", "path"), [r for r in DATA_ROUTES if r[0] == "GET"])
def test_a_token_without_a_key_is_enough(app_host: Any, emulator: Any, method: str, path: str) -> None:
    status, _ = call(app_host.base_url, method, path, emulator.mint_token("user"), key=None)
    assert status in (200, 404), (method, path)  # the made-up ids are not found: past the gate


def test_json_answers_carry_their_own_headers(app_host: Any, emulator: Any) -> None:
    answer = requests.get(
        app_host.base_url + "/api/connectors", headers={"Authorization": f"Bearer {emulator.mint_token('user')}"},
        timeout=60,
    )  # fmt: skip
    assert answer.status_code == 200
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    refused = requests.get(app_host.base_url + "/api/connectors", timeout=60)
    assert refused.status_code == 401 and refused.headers["X-Content-Type-Options"] == "nosniff"


def browser_sign_in(emulator: Any, base_url: str, person: str) -> str:
    """What the page does: config.json, the sign-in page, the code back at the portal, the token."""
    config = requests.get(base_url + "/api/portal/config.json", timeout=60).json()
    session = requests.Session()
    session.trust_env = False
    session.verify = str(emulator.ca_pem_path)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = base_url + "/api/portal/"
    answer = session.post(
        f"{config['authority']}/oauth2/v2.0/authorize",
        params={
            "client_id": config["clientId"], "redirect_uri": redirect, "response_type": "code",
            "scope": " ".join([*config["scopes"], "openid", "profile", "offline_access"]), "state": "s",
            "nonce": "n", "code_challenge": challenge, "code_challenge_method": "S256", "response_mode": "fragment",
        },
        data={"person": person}, allow_redirects=False,
    )  # fmt: skip
    code = parse_qs(urlsplit(answer.headers["Location"]).fragment)["code"][0]
    tokens = session.post(
        f"{config['authority']}/oauth2/v2.0/token",
        data={
            "client_id": config["clientId"], "redirect_uri": redirect, "grant_type": "authorization_code",
            "code": code, "code_verifier": verifier, "scope": " ".join(config["scopes"]),
        },
        headers={"Origin": base_url},
    )  # fmt: skip
    assert tokens.status_code == 200, tokens.text
    return str(tokens.json()["access_token"])


def test_signed_in_through_the_emulator_the_page_can_call_the_api(app_host: Any, emulator: Any) -> None:
    user = browser_sign_in(emulator, app_host.base_url, "user")
    status, body = call(app_host.base_url, "GET", "/api/connectors", user, key=None)
    assert status == 200
    status, body = call(app_host.base_url, "POST", "/api/connectors/azure", user, key=None)
    assert status == 403 and "Global Administrator or Security Administrator" in body["error"]["message"]
    admin = browser_sign_in(emulator, app_host.base_url, "globaladmin")
    status, body = call(app_host.base_url, "POST", "/api/connectors/azure", admin, key=None)
    assert status == 201, body
    assert body["status"] == "Connected" and body["connectedBy"] == "globaladmin@contoso.com"
