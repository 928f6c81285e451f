"""Token validation with a real RSA key and PyJWT; the JWKS is served by an in-memory fetcher."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.auth import (
    GLOBAL_ADMINISTRATOR,
    SECURITY_ADMINISTRATOR,
    AdminAction,
    KeysUnavailable,
    SigningKeys,
    TokenValidator,
    require_admin,
)
from core.clock import FakeClock
from core.errors import Forbidden, Unauthenticated

pytestmark = pytest.mark.unit

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
AUTHORITY = "https://login.example.test"
ISSUER = f"{AUTHORITY}/{TENANT}/v2.0"
AUDIENCE = "api://connector"
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY = _key()
OTHER = _key()


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


class Fetcher:
    def __init__(self) -> None:
        self.keys = [_jwk(KEY, "k1")]
        self.calls = 0

    def __call__(self, url: str) -> dict[str, Any]:
        self.calls += 1
        if url.endswith("openid-configuration"):
            return {"issuer": ISSUER, "jwks_uri": f"{AUTHORITY}/{TENANT}/discovery/v2.0/keys"}
        return {"keys": self.keys}


def _claims(**over: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "tid": TENANT,
        "oid": "u1",
        "upn": "admin@contoso.com",
        "name": "Admin",
        "scp": "Connector.Access",
        "azp": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
        "wids": [GLOBAL_ADMINISTRATOR],
        "iat": int(NOW.timestamp()) - 60,
        "nbf": int(NOW.timestamp()) - 60,
        "exp": int(NOW.timestamp()) + 3600,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def _token(key: Any = KEY, kid: str = "k1", alg: str = "RS256", **over: Any) -> str:
    return jwt.encode(_claims(**over), key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def fetcher() -> Fetcher:
    return Fetcher()


@pytest.fixture
def validator(fetcher: Fetcher) -> TokenValidator:
    keys = SigningKeys(f"{ISSUER}/.well-known/openid-configuration", fetcher)
    return TokenValidator(keys=keys, issuer=ISSUER, audience=AUDIENCE, tenant_id=TENANT, clock=FakeClock(NOW))


def test_valid_admin_token(validator: TokenValidator) -> None:
    principal = validator.authenticate(f"Bearer {_token()}")
    assert principal.upn == "admin@contoso.com" and principal.is_admin
    require_admin(principal, "policies")
    sec = validator.authenticate(f"Bearer {_token(wids=[SECURITY_ADMINISTRATOR])}")
    require_admin(sec, "connector")


def test_plain_user_is_forbidden_naming_roles(validator: TokenValidator) -> None:
    principal = validator.authenticate(f"Bearer {_token(wids=['b79fbf4d-3ef9-4689-8143-76b194e85509'])}")
    with pytest.raises(Forbidden, match="Global Administrator or Security Administrator"):
        require_admin(principal, "connector")


@pytest.mark.parametrize(
    ("action", "named"),
    [
        ("connector", "Connecting or disconnecting Microsoft Azure needs"),
        ("policies", "Creating, changing or deleting policies needs"),
        ("alerts", "Changing an alert's status or comment needs"),
    ],
)
def test_the_refusal_names_the_change_refused(validator: TokenValidator, action: AdminAction, named: str) -> None:
    user = validator.authenticate(f"Bearer {_token(wids=['b79fbf4d-3ef9-4689-8143-76b194e85509'])}")
    with pytest.raises(Forbidden) as refused:
        require_admin(user, action)
    assert refused.value.message.startswith(named) and "Security Administrator" in refused.value.message
    app = replace(user, app_only=True)
    with pytest.raises(Forbidden) as refused:
        require_admin(app, action)
    assert refused.value.message.startswith(named) and "an application's token cannot" in refused.value.message


def _none_token() -> str:
    header = jwt.utils.base64url_encode(json.dumps({"alg": "none", "kid": "k1"}).encode()).decode()
    body = jwt.utils.base64url_encode(json.dumps(_claims()).encode()).decode()
    return f"{header}.{body}."


def _hs256_with_public_key() -> str:
    pem = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64
    import hashlib
    import hmac

    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    body = jwt.utils.base64url_encode(json.dumps(_claims()).encode())
    signing = header + b"." + body
    sig = base64.urlsafe_b64encode(hmac.new(pem, signing, hashlib.sha256).digest()).rstrip(b"=")
    return (signing + b"." + sig).decode()


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Authorization header"),
        ("", "Authorization header"),
        ("Basic dXNlcjpwYXNz", "Bearer scheme"),
        ("Bearer", "malformed"),
        ("Bearer not-a-jwt", "malformed"),
        ("Bearer a.b.c", "malformed"),
        ("Bearer " + _none_token(), "RS256"),
        ("Bearer " + _hs256_with_public_key(), "RS256"),
        ("Bearer " + _token(exp=int(NOW.timestamp()) - 3600), "expired"),
        ("Bearer " + _token(nbf=int(NOW.timestamp()) + 3600), "not valid before"),
        ("Bearer " + _token(aud="api://other"), "another audience"),
        ("Bearer " + _token(iss="https://evil.example/v2.0"), "another authority"),
        ("Bearer " + _token(tid="00000000-0000-0000-0000-000000000000"), "another tenant"),
        ("Bearer " + _token(key=OTHER, kid="unknown"), "key the authority does not publish"),
        ("Bearer " + _token(key=OTHER, kid="k1"), "signature"),
        ("Bearer " + _token(tid=None), "tid"),
    ],
)
def test_bad_tokens_are_refused(validator: TokenValidator, header: str | None, message: str) -> None:
    with pytest.raises(Unauthenticated, match=message):
        validator.authenticate(header)


def test_small_clock_skew_is_accepted(validator: TokenValidator) -> None:
    validator.authenticate(f"Bearer {_token(exp=int(NOW.timestamp()) - 30)}")


def test_unknown_kid_refreshes_keys_at_a_bounded_rate(fetcher: Fetcher) -> None:
    ticks = [1000.0]
    keys = SigningKeys(
        f"{ISSUER}/.well-known/openid-configuration", fetcher, min_refresh_seconds=60, monotonic=lambda: ticks[0]
    )
    v = TokenValidator(keys=keys, issuer=ISSUER, audience=AUDIENCE, tenant_id=TENANT, clock=FakeClock(NOW))
    v.authenticate(f"Bearer {_token()}")
    assert keys.fetch_count == 1
    rotated = _token(key=OTHER, kid="k2")
    for _ in range(5):  # a storm of unknown kids does not hammer the authority
        with pytest.raises(Unauthenticated):
            v.authenticate(f"Bearer {rotated}")
    assert keys.fetch_count == 1
    fetcher.keys.append(_jwk(OTHER, "k2"))  # the authority rotates its keys
    ticks[0] += 61
    assert v.authenticate(f"Bearer {rotated}").upn == "admin@contoso.com"
    assert keys.fetch_count == 2


def test_token_text_is_never_in_error_messages(validator: TokenValidator) -> None:
    token = _token(aud="api://other")
    with pytest.raises(Unauthenticated) as info:
        validator.authenticate(f"Bearer {token}")
    assert token not in str(info.value) and token.split(".")[1] not in str(info.value)
    _ = time


def test_a_non_string_kid_is_a_malformed_token(validator: TokenValidator) -> None:
    header = jwt.utils.base64url_encode(json.dumps({"alg": "RS256", "kid": 5}).encode()).decode()
    body = jwt.utils.base64url_encode(json.dumps(_claims()).encode()).decode()
    with pytest.raises(Unauthenticated, match="malformed"):
        validator.authenticate(f"Bearer {header}.{body}.c2ln")


def test_unreachable_authority_is_a_503_and_is_not_hammered() -> None:
    calls = [0]
    ticks = [0.0]

    def down(url: str) -> dict[str, Any]:
        calls[0] += 1
        raise ValueError("connection refused")

    keys = SigningKeys(f"{ISSUER}/.well-known/openid-configuration", down, monotonic=lambda: ticks[0])
    v = TokenValidator(keys=keys, issuer=ISSUER, audience=AUDIENCE, tenant_id=TENANT, clock=FakeClock(NOW))
    for _ in range(5):
        with pytest.raises(KeysUnavailable):
            v.authenticate(f"Bearer {_token()}")
    assert calls[0] == 1
    ticks[0] += 11
    with pytest.raises(KeysUnavailable):
        v.authenticate(f"Bearer {_token()}")
    assert calls[0] == 2


# --- what the token grants: the API's scope, an app role, never an ID token ---------------------

APP: dict[str, Any] = {
    "upn": None,
    "name": None,
    "wids": None,
    "scp": None,
    "idtyp": "app",
    "azp": "0f6b3c1a-1111-4c4c-9999-5e5e5e5e5e5e",
}


def test_a_delegated_token_needs_the_api_scope(validator: TokenValidator) -> None:
    assert not validator.authenticate(f"Bearer {_token(scp='openid Connector.Access')}").app_only
    for scopes in (None, "", "user_impersonation", "Connector.AccessX", "connector.access"):
        over: dict[str, Any] = {"scp": scopes} if scopes is not None else {"scp": None, "roles": ["Something"]}
        with pytest.raises((Forbidden, Unauthenticated)) as caught:
            validator.authenticate(f"Bearer {_token(**over)}")
        if scopes is not None:
            assert caught.type is Forbidden and "Connector.Access" in caught.value.message


def test_an_app_only_token_needs_an_app_role_and_cannot_connect(validator: TokenValidator) -> None:
    principal = validator.authenticate(f"Bearer {_token(**APP, roles=['Activities.Read.All'])}")
    assert principal.app_only and principal.upn is None and principal.app_id == APP["azp"]
    with pytest.raises(Forbidden, match="signed-in Global Administrator"):
        require_admin(principal, "connector")
    # An app's token with a directory role in wids (an app given Global Administrator) is still no admin.
    elevated = validator.authenticate(
        f"Bearer {_token(**{**APP, 'wids': [GLOBAL_ADMINISTRATOR]}, roles=['Activities.Read.All'])}"
    )
    assert not elevated.is_admin
    for roles in ([], ["Other.Role"], "Activities.Read.All"):
        with pytest.raises(Forbidden, match=r"Activities\.Read\.All"):
            validator.authenticate(f"Bearer {_token(**APP, roles=roles)}")
    with pytest.raises(Forbidden, match=r"Activities\.Read\.All"):  # client credentials, no role at all
        validator.authenticate(f"Bearer {_token(**APP)}")


def test_mixed_tokens_are_refused(validator: TokenValidator) -> None:
    with pytest.raises(Unauthenticated, match="app-only but carries delegated"):
        validator.authenticate(f"Bearer {_token(idtyp='app')}")
    with pytest.raises(Unauthenticated, match="not app-only"):
        validator.authenticate(f"Bearer {_token(scp=None, idtyp='user', roles=['Activities.Read.All'])}")


def test_an_id_token_is_refused(validator: TokenValidator) -> None:
    # Same issuer, audience (the portal may sign in with the API's own registration) and signature.
    with pytest.raises(Unauthenticated, match="not an access token"):
        validator.authenticate(f"Bearer {_token(scp=None, nonce='n-0S6_WzA2Mj')}")
    with pytest.raises(Unauthenticated, match="not an access token"):
        validator.authenticate(f"Bearer {_token(nonce='n-0S6_WzA2Mj')}")
    with pytest.raises(Unauthenticated, match="not an access token"):  # no nonce, no scp, no roles, no client
        validator.authenticate(f"Bearer {_token(scp=None, wids=None, azp=None)}")


def test_audience_must_be_a_single_matching_string(validator: TokenValidator) -> None:
    for aud in ([AUDIENCE], [AUDIENCE, "api://other"], AUDIENCE.upper()):
        with pytest.raises(Unauthenticated, match="another audience"):
            validator.authenticate(f"Bearer {_token(aud=aud)}")


def test_the_recorded_name_is_never_the_email_claim(validator: TokenValidator) -> None:
    principal = validator.authenticate(f"Bearer {_token(upn=None, email='ceo@contoso.com')}")
    assert principal.upn is None and principal.object_id == "u1"
    preferred = validator.authenticate(f"Bearer {_token(upn=None, preferred_username='a@contoso.com')}")
    assert preferred.upn == "a@contoso.com"


def test_a_slow_refresh_does_not_stall_callers_with_known_keys(fetcher: Fetcher) -> None:
    import threading

    ticks = [1000.0]
    release = threading.Event()
    entered = threading.Event()
    slow = threading.Event()

    def fetch(url: str) -> dict[str, Any]:
        if slow.is_set():
            entered.set()
            assert release.wait(10)
        return fetcher(url)

    keys = SigningKeys(
        f"{ISSUER}/.well-known/openid-configuration", fetch, min_refresh_seconds=60, monotonic=lambda: ticks[0]
    )
    v = TokenValidator(keys=keys, issuer=ISSUER, audience=AUDIENCE, tenant_id=TENANT, clock=FakeClock(NOW))
    v.authenticate(f"Bearer {_token()}")
    ticks[0] += 61
    slow.set()
    refresher = threading.Thread(target=lambda: keys.get("rotated-kid"))
    refresher.start()
    assert entered.wait(5)
    # The refresh hangs on the network; a caller whose key is known is answered meanwhile.
    done = threading.Event()

    def known_key_caller() -> None:
        v.authenticate(f"Bearer {_token()}")
        done.set()

    worker = threading.Thread(target=known_key_caller)
    worker.start()
    try:
        assert done.wait(5), "a caller with a known key waited for another caller's refresh"
    finally:
        release.set()
        refresher.join(5)
        worker.join(5)
