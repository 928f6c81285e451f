"""Entra ID's browser sign-in for a single-page app: authorization code with PKCE, refresh tokens, CORS.

`GET /{tenant}/oauth2/v2.0/authorize` shows a page listing the tenant's people; the chosen person
(a form POST back to the same URL) is sent to `redirect_uri` with a single-use code, valid ten
minutes, which `POST /{tenant}/oauth2/v2.0/token` redeems with the PKCE verifier (S256), the same
client id and redirect URI, from a browser (an `Origin` header, as Entra requires of SPAs). The
access token is a v2 token for the API's audience with the `Connector.Access` scope; a refresh
token (24 hours, like an SPA's) gets new ones. The only client is the API's own app registration
(its client id is the audience without `api://`); redirect URIs must be on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from werkzeug.wrappers import Request, Response

from .tokens import API_SCOPE, b64url

if TYPE_CHECKING:
    from .api import Api
    from .tenant import Actor

CODE_LIFETIME = 600.0
REFRESH_LIFETIME = 24 * 3600.0
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def portal_client_id(audience: str) -> str:
    """The client id of the API's app registration, which is also the portal's (SPA) client."""
    return audience.removeprefix("api://").rstrip("/")


def pkce_matches(verifier: str, challenge: str) -> bool:
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii", "replace")).digest()).rstrip(b"=")
    return hmac.compare_digest(digest, challenge.encode("ascii", "replace"))


def redirect_target(redirect_uri: str, mode: str, params: dict[str, str]) -> str:
    """Where the browser goes back to: the parameters in the query or in the fragment."""
    encoded = urlencode(params)
    if mode == "fragment":
        return f"{redirect_uri.split('#')[0]}#{encoded}"
    return f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{encoded}"


def loopback_redirect(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
        return parts.scheme in ("http", "https") and parts.hostname in LOOPBACK and not parts.fragment
    except ValueError:
        return False


@dataclass
class _Grant:
    person: Actor
    client_id: str
    redirect_uri: str = ""
    challenge: str = ""
    nonce: str | None = None
    issued: float = 0.0


class BrowserSignIn:
    """The authorize page and the browser grants of one emulator (codes and refresh tokens in memory)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.emu = api.emu
        self._codes: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._lock = threading.Lock()

    @property
    def client_id(self) -> str:
        return portal_client_id(self.emu.audience)

    def _now(self) -> float:
        return self.emu.clock.now().timestamp()

    def _person(self, key: str) -> Actor | None:
        key = key.strip().lower()
        for person in self.emu.directory.people:
            if key in (person.key.removeprefix("person:"), (person.upn or "").lower()):
                return person
        return None

    # -- authorize ----------------------------------------------------------------------------------

    def authorize(self, request: Request) -> Response:
        q = request.args
        client_id, redirect_uri = q.get("client_id", ""), q.get("redirect_uri", "")
        if client_id.lower() != self.client_id.lower():
            return self._page_error(700016, f"Application with identifier '{client_id}' was not found in Contoso.")
        if not loopback_redirect(redirect_uri):
            return self._page_error(
                50011, f"The redirect URI '{redirect_uri}' does not match the redirect URIs configured for the "
                "application (the emulator accepts http(s) URIs on loopback)."
            )  # fmt: skip
        mode = q.get("response_mode", "fragment" if q.get("response_type") != "code" else "query")
        if mode not in ("query", "fragment"):
            mode = "query"
        state = {"state": q["state"]} if "state" in q else {}

        def fail(error: str, code: int, message: str) -> Response:
            params = {"error": error, "error_description": f"AADSTS{code}: {message}", **state}
            return Response(status=302, headers={"Location": redirect_target(redirect_uri, mode, params)})

        if q.get("response_type") != "code":
            return fail("unsupported_response_type", 700054, "response_type must be 'code' for this application.")
        if not q.get("code_challenge") or q.get("code_challenge_method") != "S256":
            return fail(
                "invalid_request", 9002325, "Proof Key for Code Exchange (code_challenge, method S256) is required."
            )
        if self._bad_scope(q.get("scope", "")):
            return fail("invalid_scope", 70011, f"The provided value for the scope '{q.get('scope', '')}' is invalid.")
        person: Actor | None = None
        if request.method == "POST":
            person = self._person(request.form.get("person", ""))
        elif q.get("prompt") == "none":
            person = self._person(q.get("login_hint", ""))
            if person is None:
                return fail("login_required", 50058, "A silent sign-in request was sent but no user is signed in.")
        if person is None:
            return self._page(request, q.get("login_hint", ""), 400 if request.method == "POST" else 200)
        code = secrets.token_urlsafe(32)
        grant = _Grant(person, client_id, redirect_uri, q["code_challenge"], q.get("nonce"), self._now())
        with self._lock:  # codes and refresh tokens past their lifetime are dropped as new ones come
            self._codes = {c: g for c, g in self._codes.items() if grant.issued - g.issued <= CODE_LIFETIME}
            self._refresh = {r: g for r, g in self._refresh.items() if grant.issued - g.issued <= REFRESH_LIFETIME}
            self._codes[code] = grant
        params = {"code": code, "client_info": self._client_info(person), **state}
        params["session_state"] = secrets.token_hex(8)
        return Response(status=302, headers={"Location": redirect_target(redirect_uri, mode, params)})

    def _bad_scope(self, scope: str) -> bool:
        resources = {self.emu.audience.rstrip("/").lower(), f"api://{self.client_id.lower()}"}
        api = {f"{r}/{name}" for r in resources for name in (API_SCOPE.lower(), ".default")}
        return any(s not in OIDC_SCOPES and s not in api for s in scope.lower().split())

    def _page(self, request: Request, hint: str, status: int) -> Response:
        rows = []
        for person in self.emu.directory.people:
            key = person.key.removeprefix("person:")
            value, desc = html.escape(key), html.escape(f"upn-{key}")
            upn, name = html.escape(person.upn or ""), html.escape(person.name or "")
            hinted = ' aria-current="true"' if hint and hint.lower() == (person.upn or "").lower() else ""
            rows.append(
                f'<li><button type="submit" name="person" value="{value}" aria-describedby="{desc}"{hinted}>'
                f'{name}</button> <span id="{desc}">{upn}</span></li>'
            )
        action = html.escape(request.full_path if request.query_string else request.path)
        body = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>Sign in - Contoso (emulated Microsoft Entra ID)</title></head><body><main>"
            "<h1>Sign in to Contoso</h1><p>Emulated Microsoft Entra ID: choose who signs in.</p>"
            + ('<p role="alert">Choose one of the people below.</p>' if status == 400 else "")
            + f'<form method="post" action="{action}"><ul>{"".join(rows)}</ul></form></main></body></html>\n'
        )
        return self._html(status, body)

    def _page_error(self, code: int, message: str) -> Response:
        body = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Sign in error</title></head>'
            f"<body><main><h1>Sorry, but we're having trouble signing you in.</h1>"
            f"<p>AADSTS{code}: {html.escape(message)}</p></main></body></html>\n"
        )
        return self._html(400, body)

    @staticmethod
    def _html(status: int, body: str) -> Response:
        headers = {
            "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        }
        return Response(body, status, headers, content_type="text/html; charset=utf-8")

    # -- token --------------------------------------------------------------------------------------

    def token(self, request: Request, form: dict[str, str], grant_type: str) -> Response:
        error = self.api._aad_error
        if not request.headers.get("Origin"):
            return error(
                400, "invalid_request", 9002327,
                "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin "
                "requests.",
            )  # fmt: skip
        client_id = form.get("client_id", "")

        def invalid(code: int, message: str) -> Response:
            return error(400, "invalid_grant", code, message)

        if grant_type == "authorization_code":
            with self._lock:
                grant = self._codes.pop(form.get("code", ""), None)  # single use, whatever happens next
            if grant is None:
                return invalid(54005, "OAuth2 Authorization code was already redeemed or is unknown.")
            if self._now() - grant.issued > CODE_LIFETIME:
                return invalid(70008, "The provided authorization code has expired.")
            if client_id.lower() != grant.client_id.lower():
                return invalid(70000, "The authorization code was issued to another client.")
            if form.get("redirect_uri", "") != grant.redirect_uri:
                return invalid(50011, "The redirect URI does not match the one of the authorization request.")
            if not pkce_matches(form.get("code_verifier", ""), grant.challenge):
                return invalid(
                    501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request."
                )
        else:
            with self._lock:
                grant = self._refresh.get(form.get("refresh_token", ""))
            if grant is None:
                return invalid(9002313, "Invalid request. The refresh token is malformed or unknown.")
            if self._now() - grant.issued > REFRESH_LIFETIME:
                return invalid(
                    700084,
                    "The refresh token was issued to a single page app (SPA), and therefore has a fixed, limited "
                    "lifetime of 1.00:00:00, which is now exceeded.",
                )
            if client_id.lower() != grant.client_id.lower():
                return invalid(70000, "The refresh token was issued to another client.")
        scope = form.get("scope", "")
        if self._bad_scope(scope):
            return error(400, "invalid_scope", 70011, f"The provided value for the scope '{scope}' is invalid.")
        return self._tokens(grant, nonce=grant.nonce if grant_type == "authorization_code" else None)

    def _tokens(self, grant: _Grant, nonce: str | None) -> Response:
        now = self.emu.clock.now()
        issuer = self.emu.issuer
        access = issuer.user_claims(grant.person, now)
        access["azp"] = grant.client_id
        refresh = secrets.token_urlsafe(48)
        with self._lock:
            self._refresh[refresh] = _Grant(grant.person, grant.client_id, issued=self._now())
        lifetime = int(access["exp"]) - int(now.timestamp())
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": f"{self.emu.audience.rstrip('/')}/{API_SCOPE}",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": issuer.sign(access),
            "refresh_token": refresh,
            "refresh_token_expires_in": int(REFRESH_LIFETIME),
            "id_token": issuer.sign(issuer.id_claims(grant.person, grant.client_id, now, nonce)),
            "client_info": self._client_info(grant.person),
        }
        return Response(
            json.dumps(body), 200, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
            content_type="application/json; charset=utf-8",
        )  # fmt: skip

    def _client_info(self, person: Actor) -> str:
        return b64url(json.dumps({"uid": person.oid, "utid": self.emu.tenant_id}).encode())

    # -- logout and CORS ----------------------------------------------------------------------------

    @staticmethod
    def logout(request: Request) -> Response:
        target = request.args.get("post_logout_redirect_uri", "")
        if loopback_redirect(target):
            return Response(status=302, headers={"Location": target})
        return BrowserSignIn._html(200, '<!DOCTYPE html>\n<html lang="en"><title>Signed out</title><p>Signed out.</p>')

    @staticmethod
    def preflight(request: Request) -> Response:
        response = Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = request.headers.get("Access-Control-Request-Headers", "")
        response.headers["Access-Control-Max-Age"] = "86400"
        return BrowserSignIn.cors(request, response)

    @staticmethod
    def cors(request: Request, response: Response) -> Response:
        """Entra answers browsers of any origin on its token, discovery and key endpoints."""
        response.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin") or "*"
        response.headers["Vary"] = "Origin"
        return response
