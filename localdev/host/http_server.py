"""HTTP triggers and the admin API, served on loopback as the Functions host serves them.

Functions answer under `/<routePrefix>/<route>`; `/admin/host/status`, `/admin/functions` and
`POST /admin/functions/<name>` (body `{"input": "..."}`, answers 202) mirror the host's admin API.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions import _abc as func_abc

from localdev.host.errors import HostStartupError
from localdev.host.invoker import Invoker
from localdev.host.loader import LoadedFunction
from localdev.host.models import HTTP_TRIGGER

logger = logging.getLogger(__name__)

_SKIP_RESPONSE_HEADERS = {"content-length", "transfer-encoding", "connection"}


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class HttpResult:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, payload: Any) -> HttpResult:
        return cls(status, [("Content-Type", "application/json; charset=utf-8")], json.dumps(payload).encode())

    @classmethod
    def text(cls, status: int, text: str) -> HttpResult:
        return cls(status, [("Content-Type", "text/plain; charset=utf-8")], text.encode())


def _joined(pairs: Iterable[tuple[str, str]], lower: bool) -> dict[str, str]:
    """Repeated names joined with commas, as the host hands headers and query values to the worker."""
    result: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        result[key] = f"{result[key]},{value}" if key in result else value
    return result


class HttpDispatcher:
    """Routes one request to a function or the admin API; independent of the socket server."""

    def __init__(
        self,
        functions: Iterable[LoadedFunction],
        invoker: Invoker,
        *,
        route_prefix: str,
        function_key: str | None,
        master_key: str | None,
        host_status: Callable[[], Mapping[str, Any]],
        admin_functions: Callable[[], list[Mapping[str, Any]]],
        admin_invoke: Callable[[str, str | None], str],
    ) -> None:
        http = [f for f in functions if f.info.trigger == HTTP_TRIGGER and f.route is not None]
        self.functions = sorted(http, key=lambda f: f.route.precedence if f.route else ())
        self.invoker = invoker
        self.route_prefix = route_prefix.strip("/")
        self.function_key = function_key
        self.master_key = master_key
        self.host_status = host_status
        self.admin_functions = admin_functions
        self.admin_invoke = admin_invoke
        self.closed = False

    # -- entry point --------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, base_url: str
    ) -> HttpResult:
        if self.closed:
            return HttpResult.text(503, "The host is stopping.")
        method = method.upper()
        split = urlsplit(target)
        path = split.path or "/"
        query_pairs = parse_qsl(split.query, keep_blank_values=True)
        params = _joined(query_pairs, lower=False)
        header_map = _joined(headers, lower=True)
        trimmed = path.strip("/")
        if trimmed.lower() == "admin" or trimmed.lower().startswith("admin/"):
            return self._admin(method, trimmed[len("admin"):].strip("/"), header_map, params, body)
        relative = self._relative(trimmed)
        if relative is not None:
            result = self._function(method, relative, f"{base_url}{target}", header_map, params, body)
            if result is not None:
                return result
        if trimmed == "" and method in ("GET", "HEAD"):
            return HttpResult.text(200, "The local Functions host is running.\n")
        return HttpResult(404)

    def _relative(self, trimmed: str) -> str | None:
        if not self.route_prefix:
            return trimmed
        prefix = self.route_prefix.lower()
        if trimmed.lower() == prefix:
            return ""
        if trimmed.lower().startswith(prefix + "/"):
            return trimmed[len(prefix) + 1:]
        return None

    # -- keys ---------------------------------------------------------------------------------

    @staticmethod
    def _supplied_key(headers: Mapping[str, str], params: Mapping[str, str]) -> str | None:
        return headers.get("x-functions-key") or params.get("code")

    @staticmethod
    def _matches(supplied: str | None, *keys: str | None) -> bool:
        if supplied is None:
            return False
        return any(k is not None and hmac.compare_digest(supplied.encode(), k.encode()) for k in keys)

    def _authorized(self, level: str, headers: Mapping[str, str], params: Mapping[str, str]) -> bool:
        if self.function_key is None or level == "anonymous":
            return True
        supplied = self._supplied_key(headers, params)
        if level == "admin" and self.master_key is not None:
            return self._matches(supplied, self.master_key)
        return self._matches(supplied, self.function_key, self.master_key)

    # -- functions ----------------------------------------------------------------------------

    def _function(
        self,
        method: str,
        relative: str,
        url: str,
        headers: dict[str, str],
        params: dict[str, str],
        body: bytes,
    ) -> HttpResult | None:
        matches = []
        for fn in self.functions:
            assert fn.route is not None
            values = fn.route.match(relative)
            if values is not None:
                matches.append((fn, values))
        if not matches:
            return None
        allowed = [(fn, v) for fn, v in matches if fn.info.methods is None or method in fn.info.methods]
        if not allowed:
            methods = sorted({m for fn, _ in matches for m in fn.info.methods or ()})
            return HttpResult(405, [("Allow", ", ".join(methods))])
        fn, route_values = allowed[0]
        if not self._authorized(fn.info.auth_level or "function", headers, params):
            return HttpResult(401)
        request = func.HttpRequest(
            method=method, url=url, headers=headers, params=params, route_params=route_values, body=body
        )
        result = self.invoker.invoke(
            fn, request, reason="This function was programmatically called via the host APIs."
        )
        if not result.succeeded:
            return HttpResult.text(500, "Internal Server Error")
        return self._response(result.http_output)

    @staticmethod
    def _response(value: Any) -> HttpResult:
        if value is None:
            return HttpResult(204)
        if isinstance(value, str):
            return HttpResult.text(200, value)
        assert isinstance(value, func_abc.HttpResponse)
        headers = [(k, v) for k, v in value.headers.items() if k.lower() not in _SKIP_RESPONSE_HEADERS]
        if not any(k.lower() == "content-type" for k, _ in headers):
            mimetype = value.mimetype
            content_type = f"{mimetype}; charset={value.charset}" if mimetype.startswith("text/") else mimetype
            headers.append(("Content-Type", content_type))
        return HttpResult(int(value.status_code), headers, value.get_body() or b"")

    # -- admin API ----------------------------------------------------------------------------

    def _admin(
        self, method: str, rest: str, headers: Mapping[str, str], params: Mapping[str, str], body: bytes
    ) -> HttpResult:
        if self.master_key is not None and not self._matches(self._supplied_key(headers, params), self.master_key):
            return HttpResult(401)
        parts = [p for p in rest.split("/") if p]
        try:
            if parts == ["host", "status"]:
                self._allow(method, "GET")
                return HttpResult.json(200, dict(self.host_status()))
            if parts == ["functions"]:
                self._allow(method, "GET")
                return HttpResult.json(200, self.admin_functions())
            if len(parts) == 2 and parts[0] == "functions":
                if method == "GET":
                    for entry in self.admin_functions():
                        if str(entry["name"]).lower() == parts[1].lower():
                            return HttpResult.json(200, entry)
                    return HttpResult(404)
                self._allow(method, "POST")
                self.admin_invoke(parts[1], self._admin_input(body))
                return HttpResult(202)
        except AdminError as exc:
            if exc.status == 405:
                return HttpResult(405)
            return HttpResult.json(exc.status, {"error": str(exc)})
        return HttpResult(404)

    @staticmethod
    def _allow(method: str, allowed: str) -> None:
        if method != allowed:
            raise AdminError(405, "method not allowed")

    @staticmethod
    def _admin_input(body: bytes) -> str | None:
        if not body.strip():
            return None
        try:
            payload = json.loads(body)
        except ValueError:
            raise AdminError(400, "the body must be JSON such as {\"input\": \"...\"}") from None
        if not isinstance(payload, dict):
            raise AdminError(400, "the body must be a JSON object such as {\"input\": \"...\"}")
        value = payload.get("input")
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 64
    dispatcher: HttpDispatcher


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalFunctionsHost/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        started = time.perf_counter()
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "malformed body")
            return
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        try:
            result = self.server.dispatcher.handle(self.command, self.path, list(self.headers.items()), body,
                                                   f"http://{host}")
        except Exception:
            logger.exception("Handling %s %s failed", self.command, self.path)
            result = HttpResult.text(500, "Internal Server Error")
        self.send_response(result.status)
        for name, value in result.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(result.body)))
        self.end_headers()
        if self.command != "HEAD" and result.body:
            self.wfile.write(result.body)
        logger.debug("%s %s -> %d (%.0f ms)", self.command, self.path, result.status,
                     (time.perf_counter() - started) * 1000)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class HttpServer:
    """The socket side: a threading HTTP server on loopback."""

    def __init__(self, dispatcher: HttpDispatcher, port: int, bind: str = "127.0.0.1") -> None:
        self.dispatcher = dispatcher
        self.requested_port = port
        self.bind = bind
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> None:
        try:
            server = _Server((self.bind, self.requested_port), _Handler)
        except OSError as exc:
            raise HostStartupError(
                f"cannot listen on {self.bind}:{self.requested_port}: {exc.strerror or exc}"
            ) from None
        server.dispatcher = self.dispatcher
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="localhost-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
