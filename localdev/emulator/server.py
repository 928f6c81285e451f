"""HTTPS transport: a threading HTTP/1.1 server whose connections are TLS-wrapped in their own thread."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024


@dataclass
class Request:
    method: str
    path: str  # without the query string, percent-decoding not applied
    query_string: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    client_ip: str


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"


Handler = Callable[[Request], Response]


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AzureEmulator/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this
    server: _TlsServer

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length > 0 else b""
        path, _, query = self.path.partition("?")
        request = Request(
            method=self.command,
            path=path,
            query_string=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client_ip=str(self.client_address[0]),
        )
        try:
            response = self.server.app(request)
        except Exception:
            logger.exception("emulator failed to answer %s %s", self.command, path)
            response = Response(
                500,
                b'{"error":{"code":"InternalServerError","message":"The emulator failed to answer the request."}}',
            )
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        # Paths and status codes only: never headers or bodies (they carry tokens and secrets).
        logger.debug("%s %s", self.address_string(), format % args)


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        ssl_context: ssl.SSLContext,
        app: Handler,
        family: socket.AddressFamily = socket.AF_INET,
    ) -> None:
        self.address_family = family
        self.ssl_context = ssl_context
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake happens here, in the connection's own thread, so a slow or broken client
        # cannot stall the accept loop.
        try:
            request.settimeout(30)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("TLS handshake with %s failed: %s", client_address, exc)
            with contextlib.suppress(OSError):
                request.close()
            return
        with self._connections_lock:
            self._connections.add(tls)
        try:
            _RequestHandler(tls, client_address, self)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("connection from %s ended: %s", client_address, exc)
        finally:
            with self._connections_lock:
                self._connections.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("error on connection from %s", client_address)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                connection.close()


class HttpsServer:
    """Serves `app` over HTTPS on (host, port) in a background thread."""

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext, app: Handler) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._server = _TlsServer((host, port), ssl_context, app, family)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="emulator-https", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.close_connections()
        self._server.server_close()
