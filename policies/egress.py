"""Where a webhook may be sent: public internet addresses only, checked when the connection is made.

An administrator chooses the webhook URL, and the connector runs inside the organisation's network
(next to the storage account, maybe a VNet): without a check, a URL such as
`https://169.254.169.254/...` or `https://10.0.0.5/` would make the connector POST alert data to
an internal service (server-side request forgery). So:

* at save, a URL whose host is a literal internal address (or `localhost`) is refused
  (`literal_internal_host`);
* at send, the host name is resolved, every address it resolves to must be public, and the
  connection is made to one of the checked addresses (TLS still names the host: SNI, certificate
  check and the Host header are the URL's). A name that resolves elsewhere between the check and
  the connection (DNS rebinding) cannot slip through: there is one resolution, and the connection
  uses its result.

Internal means loopback, private (RFC 1918, unique-local fc00::/7), link-local, shared address
space (100.64.0.0/10, carrier-grade NAT), multicast, unspecified or reserved, including IPv4
addresses inside IPv6 ones (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16).
`ALERT_WEBHOOK_ALLOW_PRIVATE=true` turns both checks off: for local development and the tests,
whose receivers listen on loopback, never for a deployment.

Webhooks never go through an HTTP proxy (the proxy would resolve the name, unchecked).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from typing import Any

from azure.core.pipeline.transport import RequestsTransport
from requests import Session
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.retry import Retry

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_internal(address: Address) -> bool:
    """True for any address that is not a public unicast internet address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_internal(embedded)  # an IPv4 address in IPv6 clothing is judged as itself
    elif address in SHARED_ADDRESS_SPACE:
        return True
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def literal_internal_host(host: str) -> bool:
    """The URL's host is an internal address written out, or a name that is always loopback."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is link-local
    except ValueError:
        return False  # a name: resolved and checked when sending
    return is_internal(address)


class InternalAddress(NewConnectionError):
    """The webhook's host resolves to an internal address: no connection is made."""


class Deadline:
    """The sockets of one delivery, shut down when its overall time is up (a receiver that trickles).

    It keeps its own descriptor of each connection (`watch` answers a duplicate for TLS to wrap):
    shutting a socket down acts on the connection whatever descriptor names it, and a descriptor
    the deadline holds cannot be closed and reused by another thread's socket meanwhile.
    """

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._done = False
        self.expired = False
        self.refused = False

    def __enter__(self) -> Deadline:
        self._timer = threading.Timer(self._seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._done = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down at the deadline (at once if it has passed); the deadline closes it at the end."""
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def _resolve(host: str, port: int) -> list[tuple[int, Any]]:
    """Every (family, sockaddr) the name resolves to, for TCP."""
    return [(family, sockaddr) for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def checked_transport(deadline: Deadline, *, allow_private: bool, verify: str | bool) -> RequestsTransport:
    """A transport for one delivery: a fresh connection to a checked address, watched by `deadline`."""

    class _Connection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            try:
                addresses = _resolve(self._dns_host, self.port)
            except socket.gaierror as exc:
                raise NameResolutionError(self.host, self, exc) from exc
            if not allow_private and any(is_internal(ipaddress.ip_address(a[1][0].split("%")[0])) for a in addresses):
                deadline.refused = True
                raise InternalAddress(self, f"{self.host} resolves to an internal address")
            error: OSError | None = None
            for family, sockaddr in addresses:
                sock = socket.socket(family, socket.SOCK_STREAM)
                deadline.watch(sock)  # closed by the deadline, whatever happens here
                try:
                    for option in self.socket_options or ():
                        sock.setsockopt(*option)
                    sock.settimeout(self.timeout)
                    sock.connect(sockaddr)  # the checked address; TLS below still names self.host
                    return sock.dup()  # for urllib3 to wrap (and detach); the deadline keeps `sock`
                except TimeoutError as exc:
                    raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
                except OSError as exc:
                    error = exc
            raise NewConnectionError(self, f"Failed to establish a new connection: {error}")

    class _Pool(HTTPSConnectionPool):
        ConnectionCls = _Connection

    class _Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"https": _Pool}  # https only: no http:// at all

    session = Session()
    session.trust_env = False  # no proxy: the connection is the checked one
    session.mount("https://", _Adapter(max_retries=Retry(total=False, redirect=False, raise_on_status=False)))
    return RequestsTransport(session=session, session_owner=True, connection_verify=verify)
