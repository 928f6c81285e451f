"""The HTTP surface: Entra ID endpoints, the ARM endpoints, and the `/_emulator/` control API.

A WSGI app routed with werkzeug. Paths of Entra ID and ARM match case-insensitively; ARM checks
the bearer token before anything else, then the method (GET or HEAD), then the route.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .odata_filter import FilterError, parse_filter
from .signin import BrowserSignIn
from .tenant import TENANT_DOMAIN, TENANT_INITIAL_DOMAIN, Subscription
from .timefmt import to_ticks
from .tokens import TokenRejected, validate_arm_token

if TYPE_CHECKING:  # for annotations only: the emulator imports this module, never the reverse
    from .emulator import Emulator

logger = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024


ACTIVITY_LOG_API_VERSIONS = ("2015-04-01",)
SUBSCRIPTION_API_VERSIONS = (
    "2014-04-01",
    "2015-01-01",
    "2016-06-01",
    "2018-06-01",
    "2019-06-01",
    "2019-11-01",
    "2020-01-01",
    "2021-01-01",
    "2022-01-01",
    "2022-12-01",
)
ACTIVITY_LOG_SUFFIX = "/providers/microsoft.insights/eventtypes/management/values"
READ_BUCKET = 250.0
READ_REFILL_PER_SECOND = 25.0
_REGIONS = ("westeurope", "northeurope", "eastus2", "westus2")
_SKIP_TOKEN_FIELDS = ("asOf", "end", "after", "id", "f")
READ_ACTION = "Microsoft.Insights/eventtypes/values/read"
# What ARM answers a 5xx fault with: status -> (code, message).
_SERVER_ERRORS = {
    500: ("InternalServerError", "Encountered internal server error."),
    502: ("BadGateway", "The gateway received an invalid response from 'Microsoft.Insights'."),
    503: ("ServiceUnavailable", "The server (leader) is currently unable to handle the request."),
    504: (
        "GatewayTimeout",
        "The gateway did not receive a response from 'Microsoft.Insights' within the specified time period.",
    ),
}


class _Request(Request):
    max_content_length = MAX_BODY


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status, headers, content_type="application/json; charset=utf-8"
    )


def arm_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": {"code": code, "message": message}}, headers)


def _shard(sub_id: str) -> str:
    digest = hashlib.sha256(sub_id.lower().encode()).digest()
    return f"{_REGIONS[digest[0] % len(_REGIONS)]}!shard{digest[1] % 8:02d}"


def _read_skip_token(token: str) -> dict[str, str] | None:
    """The fields of a `$skipToken` this emulator wrote (`<region>!<shard>;asOf=..;end=..;...`), else None."""
    parts = token.split(";")
    fields: dict[str, str] = {}
    for part in parts[1:]:
        name, sep, value = part.partition("=")
        if sep:
            fields[name] = value
    if not parts[0] or "!" not in parts[0] or any(name not in fields for name in _SKIP_TOKEN_FIELDS):
        return None
    try:
        int(fields["asOf"]), int(fields["end"]), int(fields["after"])
    except ValueError:
        return None
    return fields


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _routes(*rules: Rule) -> Map:
    return Map(list(rules), strict_slashes=False, merge_slashes=False)


ENTRA_ROUTES = _routes(
    Rule("/<tenant>/v2.0/.well-known/openid-configuration", endpoint="openid"),
    Rule("/<tenant>/discovery/v2.0/keys", endpoint="keys"),
    Rule("/<tenant>/oauth2/v2.0/token", endpoint="token", methods=["POST"]),
    Rule("/<tenant>/oauth2/v2.0/authorize", endpoint="authorize", methods=["GET", "POST"]),
    Rule("/<tenant>/oauth2/v2.0/logout", endpoint="logout", methods=["GET"]),
)
ARM_ROUTES = _routes(
    Rule("/subscriptions", endpoint="subscriptions"),
    Rule("/subscriptions/<sub_id>", endpoint="subscription"),
    Rule(f"/subscriptions/<sub_id>{ACTIVITY_LOG_SUFFIX}", endpoint="activity_log"),
)
CONTROL_ROUTES = _routes(
    Rule("/info", endpoint="info", methods=["GET"]),
    Rule("/tokens", endpoint="mint", methods=["POST"]),
    Rule("/page-latency", endpoint="page_latency", methods=["PUT", "POST"]),
)


def _match(routes: Map, path: str, method: str) -> tuple[str, Mapping[str, Any]]:
    """The endpoint and values for a path (a trailing slash ignored); raises NotFound or MethodNotAllowed."""
    endpoint, values = routes.bind("emulator").match(path.rstrip("/") or "/", method)
    return str(endpoint), values


class Api:
    """The WSGI app: routes one request to Entra ID, ARM or the control API, and records it."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        # Per subscription: (tokens left, emulator time in seconds) of ARM's global read bucket.
        self._read_buckets: dict[str, tuple[float, float]] = {}
        self.signin = BrowserSignIn(self)

    # -- entry point --------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = _Request(environ)
        try:
            response = self.handle(request)
        except RequestEntityTooLarge:
            response = arm_error(413, "RequestEntityTooLarge", "The request body is too large.")
        except HTTPException as exc:
            response = arm_error(exc.code or 400, "BadRequest", exc.description or "Bad request.")
        except Exception:
            logger.exception("emulator failed to answer %s %s", request.method, request.path)
            response = arm_error(500, "InternalServerError", "The emulator failed to answer the request.")
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        path = request.path
        if path == "/_emulator" or path.startswith("/_emulator/"):
            return self._control(request, path[len("/_emulator") :])
        query = self._query(request)
        response = self._route(request, path, query)
        self.emu.record_request(request.method, path, query, response.status_code)
        return response

    @staticmethod
    def _query(request: Request) -> dict[str, str]:
        return dict(request.args.items(multi=True))

    def _route(self, request: Request, path: str, query: dict[str, str]) -> Response:
        lowered = path.lower()
        if lowered.startswith(("/subscriptions", "/providers", "/tenants")):
            return self._arm(request, path, query)
        if len([p for p in path.split("/") if p]) >= 2:
            return self._entra(request, path)
        return arm_error(404, "NotFound", f"The path '{path}' is not served by this emulator.")

    # -- Entra ID -----------------------------------------------------------------------------------

    def _tenant_matches(self, tenant: str) -> bool:
        return tenant.lower() in (self.emu.tenant_id, TENANT_DOMAIN, TENANT_INITIAL_DOMAIN)

    def _aad_error(self, status: int, error: str, code: int, message: str) -> Response:
        now = self.emu.clock.now()
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        return _json(
            status,
            {
                "error": error,
                "error_description": (
                    f"AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\n"
                    f"Timestamp: {stamp}"
                ),
                "error_codes": [code],
                "timestamp": stamp,
                "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": f"{self.emu.url}/error?code={code}",
            },
        )

    def _missing(self, parameter: str) -> Response:
        message = f"The request body must contain the following parameter: '{parameter}'."
        return self._aad_error(400, "invalid_request", 900144, message)

    def _entra(self, request: Request, path: str) -> Response:
        tenant = path.strip("/").split("/")[0]
        endpoint: str | None = None
        if request.method == "OPTIONS":  # a browser's CORS preflight
            return self.signin.preflight(request)
        try:
            endpoint, _ = _match(ENTRA_ROUTES, path.lower(), request.method)
        except NotFound:
            return self._aad_error(404, "invalid_request", 90010, f"The path '{path}' is not supported.")
        except MethodNotAllowed:
            pass
        if not self._tenant_matches(tenant):
            return self._aad_error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
                "into the correct cloud.",
            )
        if endpoint == "authorize":
            return self.signin.authorize(request)
        if endpoint == "logout":
            return self.signin.logout(request)
        if endpoint == "openid":
            return self.signin.cors(request, _json(200, self.openid_configuration()))
        if endpoint == "keys":
            return self.signin.cors(request, _json(200, self.emu.keys.jwks(self.emu.issuer.issuer_v2)))
        if endpoint is None:
            return self._aad_error(405, "invalid_request", 900561, "The endpoint only accepts POST requests.")
        return self.signin.cors(request, self._token(request))

    def openid_configuration(self) -> dict[str, Any]:
        """Entra ID's discovery document, without its `claims_supported` list (no client here reads it)."""
        base = f"{self.emu.url}/{self.emu.tenant_id}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.emu.url}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def _known_resource(self, resource: str) -> bool:
        candidates = {a.rstrip("/").lower() for a in self.emu.arm_audiences}
        candidates.add(self.emu.audience.rstrip("/").lower())
        return resource.rstrip("/").lower() in candidates

    def _token(self, request: Request) -> Response:
        form = dict(parse_qsl(request.get_data().decode("utf-8", "replace"), keep_blank_values=True))
        grant, client_id, client_secret = (form.get(k, "") for k in ("grant_type", "client_id", "client_secret"))
        if not grant:
            return self._missing("grant_type")
        if grant in ("authorization_code", "refresh_token"):  # a browser's sign-in
            return self.signin.token(request, form, grant)
        if grant != "client_credentials":
            return self._aad_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'. This emulator issues tokens for the "
                "client_credentials, authorization_code and refresh_token grants only.",
            )
        if not client_id:
            return self._missing("client_id")
        app = self.emu.directory.connector
        if client_id.lower() != app.client_id:
            return self._aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory 'Contoso'. This can "
                "happen if the application has not been installed by the administrator of the tenant or consented "
                "to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            )
        if not client_secret:
            return self._aad_error(
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            )
        if self.emu.sign_in_rejected or client_secret != app.client_secret:
            return self._aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                f"value, not the client secret ID, for a secret added to app '{app.client_id}'.",
            )
        scopes = [s for s in form.get("scope", "").split() if s not in ("openid", "profile", "offline_access")]
        if not scopes:
            return self._missing("scope")
        if len(scopes) > 1 or not scopes[0].endswith("/.default"):
            return self._aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {' '.join(scopes)} is not valid. Client credential flows must have "
                "a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = scopes[0].removesuffix("/.default")
        if not self._known_resource(resource):
            return self._aad_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named Contoso. This can happen "
                "if the application has not been installed by the administrator of the tenant or consented to by any "
                "user in the tenant. You might have sent your authentication request to the wrong tenant.",
            )
        token = self.emu.issuer.app_token(resource, self.emu.clock.now())
        body = {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        return _json(200, body, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    # -- ARM ----------------------------------------------------------------------------------------

    def _arm_headers(self) -> dict[str, str]:
        return {
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-correlation-request-id": str(uuid.uuid4()),
            "x-ms-ratelimit-remaining-subscription-reads": "249",
            "Cache-Control": "no-cache",
        }

    def _authenticate(self, request: Request) -> dict[str, Any] | Response:
        header = request.headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            challenge = (
                f'Bearer authorization_uri="{self.emu.url}/{self.emu.tenant_id}", error="invalid_token", '
                "error_description=\"The authentication failed because of missing 'Authorization' header.\""
            )
            problem = "provided in an invalid format" if header else "missing"
            message = f"Authentication failed. The 'Authorization' header is {problem}."
            return arm_error(401, "AuthenticationFailed", message, {"WWW-Authenticate": challenge})
        try:
            return validate_arm_token(
                token.strip(),
                self.emu.keys,
                tenant_id=self.emu.tenant_id,
                issuers=(self.emu.issuer.issuer_v1, self.emu.issuer.issuer_v2),
                audiences=self.emu.arm_audiences,
                now=self.emu.clock.now(),
                check_lifetime=self.emu.check_arm_token_lifetime,
            )
        except TokenRejected as rejected:
            if rejected.code == "ExpiredAuthenticationToken":
                logger.warning(
                    "ARM refused an expired bearer token (expiry is checked against the emulator's clock). "
                    "If a test moves a FakeClock while a credential keeps its cached token, start the emulator "
                    "with check_arm_token_lifetime=False."
                )
            challenge = (
                f'Bearer authorization_uri="{self.emu.url}/{self.emu.tenant_id}", error="invalid_token", '
                f'error_description="{rejected.code}"'
            )
            return arm_error(401, rejected.code, rejected.message, {"WWW-Authenticate": challenge})

    @staticmethod
    def _param(query: dict[str, str], name: str) -> str | None:
        for key, value in query.items():
            if key.lower() == name.lower():
                return value
        return None

    def _api_version(self, query: dict[str, str], supported: tuple[str, ...], resource_type: str) -> Response | None:
        version = self._param(query, "api-version")
        if version is None or not version.strip():
            return arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if version not in supported:
            return arm_error(
                400,
                "NoRegisteredProviderFound" if resource_type == "eventtypes" else "InvalidApiVersionParameter",
                f"No registered resource provider found for location 'global' and API version '{version}' for type "
                f"'{resource_type}'. The supported api-versions are '{', '.join(supported)}'. The supported "
                "locations are ''.",
            )
        return None

    def _arm(self, request: Request, path: str, query: dict[str, str]) -> Response:
        claims = self._authenticate(request)
        if isinstance(claims, Response):
            return claims
        response = self._arm_authenticated(request, path, query, claims)
        for name, value in self._arm_headers().items():
            response.headers.setdefault(name, value)
        return response

    def _arm_authenticated(
        self, request: Request, path: str, query: dict[str, str], claims: dict[str, Any]
    ) -> Response:
        if request.method not in ("GET", "HEAD"):
            return arm_error(
                405, "MethodNotAllowed", f"The requested resource does not support http method '{request.method}'."
            )
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0].lower() == "subscriptions" and not _is_guid(parts[1]):
            return arm_error(
                400,
                "InvalidSubscriptionId",
                f"The provided subscription identifier '{parts[1]}' is malformed or invalid.",
            )
        try:
            endpoint, values = _match(ARM_ROUTES, path.lower(), "GET")
        except NotFound:
            return arm_error(
                404,
                "InvalidResourceType",
                f"The resource type could not be found for the path '{path}': this emulator serves only "
                "subscriptions and the Activity Log.",
            )
        if endpoint == "activity_log":
            invalid = self._api_version(query, ACTIVITY_LOG_API_VERSIONS, "eventtypes")
            return invalid or self._activity_log(values["sub_id"], query, claims)
        invalid = self._api_version(query, SUBSCRIPTION_API_VERSIONS, "subscriptions")
        if endpoint == "subscriptions":
            return invalid or self._list_subscriptions(query)
        return invalid or self._get_subscription(values["sub_id"], claims)

    def _subscription_body(self, sub: Subscription) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{sub.subscription_id}",
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": sub.subscription_id,
            "tenantId": self.emu.tenant_id,
            "displayName": sub.display_name,
            "state": sub.state,
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
        }

    def _list_subscriptions(self, query: dict[str, str]) -> Response:
        after = self._param(query, "$skiptoken")
        if after is not None:
            try:
                after = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode()
            except (ValueError, UnicodeDecodeError):
                return arm_error(400, "InvalidSkipToken", "The $skiptoken is invalid.")
        listed = sorted((s for s in self.emu.subscriptions if s.listed), key=lambda s: s.subscription_id)
        remaining = [s for s in listed if after is None or s.subscription_id > after]
        page = remaining[: self.emu.subscription_page_size]
        body: dict[str, Any] = {
            "value": [self._subscription_body(s) for s in page],
            "count": {"type": "Total", "value": len(listed)},
        }
        if len(remaining) > len(page):
            token = base64.urlsafe_b64encode(page[-1].subscription_id.encode()).decode().rstrip("=")
            api_version = self._param(query, "api-version") or "2022-12-01"
            body["nextLink"] = f"{self.emu.url}/subscriptions?" + urlencode(
                {"api-version": api_version, "$skiptoken": token}, quote_via=quote
            )
        return _json(200, body)

    def _forbidden(self, sub_id: str, claims: dict[str, Any], action: str) -> Response:
        client = claims.get("appid") or claims.get("oid")
        return arm_error(
            403,
            "AuthorizationFailed",
            f"The client '{client}' with object id '{claims.get('oid')}' does not have authorization to perform "
            f"action '{action}' over scope '/subscriptions/{sub_id}' or the scope is invalid. If access was recently "
            "granted, please refresh your credentials.",
        )

    def _get_subscription(self, sub_id: str, claims: dict[str, Any]) -> Response:
        record = self.emu.subscription_record(sub_id)
        if record is None:
            return arm_error(404, "SubscriptionNotFound", f"The subscription '{sub_id}' could not be found.")
        sub = record.subscription
        if not sub.listed:
            return self._forbidden(sub_id, claims, "Microsoft.Resources/subscriptions/read")
        return _json(200, self._subscription_body(sub))

    def _activity_log(self, sub_id: str, query: dict[str, str], claims: dict[str, Any]) -> Response:
        record = self.emu.subscription_record(sub_id)
        if record is None or record.subscription.state == "Deleted":
            return arm_error(404, "SubscriptionNotFound", f"The subscription '{sub_id}' could not be found.")
        fault = self.emu.take_fault(sub_id)
        if fault is not None:
            if fault.kind == "429":
                return arm_error(
                    429,
                    "SubscriptionRequestsThrottled",
                    f"Number of 'read' requests for subscription '{sub_id}' actor '{claims.get('oid')}' exceeded. "
                    f"Please try again after '{fault.retry_after}' seconds after additional tokens are available. "
                    "Refer to https://aka.ms/arm-throttling",
                    {"Retry-After": str(fault.retry_after), "x-ms-ratelimit-remaining-subscription-reads": "0"},
                )
            if fault.kind == "5xx":
                code, message = _SERVER_ERRORS.get(
                    fault.status, ("ServerError", "The service failed to answer the request.")
                )
                return arm_error(fault.status, code, message)
            time.sleep(max(0.0, fault.seconds))
        sub = record.subscription
        if not sub.listed or sub.forbidden:
            return self._forbidden(sub_id, claims, READ_ACTION)

        raw_filter = self._param(query, "$filter")
        skiptoken = self._param(query, "$skiptoken")
        now = to_ticks(self.emu.clock.now())
        cursor: tuple[int, str] | None = None
        try:
            parsed = parse_filter(raw_filter, now, check_retention=skiptoken is None)
        except FilterError as error:
            # The Activity Log answers its 400s with a top-level body, not ARM's usual {"error": {...}}.
            return _json(400, {"code": error.code, "message": error.message})
        filter_hash = hashlib.sha256((raw_filter or "").encode()).hexdigest()[:16]
        if skiptoken is not None:
            state = _read_skip_token(skiptoken)
            if state is None:
                return _json(400, {"code": "InvalidSkipToken", "message": "The $skipToken is invalid."})
            if state["f"] != filter_hash:
                return _json(
                    400,
                    {
                        "code": "InvalidSkipToken",
                        "message": "The $skipToken does not belong to this $filter: follow the nextLink as it is.",
                    },
                )
            end, as_of = int(state["end"]), int(state["asOf"])
            cursor = (int(state["after"]), state["id"])
        else:
            end = parsed.end if parsed.end is not None else now
            as_of = now
        page_size = self.emu.event_page_size
        found = []
        for stored in self.emu.store.scan(
            record,
            parsed.start,
            end,
            visible_at=as_of,
            predicate=parsed.matches if parsed.has_clauses else None,
            before=cursor,
        ):
            found.append(stored)
            if len(found) > page_size:
                break
        page = found[:page_size]
        select = self._param(query, "$select")
        wanted = {name.strip().lower() for name in select.split(",") if name.strip()} if select else None
        events = [stored[3] for stored in page]
        if wanted:
            events = [{key: value for key, value in event.items() if key.lower() in wanted} for event in events]
        body: dict[str, Any] = {"value": events}
        if len(found) > page_size:
            last = page[-1]
            # Plain text, as the service's own: the shard that serves the listing and where it stands.
            token = f"{_shard(sub_id)};asOf={as_of};end={end};after={last[0]};id={last[1]};f={filter_hash}"
            params = {"api-version": self._param(query, "api-version") or "2015-04-01", "$filter": raw_filter or ""}
            if select is not None:
                params["$select"] = select
            params["$skipToken"] = token
            body["nextLink"] = (
                f"{self.emu.url}/subscriptions/{sub_id}/providers/Microsoft.Insights/eventtypes/management/values?"
                + urlencode(params, quote_via=quote)
            )
        headers = {"x-ms-ratelimit-remaining-subscription-global-reads": str(self._take_read(sub_id))}
        latency = self.emu.page_latency
        if latency > 0:
            time.sleep(latency)  # ARM's pace: about 0.5-2 s a page on a busy subscription
        return _json(200, body, headers)

    def _take_read(self, sub_id: str) -> int:
        """One read from the subscription's global read bucket (250, refilled 25 a second): what is left."""
        now = self.emu.clock.now().timestamp()
        with self.emu.lock:
            tokens, since = self._read_buckets.get(sub_id, (READ_BUCKET, now))
            tokens = min(READ_BUCKET, tokens + max(0.0, now - since) * READ_REFILL_PER_SECOND)
            tokens = max(0.0, tokens - 1)
            self._read_buckets[sub_id] = (tokens, now)
        return int(tokens)

    # -- control API --------------------------------------------------------------------------------

    def _control(self, request: Request, route: str) -> Response:
        # Only loopback clients reach it: the emulator listens on 127.0.0.1 alone.
        try:
            endpoint, _ = _match(CONTROL_ROUTES, route, request.method)
        except (NotFound, MethodNotAllowed):
            return arm_error(404, "NotFound", f"No control endpoint {request.method} /_emulator{route.rstrip('/')}.")
        if endpoint == "info":
            return _json(200, self.emu.info())
        body = request.get_json(force=True, silent=True) if request.get_data().strip() else {}
        if not isinstance(body, dict):
            return arm_error(400, "InvalidJson", "The request body must be a JSON object.")
        try:
            if endpoint == "page_latency":
                self.emu.set_page_latency(float(body["seconds"]))
                return _json(200, {"seconds": self.emu.page_latency})
            claims = body.get("claims") or {}
            if not isinstance(claims, dict):
                raise ValueError("claims must be an object")
            token = self.emu.mint_token(str(body.get("kind", "global_admin")), **claims)  # an unknown kind: 400
            return _json(200, {"access_token": token, "token_type": "Bearer"})
        except (ValueError, TypeError, KeyError) as error:
            return arm_error(400, "BadRequest", str(error))
