"""Validation of callers' Entra ID access tokens (RS256 against the authority's published keys)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import jwt
from azure.core import PipelineClient
from azure.core.exceptions import AzureError
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest

from core.clock import Clock
from core.errors import Forbidden, ServiceUnavailable, Unauthenticated
from core.timefmt import wire_time
from core.troubleshooting import text

logger = logging.getLogger(__name__)

GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
SECURITY_ADMINISTRATOR = "194ae4cb-b126-40b2-bd5b-6091b380977d"
ADMIN_ROLES = {GLOBAL_ADMINISTRATOR: "Global Administrator", SECURITY_ADMINISTRATOR: "Security Administrator"}

# What an administrator may change, as the 403 names it.
AdminAction = Literal["connector", "policies", "alerts"]
ADMIN_ACTIONS: dict[AdminAction, str] = {
    "connector": "Connecting or disconnecting Microsoft Azure",
    "policies": "Creating, changing or deleting policies",
    "alerts": "Changing an alert's status or comment",
}

ALGORITHM = "RS256"
FAILED_FETCH_PAUSE = 10.0  # seconds between attempts while the keys have never been fetched


API_SCOPE = "Connector.Access"  # the delegated scope a user's token must carry in `scp`
APP_ROLES = frozenset({"Activities.Read.All"})  # app roles of the API; an app-only token carries one in `roles`


@dataclass(frozen=True)
class Principal:
    """The validated caller: a signed-in user (delegated token) or an application (app-only token)."""

    object_id: str | None
    upn: str | None
    name: str | None
    tenant_id: str
    role_ids: frozenset[str] = field(default_factory=frozenset)
    app_only: bool = False
    app_id: str | None = None

    @property
    def display(self) -> str:
        """For logs and messages; records keep `upn` and `object_id` separately."""
        return self.upn or self.name or self.object_id or "unknown"

    @property
    def is_admin(self) -> bool:
        return not self.app_only and bool(self.role_ids & ADMIN_ROLES.keys())


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
    """The authority's JWKS, cached; refetched when an unknown kid appears, at most once per interval.

    The network is never called while holding the lock that readers take: a refresh runs under
    its own lock (one at a time), and a reader whose key is already known never waits for it.
    """

    def __init__(
        self,
        openid_configuration_url: str,
        fetch: JsonFetcher,
        *,
        min_refresh_seconds: float = 60.0,
        max_age_seconds: float = 24 * 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config_url = openid_configuration_url
        self._fetch = fetch
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._monotonic = monotonic
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._failed_at: float | None = None
        self._lock = threading.Lock()  # guards the fields above; held only for reads and assignments
        self._refreshing = threading.Lock()  # one refresh at a time; never taken while holding _lock
        self.fetch_count = 0

    def get(self, kid: str) -> jwt.PyJWK | None:
        need = self._needs_refresh(kid)
        if need == "no":
            return self._key(kid)
        if need == "stale":
            # Known key, old set: one caller refreshes, the others go on with what they have.
            if self._refreshing.acquire(blocking=False):
                try:
                    self._refresh_if_needed(kid)
                finally:
                    self._refreshing.release()
            return self._key(kid)
        with self._refreshing:  # an unknown kid, or nothing fetched yet: wait for (or run) one refresh
            self._refresh_if_needed(kid)
        return self._key(kid)

    def _key(self, kid: str) -> jwt.PyJWK | None:
        with self._lock:
            return self._keys.get(kid)

    def _needs_refresh(self, kid: str) -> str:
        with self._lock:
            now = self._monotonic()
            if self._fetched_at is None:
                if self._failed_at is not None and now - self._failed_at < FAILED_FETCH_PAUSE:
                    raise KeysUnavailable(text("SigningKeysUnavailable"))
                return "missing"
            if kid not in self._keys:
                return "missing" if now - self._fetched_at >= self._min_refresh else "no"
            return "stale" if now - self._fetched_at > self._max_age else "no"

    def _refresh_if_needed(self, kid: str) -> None:
        if self._needs_refresh(kid) == "no":  # another caller refreshed while this one waited
            return
        now = self._monotonic()
        try:
            config = self._fetch(self._config_url)
            jwks_uri = config.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise ValueError("the OpenID configuration has no jwks_uri")
            document = self._fetch(jwks_uri)
            keyset = jwt.PyJWKSet.from_dict(dict(document))
        except (AzureError, ValueError, jwt.PyJWKSetError) as exc:
            logger.warning("Could not refresh the token signing keys from %s: %s", self._config_url, exc)
            with self._lock:
                if self._fetched_at is None:
                    self._failed_at = now
                    raise KeysUnavailable(text("SigningKeysUnavailable")) from exc
                self._fetched_at = now  # keep the old keys; do not hammer the authority
            return
        keys = {k.key_id: k for k in keyset.keys if k.key_id}
        with self._lock:
            self.fetch_count += 1
            self._failed_at = None
            self._keys = keys
            self._fetched_at = now


class TokenValidator:
    """Checks `Authorization: Bearer <token>` headers and returns the caller."""

    def __init__(
        self, *, keys: SigningKeys, issuer: str, audience: str, tenant_id: str, clock: Clock, leeway_seconds: int = 120
    ) -> None:
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
                    # `aud` must be this API's audience as a single string, not a list containing it.
                    "strict_aud": True,
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
        app_only = _permission(claims)
        wids = claims.get("wids")
        roles = frozenset(str(w).lower() for w in wids) if isinstance(wids, list) and not app_only else frozenset()
        return Principal(
            object_id=_str(claims.get("oid")),
            # Never `email`: it is mutable and can be set to anybody's address.
            upn=None if app_only else _str(claims.get("upn")) or _str(claims.get("preferred_username")),
            name=_str(claims.get("name")) or _str(claims.get("app_displayname")),
            tenant_id=tid,
            role_ids=roles,
            app_only=app_only,
            app_id=_str(claims.get("azp")) or _str(claims.get("appid")),
        )

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock.now().timestamp()
        exp = _number(claims.get("exp"), "exp")
        if now > exp + self._leeway:
            raise Unauthenticated(f"The bearer token expired at {_when(exp)}.")
        nbf = claims.get("nbf")
        if nbf is not None and now + self._leeway < _number(nbf, "nbf"):
            raise Unauthenticated(f"The bearer token is not valid before {_when(_number(nbf, 'nbf'))}.")


def _permission(claims: Mapping[str, Any]) -> bool:
    """Whether the token is app-only; raises when it grants nothing this API accepts.

    An access token for this API is delegated (the `Connector.Access` scope in `scp`) or app-only
    (an app role of the API in `roles`, and `idtyp` `app` when present; a client-credentials token
    without a role is app-only too, and refused for want of one). An ID token (a `nonce`, or no
    `scp`, `roles` or client claim `azp`/`appid`) is not an access token at all.
    """
    scopes = claims.get("scp")
    roles = claims.get("roles")
    client = claims.get("azp") or claims.get("appid")  # every access token names the client it was issued to
    if "nonce" in claims or (scopes is None and roles is None and not client):
        raise Unauthenticated(
            "The bearer token is not an access token for this API (an ID token?); request an access "
            f"token for the {API_SCOPE} scope."
        )
    if scopes is not None:
        if claims.get("idtyp") == "app":
            raise Unauthenticated("The bearer token is app-only but carries delegated scopes.")
        granted = set(scopes.split()) if isinstance(scopes, str) else set()
        if API_SCOPE not in granted:
            raise Forbidden(text("ScopeMissing", scope=API_SCOPE, granted=" ".join(sorted(granted)) or "none"))
        return False
    if claims.get("idtyp") not in (None, "app"):
        raise Unauthenticated("The bearer token carries app roles but is not app-only.")
    granted_roles = {str(r) for r in roles} if isinstance(roles, list) else set()
    if not granted_roles & APP_ROLES:
        raise Forbidden(text("AppRoleMissing", roles=" or ".join(sorted(APP_ROLES))))
    return True


def require_admin(principal: Principal, action: AdminAction) -> None:
    """Forbidden, naming `action`, unless a signed-in administrator (not an application) called."""
    if principal.app_only:
        raise Forbidden(text("AdminNotApplication", action=ADMIN_ACTIONS[action]))
    if not principal.is_admin:
        needed = " or ".join(ADMIN_ROLES.values())
        raise Forbidden(text("AdminRoleRequired", action=ADMIN_ACTIONS[action], roles=needed))


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
    return wire_time(datetime.fromtimestamp(epoch, UTC))
