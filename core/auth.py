"""Validation of callers' Entra ID access tokens (RS256 against the authority's published keys)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from azure.core import PipelineClient
from azure.core.exceptions import AzureError
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest

from core.clock import Clock
from core.errors import Forbidden, ServiceUnavailable, Unauthenticated

logger = logging.getLogger(__name__)

GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
SECURITY_ADMINISTRATOR = "194ae4cb-b126-40b2-bd5b-6091b380977d"
ADMIN_ROLES = {GLOBAL_ADMINISTRATOR: "Global Administrator", SECURITY_ADMINISTRATOR: "Security Administrator"}

ALGORITHM = "RS256"
FAILED_FETCH_PAUSE = 10.0  # seconds between attempts while the keys have never been fetched


@dataclass(frozen=True)
class Principal:
    """The validated caller."""

    object_id: str | None
    upn: str | None
    name: str | None
    tenant_id: str
    role_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def display(self) -> str:
        return self.upn or self.name or self.object_id or "unknown"

    @property
    def is_admin(self) -> bool:
        return bool(self.role_ids & ADMIN_ROLES.keys())


class KeysUnavailable(ServiceUnavailable):
    """The authority's keys cannot be fetched: our problem, not the caller's (503)."""


JsonFetcher = Callable[[str], Mapping[str, Any]]


def pipeline_fetcher(timeout: float = 10.0) -> JsonFetcher:
    """Fetch JSON documents through azure-core (same TLS trust and retries as the rest of the app)."""
    client: PipelineClient[Any, Any] = PipelineClient(
        base_url="", policies=[RetryPolicy(retry_total=2, retry_backoff_factor=0.3)]
    )

    def fetch(url: str) -> Mapping[str, Any]:
        response = client.send_request(HttpRequest("GET", url), connection_timeout=timeout, read_timeout=timeout)
        response.raise_for_status()
        document = json.loads(response.read())
        if not isinstance(document, dict):
            raise ValueError(f"{url} did not return a JSON object")
        return document

    return fetch


class SigningKeys:
    """The authority's JWKS, cached; refetched when an unknown kid appears, at most once per interval."""

    def __init__(self, openid_configuration_url: str, fetch: JsonFetcher, *, min_refresh_seconds: float = 60.0,
                 max_age_seconds: float = 24 * 3600.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._config_url = openid_configuration_url
        self._fetch = fetch
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._monotonic = monotonic
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._failed_at: float | None = None
        self._lock = threading.Lock()
        self.fetch_count = 0

    def get(self, kid: str) -> jwt.PyJWK | None:
        with self._lock:
            now = self._monotonic()
            if self._fetched_at is None and self._failed_at is not None and now - self._failed_at < FAILED_FETCH_PAUSE:
                raise KeysUnavailable("The token signing keys could not be fetched; try again shortly.")
            stale = self._fetched_at is None or now - self._fetched_at > self._max_age
            unknown = kid not in self._keys
            may_refresh = self._fetched_at is None or now - self._fetched_at >= self._min_refresh
            if stale or (unknown and may_refresh):
                self._refresh(now)
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        try:
            config = self._fetch(self._config_url)
            jwks_uri = config.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise ValueError("the OpenID configuration has no jwks_uri")
            document = self._fetch(jwks_uri)
            keyset = jwt.PyJWKSet.from_dict(dict(document))
        except (AzureError, ValueError, jwt.PyJWKSetError) as exc:
            logger.warning("Could not refresh the token signing keys from %s: %s", self._config_url, exc)
            if self._fetched_at is None:
                self._failed_at = now
                raise KeysUnavailable("The token signing keys could not be fetched; try again shortly.") from exc
            self._fetched_at = now  # keep the old keys; do not hammer the authority
            return
        self.fetch_count += 1
        self._failed_at = None
        self._keys = {k.key_id: k for k in keyset.keys if k.key_id}
        self._fetched_at = now


class TokenValidator:
    """Checks `Authorization: Bearer <token>` headers and returns the caller."""

    def __init__(self, *, keys: SigningKeys, issuer: str, audience: str, tenant_id: str, clock: Clock,
                 leeway_seconds: int = 120) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._tenant_id = tenant_id.lower()
        self._clock = clock
        self._leeway = leeway_seconds

    def authenticate(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:  # DecodeError, or a header PyJWT refuses (e.g. a non-string kid)
            raise Unauthenticated("The bearer token is malformed.") from exc
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"The bearer token must be signed with {ALGORITHM}.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("The bearer token names no signing key (kid).")
        key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("The bearer token is signed by a key the authority does not publish.")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": ["exp", "iss", "aud", "tid"],
                    # Time is checked below against the app's clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("The bearer token is for another audience.") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("The bearer token was issued by another authority.") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthenticated("The bearer token's signature is invalid.") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"The bearer token lacks the {exc.claim} claim.") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("The bearer token is invalid.") from exc
        self._check_times(claims)
        tid = str(claims.get("tid", "")).lower()
        if tid != self._tenant_id:
            raise Unauthenticated("The bearer token belongs to another tenant.")
        wids = claims.get("wids")
        roles = frozenset(str(w).lower() for w in wids) if isinstance(wids, list) else frozenset()
        return Principal(
            object_id=_str(claims.get("oid")),
            upn=_str(claims.get("upn")) or _str(claims.get("preferred_username")) or _str(claims.get("email")),
            name=_str(claims.get("name")),
            tenant_id=tid,
            role_ids=roles,
        )

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock.now().timestamp()
        exp = _number(claims.get("exp"), "exp")
        if now > exp + self._leeway:
            raise Unauthenticated(f"The bearer token expired at {_when(exp)}.")
        nbf = claims.get("nbf")
        if nbf is not None and now + self._leeway < _number(nbf, "nbf"):
            raise Unauthenticated(f"The bearer token is not valid before {_when(_number(nbf, 'nbf'))}.")


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        needed = " or ".join(ADMIN_ROLES.values())
        raise Forbidden(f"Connecting or disconnecting Microsoft Azure needs the {needed} role in Entra ID.")


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("An Authorization header with a bearer token is required.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated("The Authorization header must use the Bearer scheme.")
    token = token.strip()
    if not token or token.count(".") != 2:
        raise Unauthenticated("The bearer token is malformed.")
    return token


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(f"The bearer token's {name} claim is not a number.")
    return float(value)


def _when(epoch: float) -> str:

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
