"""HTTP triggers and the admin API, served on loopback as the Functions host serves them.

Functions answer under `/<routePrefix>/<route>`, routed with werkzeug: literal segments match
case-insensitively, a `{name}` parameter takes one whole segment (its value keeps its case), a
catch-all `{*rest}` the rest of the path, possibly empty (`portal/{*path}` answers `/api/portal`,
`/api/portal/` and `/api/portal/a/b.js`; the function sees the URL to tell the first two apart), a
trailing slash is ignored, literal routes win over parameters. A function's redirect (3xx with a
`Location`) reaches the client as it is. A path whose decoded form holds a
control character or an empty segment (`//`) matches nothing (404). `GET /admin/host/status` and
`POST /admin/functions/<name>` (body `{"input": "..."}`, answers 202) mirror the host's admin API.
Function keys come from `?code=` or `x-functions-key`; neither is ever logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import azure.functions as func
from azure.functions import _abc as func_abc
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from localdev.host.invoker import Invoker
from localdev.host.loader import LoadedFunction, route_rule
from localdev.host.models import HTTP_TRIGGER
from localdev.serving import redact

logger = logging.getLogger(__name__)

_SKIP_RESPONSE_HEADERS = {"content-length", "transfer-encoding", "connection"}
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
ADMIN_ROUTES = Map(
    [
        Rule("/admin/host/status", endpoint="status", methods=["GET"]),
        Rule("/admin/functions/<name>", endpoint="invoke", methods=["POST"]),
    ],
    strict_slashes=False,
    merge_slashes=False,
)


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(status: int, payload: Any) -> Response:
    return Response(json.dumps(payload), status, content_type="application/json; charset=utf-8")


def _text(status: int, text: str) -> Response:
    return Response(text, status, content_type="text/plain; charset=utf-8")


def _joined(pairs: Iterable[tuple[str, str]], lower: bool) -> dict[str, str]:
    """Repeated names joined with commas, as the host hands headers and query values to the worker."""
    result: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        result[key] = f"{result[key]},{value}" if key in result else value
    return result


class HttpDispatcher:
    """The WSGI app: routes one request to a function or the admin API."""

    def __init__(
        self,
        functions: Iterable[LoadedFunction],
        invoker: Invoker,
        *,
        route_prefix: str,
        function_key: str | None,
        master_key: str | None,
        host_status: Callable[[], Mapping[str, Any]],
        admin_invoke: Callable[[str, str | None], str],
    ) -> None:
        self.route_prefix = route_prefix.strip("/")
        self.functions = {f.name: f for f in functions if f.info.trigger == HTTP_TRIGGER}
        rules = []
        for fn in self.functions.values():
            route = "/".join(p for p in (self.route_prefix, fn.info.route) if p)
            rule = route_rule(route)
            rules.append(Rule(rule, endpoint=fn.name, methods=fn.info.methods))
            if rule.endswith(">") and "<path:" in rule.rsplit("/", 1)[-1]:  # a catch-all also matches empty
                name = rule.rsplit("<path:", 1)[1][:-1]
                empty = rule.rsplit("/", 1)[0] or "/"
                rules.append(Rule(empty, endpoint=fn.name, methods=fn.info.methods, defaults={name: ""}))
        self.routes = Map(rules, strict_slashes=False, merge_slashes=False, redirect_defaults=False)
        self.invoker = invoker
        self.function_key = function_key
        self.master_key = master_key
        self.host_status = host_status
        self.admin_invoke = admin_invoke
        self.closed = False

    # -- entry point --------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.handle(request)
        except Exception:
            logger.exception("Handling %s %s failed", request.method, redact(request.full_path))
            response = _text(500, "Internal Server Error")
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        if self.closed:
            return _text(503, "The host is stopping.")
        path = request.path
        if _CONTROL_CHARACTER.search(path) or "//" in path:  # a control character or an empty segment
            return Response(status=404)
        lowered = path.lower()[:-1] if path.endswith("/") and path != "/" else path.lower()
        if lowered == "/admin" or lowered.startswith("/admin/"):
            return self._admin(request, lowered)
        try:
            name, _ = self.routes.bind("localhost").match(lowered, request.method)
        except NotFound:
            if lowered == "/" and request.method in ("GET", "HEAD"):
                return _text(200, "The local Functions host is running.\n")
            return Response(status=404)
        except MethodNotAllowed as exc:
            allowed = sorted(set(exc.valid_methods or ()) - {"HEAD"})
            return Response(status=405, headers={"Allow": ", ".join(allowed)})
        return self._function(request, self.functions[str(name)])

    # -- keys ---------------------------------------------------------------------------------

    @staticmethod
    def _matches(request: Request, *keys: str | None) -> bool:
        supplied = request.headers.get("x-functions-key") or request.args.get("code")
        if supplied is None:
            return False
        return any(k is not None and hmac.compare_digest(supplied.encode(), k.encode()) for k in keys)

    def _authorized(self, level: str, request: Request) -> bool:
        if self.function_key is None or level == "anonymous":
            return True
        if level == "admin" and self.master_key is not None:
            return self._matches(request, self.master_key)
        return self._matches(request, self.function_key, self.master_key)

    # -- functions ----------------------------------------------------------------------------

    def _function(self, request: Request, fn: LoadedFunction) -> Response:
        if not self._authorized(fn.info.auth_level or "function", request):
            return Response(status=401)
        # Route values from the request's own segments: matching ran on the lower-cased path.
        segments = request.path.strip("/").split("/")
        template = "/".join(p for p in (self.route_prefix, fn.info.route) if p).split("/")
        values = {t[1:-1]: segments[i] for i, t in enumerate(template) if t.startswith("{") and t[1] != "*"}
        if template[-1].startswith("{*"):
            values[template[-1][2:-1]] = "/".join(segments[len(template) - 1 :])
        trigger = func.HttpRequest(
            method=request.method,
            url=request.root_url.rstrip("/") + request.environ.get("RAW_URI", request.full_path),
            headers=_joined(request.headers.items(), lower=True),
            params=_joined(request.args.items(multi=True), lower=False),
            route_params=values,
            body=request.get_data(),
        )
        result = self.invoker.invoke(fn, trigger, reason="This function was programmatically called via the host APIs.")
        if not result.succeeded:
            return _text(500, "Internal Server Error")
        value = result.returned
        if value is None:
            return Response(status=204)
        if isinstance(value, str):
            return _text(200, value)
        assert isinstance(value, func_abc.HttpResponse)
        response = Response(value.get_body() or b"", int(value.status_code))
        response.headers.remove("Content-Type")
        for name, header in value.headers.items():
            if name.lower() not in _SKIP_RESPONSE_HEADERS:
                response.headers.add(name, header)
        if "Content-Type" not in response.headers:
            mimetype = value.mimetype
            charset = f"; charset={value.charset}" if mimetype.startswith("text/") else ""
            response.headers["Content-Type"] = mimetype + charset
        return response

    # -- admin API ----------------------------------------------------------------------------

    def _admin(self, request: Request, lowered: str) -> Response:
        if self.master_key is not None and not self._matches(request, self.master_key):
            return Response(status=401)
        try:
            endpoint, values = ADMIN_ROUTES.bind("localhost").match(lowered, request.method)
        except NotFound:
            return Response(status=404)
        except MethodNotAllowed:
            return Response(status=405)
        try:
            if endpoint == "status":
                return _json(200, dict(self.host_status()))
            self.admin_invoke(str(values["name"]), self._admin_input(request.get_data()))
            return Response(status=202)
        except AdminError as exc:
            return _json(exc.status, {"error": str(exc)})

    @staticmethod
    def _admin_input(body: bytes) -> str | None:
        if not body.strip():
            return None
        try:
            payload = json.loads(body)
        except ValueError:
            raise AdminError(400, 'the body must be JSON such as {"input": "..."}') from None
        if not isinstance(payload, dict):
            raise AdminError(400, 'the body must be a JSON object such as {"input": "..."}')
        value = payload.get("input")
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value)
