"""A loopback TCP proxy that delays every request by a fixed time: the network of a real service.

Azurite answers on loopback in well under a millisecond, so a benchmark against it measures the
client's CPU and nothing of the wait that dominates against Queue or Table Storage (a few
milliseconds a request within a region). Put between the SDK and Azurite, the proxy holds each
chunk the client sends for `delay` seconds before passing it on; answers flow back at once.
Each connection waits on its own, as requests on separate connections do on a real network.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from types import TracebackType


class DelayingProxy:
    def __init__(self, port: int, delay: float) -> None:
        self._target = port
        self._delay = delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, name="delaying-proxy", daemon=True)

    def __enter__(self) -> DelayingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._target))
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_pipe, args=(client, server, self._delay), daemon=True).start()
            threading.Thread(target=_pipe, args=(server, client, 0.0), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket, delay: float) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            if delay:
                time.sleep(delay)
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def through(connection_string: str, service: str, port: int) -> str:
    """The connection string with `service`'s endpoint (Queue, Table) on `port`."""
    return re.sub(rf"({service}Endpoint=http://127\.0\.0\.1:)\d+", rf"\g<1>{port}", connection_string)


def endpoint_port(connection_string: str, service: str) -> int:
    match = re.search(rf"{service}Endpoint=http://127\.0\.0\.1:(\d+)", connection_string)
    if match is None:
        raise ValueError(f"no {service} endpoint on loopback in the connection string")
    return int(match.group(1))
