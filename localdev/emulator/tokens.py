"""Signing keys, the JWKS, and the tokens the emulated Entra ID issues (and ARM accepts).

User tokens (for the connector's own HTTP API) look like v2.0 Entra access tokens with the API's
delegated scope `Connector.Access` in `scp`; `app` tokens are what an application gets for the API
with the client-credentials grant (app-only, the API's app role `Activities.Read.All` in `roles`);
app tokens from the client-credentials grant for ARM look like the v1.0 tokens ARM is issued.
Forged and broken variants exist for tests: expired, not yet valid, wrong audience/issuer/tenant,
signed by an unknown key, `alg: none`, HS256 signed with the public key as the secret (the
key-confusion attack), an app-only token without an app role, and an ID token.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.utils import base64url_encode, to_base64url_uint

from .tenant import Actor, Directory, stable_guid

TOKEN_KINDS = (
    "global_admin",
    "security_admin",
    "user",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "wrong_issuer",
    "wrong_tenant",
    "unknown_key",
    "alg_none",
    "hs256_public_key",
    "app",
    "app_without_role",
    "id_token",
)
API_SCOPE = "Connector.Access"
API_APP_ROLE = "Activities.Read.All"
USER_TOKEN_LIFETIME = 3600 + 900
APP_TOKEN_LIFETIME = 3599


def b64url(data: bytes) -> str:
    return base64url_encode(data).decode("ascii")


@dataclass
class SigningKey:
    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @functools.cached_property
    def kid(self) -> str:
        """The certificate's SHA-1 thumbprint, as Entra ID's kid and x5t."""
        return b64url(self.certificate.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is SHA-1 by definition

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self, issuer: str) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": to_base64url_uint(numbers.n).decode("ascii"),
            "e": to_base64url_uint(numbers.e).decode("ascii"),
            "x5c": [base64.b64encode(der).decode("ascii")],
            "issuer": issuer,
        }

    @classmethod
    def generate(cls, common_name: str) -> SigningKey:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .sign(private_key, hashes.SHA256())
        )
        return cls(private_key, certificate)

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        blob = path.read_bytes()
        # Our own keys, written by save: skipping the (slow) RSA consistency check is safe.
        private_key = serialization.load_pem_private_key(blob, password=None, unsafe_skip_rsa_key_validation=True)
        assert isinstance(private_key, rsa.RSAPrivateKey)
        return cls(private_key, x509.load_pem_x509_certificate(blob))

    def save(self, path: Path) -> None:
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.write_bytes(pem + self.certificate.public_bytes(serialization.Encoding.PEM))
        path.chmod(0o600)


class KeySet:
    """The published signing keys (the first signs; the second is published as a rollover key)."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.keys: list[SigningKey] = []
        for index in range(2):
            path = state_dir / f"signing-key-{index}.pem" if state_dir is not None else None
            if path is not None and path.exists():
                self.keys.append(SigningKey.load(path))
                continue
            key = SigningKey.generate(f"emulated-entra-signing-{index}")
            if path is not None:
                key.save(path)
            self.keys.append(key)

    @property
    def signing(self) -> SigningKey:
        return self.keys[0]

    @functools.cached_property
    def unknown(self) -> SigningKey:
        """A key that is not published, for forged tokens."""
        return SigningKey.generate("not-published")

    def by_kid(self, kid: str) -> SigningKey | None:
        return next((key for key in self.keys if key.kid == kid), None)

    def jwks(self, issuer: str) -> dict[str, Any]:
        return {"keys": [key.jwk(issuer) for key in self.keys]}


