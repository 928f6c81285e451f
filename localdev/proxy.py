"""A loopback TCP proxy in front of a local service: the network of a real one, for tests and benchmarks.

Azurite answers on loopback in well under a millisecond and never drops a connection. Put between
the SDK and Azurite, the proxy can hold each chunk the client sends for `delay` seconds before
passing it on (answers flow back at once; each connection waits on its own, as requests on
separate connections do on a real network), and can answer the first `resets` connections with a
TCP reset once the client has sent its request (which never reaches the service).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from types import TracebackType


class LoopbackProxy:
    """Listens on 127.0.0.1 (`port`, chosen free) and forwards to 127.0.0.1:`target`."""

    def __init__(self, target: int, *, delay: float = 0.0, resets: int = 0) -> None:
        self._target = target
        self._delay = delay
        self._left = resets
        self.reset = 0  # connections reset so far
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, name="loopback-proxy", daemon=True)

    def __enter__(self) -> LoopbackProxy:
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
                return  # closed
            with self._lock:
                reset = self._left > 0
                self._left -= int(reset)
            if reset:
                threading.Thread(target=self._reset, args=(client,), daemon=True).start()
                continue
            server = socket.create_connection(("127.0.0.1", self._target))
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_pipe, args=(client, server, self._delay), daemon=True).start()
            threading.Thread(target=_pipe, args=(server, client, 0.0), daemon=True).start()

    def _reset(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            client.recv(65536)  # the request's first bytes: the client is waiting for an answer now
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        with self._lock:
            self.reset += 1


def _pipe(source: socket.socket, sink: socket.socket, delay: float) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            if delay:
                time.sleep(delay)
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
