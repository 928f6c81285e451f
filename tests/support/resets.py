"""A loopback TCP proxy that resets the first connections it accepts, then forwards to a real server."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType


class ResettingProxy:
    """Listens on 127.0.0.1; the first `resets` connections are answered with a TCP reset once the
    client has sent its request (which never reaches the server); later ones are piped to `port`."""

    def __init__(self, port: int, resets: int) -> None:
        self._target = port
        self._left = resets
        self.reset = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="resetting-proxy", daemon=True)

    def __enter__(self) -> ResettingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stopped.set()
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                reset = self._left > 0
                self._left -= int(reset)
            if reset:
                threading.Thread(target=self._reset, args=(client,), daemon=True).start()
            else:
                server = socket.create_connection(("127.0.0.1", self._target))
                for a, b in ((client, server), (server, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def _reset(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            client.recv(65536)  # the request's first bytes: the client is waiting for an answer now
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        with self._lock:
            self.reset += 1


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for s in (source, sink):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
