"""Serve a WSGI app on loopback with werkzeug's threaded server, for the emulator and the local host.

Werkzeug's server answers one request per connection and writes a response's headers and body in
separate sends. Every accepted socket gets TCP_NODELAY, so the body leaves at once instead of
waiting (Nagle's algorithm) for the client's delayed ACK of the headers, about 40 ms on Linux.
With an SSL context the TLS handshake runs in the connection's own thread, so a slow or silent
client cannot hold up the accept loop. Request lines are logged at DEBUG with the `code` query
parameter (a function key) redacted; headers and bodies are never logged.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
import threading
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

logger = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 30.0
_CODE_PARAM = re.compile(r"([?&]code=)[^&#\s]*", re.IGNORECASE)


def redact(target: str) -> str:
    """A request target or line with the value of any `code` query parameter replaced."""
    return _CODE_PARAM.sub(r"\1REDACTED", target)


class _Handler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s -> %s", self.command, redact(self.path), code)

    def log(self, type: str, message: str, *args: Any) -> None:
        logger.debug("%s: %s", self.address_string(), redact(message % args if args else message))


class _Server(ThreadedWSGIServer):
    """A threaded werkzeug server on an already bound socket (so a taken port is an OSError)."""

    def __init__(self, sock: socket.socket, app: Any, ssl_context: ssl.SSLContext | None) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(host, port, app, _Handler, fd=sock.fileno())
        self.ssl_context = ssl_context  # set after werkzeug's init, which would wrap the listening socket

    def log(self, type: str, message: str, *args: Any) -> None:
        logger.error("%s", redact(message % args if args else message))

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("TLS handshake with %s failed: %s", client_address, exc)
            with contextlib.suppress(OSError):
                request.close()
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s ended with an error", client_address)


class LocalServer:
    """Serves a WSGI `app` on 127.0.0.1:`port` in a background thread; port 0 picks a free port.

    Binding happens in the constructor and raises OSError when the address cannot be used.
    """

    def __init__(self, app: Any, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        sock = socket.create_server(("127.0.0.1", port), backlog=128)
        try:
            self._server = _Server(sock, app, ssl_context)
        finally:
            sock.close()  # the server holds its own duplicate
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self, name: str) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