class TokenIssuer:
    """Mints tokens for the emulated tenant."""

    def __init__(self, keys: KeySet, directory: Directory, url: str, audience: str) -> None:
        self.keys = keys
        self.directory = directory
        self.url = url
        self.audience = audience

    @property
    def tenant_id(self) -> str:
        return self.directory.tenant_id

    @property
    def issuer_v2(self) -> str:
        return f"{self.url}/{self.tenant_id}/v2.0"

    @property
    def issuer_v1(self) -> str:
        return f"{self.url}/{self.tenant_id}/"

    def sign(self, claims: dict[str, Any], key: SigningKey | None = None) -> str:
        """RS256, with the published signing key unless another is given."""
        key = key or self.keys.signing
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "x5t": key.kid})

    def id_claims(self, actor: Actor, client_id: str, now: datetime, nonce: str | None) -> dict[str, Any]:
        """The ID token a browser sign-in returns to the client (`aud` is the client, never an API)."""
        iat = int(now.timestamp())
        claims: dict[str, Any] = {
            "aud": client_id,
            "iss": self.issuer_v2,
            "iat": iat,
            "nbf": iat,
            "exp": iat + 3600,
            "name": actor.name,
            "oid": actor.oid,
            "preferred_username": actor.upn,
            "rh": f"0.{secrets.token_urlsafe(40)}.",
            "sub": b64url(hashlib.sha256(f"{self.directory.seed}|{actor.oid}|{client_id}".encode()).digest()),
            "tid": self.tenant_id,
            "uti": secrets.token_urlsafe(16),
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        return claims

    def _claims(self, audience: str, issuer: str, now: datetime, lifetime: int, **claims: Any) -> dict[str, Any]:
        """The claims every access token carries, plus `claims`."""
        iat = int(now.timestamp())
        return {
            "aud": audience,
            "iss": issuer,
            "iat": iat,
            "nbf": iat,
            "exp": iat + lifetime,
            "aio": secrets.token_urlsafe(30),
            "rh": f"0.{secrets.token_urlsafe(40)}.",
            "tid": self.tenant_id,
            "uti": secrets.token_urlsafe(16),
            **claims,
        }

    def user_claims(self, actor: Actor, now: datetime, wids: tuple[str, ...] | None = None) -> dict[str, Any]:
        claims = self._claims(
            self.audience,
            self.issuer_v2,
            now,
            USER_TOKEN_LIFETIME,
            azp=stable_guid(self.directory.seed, "portal-client"),
            azpacr="0",
            idtyp="user",
            name=actor.name if actor.name is not None else f"{actor.given_name} {actor.surname}",
            oid=actor.oid,
            preferred_username=actor.upn,
            scp=API_SCOPE,
            sub=b64url(hashlib.sha256(f"{self.directory.seed}|{actor.oid}|{self.audience}".encode()).digest()),
            upn=actor.upn,
            ver="2.0",
            wids=list(actor.wids if wids is None else wids),
        )
        if actor.given_name:
            claims["given_name"] = actor.given_name
        if actor.surname:
            claims["family_name"] = actor.surname
        if actor.ipaddr:
            claims["ipaddr"] = actor.ipaddr
        if actor.upn and "#EXT#" in actor.upn:
            claims["acct"] = 1  # a guest; `idp` names the home tenant's issuer
            claims["idp"] = f"https://sts.windows.net/{stable_guid(self.directory.seed, 'guest-home-tenant')}/"
        return claims

    def mint(self, kind: str, now: datetime, overrides: dict[str, Any]) -> str:
        """A user token of one of TOKEN_KINDS; overrides replace claims (None removes one)."""
        if kind not in TOKEN_KINDS:
            raise ValueError(f"unknown token kind {kind!r}; expected one of {', '.join(TOKEN_KINDS)}")
        if kind in ("app", "app_without_role"):
            claims = self.api_app_claims(now, roles=[API_APP_ROLE] if kind == "app" else None)
        else:
            claims = self.user_claims(self.directory.user(kind), now)
        key: SigningKey | None = None
        iat = claims["iat"]
        if kind == "id_token":
            # What the sign-in returns beside the access token: for the client, never for an API.
            for name in ("scp", "wids", "azp", "azpacr", "idtyp", "rh"):
                claims.pop(name, None)
            claims.update(nonce=secrets.token_urlsafe(16), ver="2.0")
        if kind == "expired":
            claims.update(iat=iat - 7200, nbf=iat - 7200, exp=iat - 3600)
        elif kind == "not_yet_valid":
            claims.update(nbf=iat + 3600, exp=iat + 7200)
        elif kind == "wrong_audience":
            claims["aud"] = "api://some-other-application"
        elif kind == "wrong_issuer":
            claims["iss"] = f"https://sts.windows.net/{self.tenant_id}/"
        elif kind == "wrong_tenant":
            other = stable_guid(self.directory.seed, "other-tenant")
            claims["tid"] = other
            claims["iss"] = f"{self.url}/{other}/v2.0"
        elif kind == "unknown_key":
            key = self.keys.unknown
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        if kind == "alg_none":
            return jwt.encode(claims, "", algorithm="none")
        if kind == "hs256_public_key":
            # PyJWT refuses a PEM key as an HMAC secret, so this one is signed by hand.
            header = {"alg": "HS256", "typ": "JWT", "kid": self.keys.signing.kid}
            signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
            mac = hmac.new(self.keys.signing.public_pem, signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{b64url(mac)}"
        return self.sign(claims, key)

    def api_app_claims(self, now: datetime, roles: list[str] | None) -> dict[str, Any]:
        """An app-only v2.0 access token for the connector's API (another application of the tenant)."""
        object_id = stable_guid(self.directory.seed, "service-client", "sp-object-id")
        claims = self._claims(
            self.audience,
            self.issuer_v2,
            now,
            APP_TOKEN_LIFETIME,
            azp=stable_guid(self.directory.seed, "service-client"),
            azpacr="1",
            idtyp="app",
            oid=object_id,
            sub=object_id,
            ver="2.0",
        )
        if roles:
            claims["roles"] = roles
        return claims

    def app_token(self, resource: str, now: datetime) -> str:
        """The access token the client-credentials grant returns for the connector (v1.0 shape, like ARM's)."""
        app = self.directory.connector
        claims = self._claims(
            resource,
            self.issuer_v1,
            now,
            APP_TOKEN_LIFETIME,
            app_displayname=app.display_name,
            appid=app.client_id,
            appidacr="1",
            azp=app.client_id,
            idp=self.issuer_v1,
            idtyp="app",
            oid=app.object_id,
            sub=app.object_id,
            ver="1.0",
            xms_tcdt=1469565974,
        )
        return self.sign(claims)


class TokenRejected(Exception):
    """ARM refuses the bearer token: 401 with this error code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _arm_time(epoch: int) -> str:
    when = datetime.fromtimestamp(epoch, UTC)
    return f"{when.month}/{when.day}/{when.year} {when.strftime('%I:%M:%S %p').lstrip('0')}"


def validate_arm_token(
    token: str,
    keys: KeySet,
    *,
    tenant_id: str,
    issuers: tuple[str, ...],
    audiences: tuple[str, ...],
    now: datetime,
    check_lifetime: bool = True,
) -> dict[str, Any]:
    """Validate a bearer token as ARM does; return its claims or raise TokenRejected."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRejected("InvalidAuthenticationToken", "The access token is invalid.") from None
    if header.get("alg") != "RS256":
        raise TokenRejected("InvalidAuthenticationToken", "The access token is invalid.")
    key = keys.by_kid(str(header.get("kid", "")))
    if key is None:
        raise TokenRejected("InvalidAuthenticationToken", "The access token is invalid: its signing key is not known.")
    try:
        # The signature only: audience, issuer and lifetime are checked below, with ARM's own codes and messages.
        claims = json.loads(jwt.api_jws.decode(token, key.private_key.public_key(), algorithms=["RS256"]))
    except jwt.InvalidSignatureError:
        raise TokenRejected("InvalidAuthenticationToken", "The access token has an invalid signature.") from None
    except (jwt.PyJWTError, ValueError):
        raise TokenRejected("InvalidAuthenticationToken", "The access token is invalid.") from None
    if not isinstance(claims, dict):
        raise TokenRejected("InvalidAuthenticationToken", "The access token is invalid.")
    if claims.get("iss") not in issuers or claims.get("tid") != tenant_id:
        raise TokenRejected(
            "InvalidAuthenticationTokenTenant",
            f"The access token is from the wrong issuer '{claims.get('iss')}'. It must match the tenant "
            f"'{issuers[0]}' associated with this subscription. Please use the authority (URL) "
            f"'{issuers[0]}' to get the token.",
        )
    aud = claims.get("aud")
    if not isinstance(aud, str) or aud.rstrip("/") not in {a.rstrip("/") for a in audiences}:
        allowed = ",".join(f"'{a}'" for a in audiences)
        raise TokenRejected(
            "InvalidAuthenticationTokenAudience",
            f"The access token has been obtained for wrong audience or resource '{aud}'. "
            f"It should exactly match with one of the allowed audiences {allowed}.",
        )
    if check_lifetime:
        current = int(now.timestamp())
        exp = claims.get("exp")
        nbf = claims.get("nbf")
        if not isinstance(exp, int) or exp <= current:
            raise TokenRejected(
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{_arm_time(exp if isinstance(exp, int) else 0)}' is earlier "
                f"than current UTC time '{_arm_time(current)}'.",
            )
        if isinstance(nbf, int) and nbf > current + 300:
            raise TokenRejected(
                "InvalidAuthenticationToken", f"The access token is not yet valid: it is valid from '{_arm_time(nbf)}'."
            )
    return claims
