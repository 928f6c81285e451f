"""A trusted HTTPS server on loopback that records every request it gets: a test passes only if it gets none.

Its certificate comes from a CA of its own, added to the bundle the HTTP stack trusts
(`REQUESTS_CA_BUNDLE`) beside the emulator's, so a request sent to it would succeed: the TLS
handshake cannot be what keeps a token away from it.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme


class Trap:
    def __init__(self, server: ThreadingHTTPServer, requests: list[tuple[str, str, str | None]]) -> None:
        self._server = server
        self.requests = requests

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"


@contextmanager
def trap_server(trusted_with: Path, bundle: Path) -> Iterator[Trap]:
    """Serve on a free loopback port; `bundle` gets `trusted_with` plus the trap's CA (for REQUESTS_CA_BUNDLE)."""
    ca = trustme.CA(organization_name="trap")
    bundle.write_bytes(trusted_with.read_bytes() + b"\n" + ca.cert_pem.bytes())
    requests: list[tuple[str, str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(("GET", self.path, self.headers.get("Authorization")))
            body = b'{"value": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Trap(server, requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
