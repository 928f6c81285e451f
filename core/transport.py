"""One HTTP transport per service client, built for many threads (or one event loop) waiting at once.

azure-core's default `RequestsTransport` keeps 10 connections per host and, on every request,
reads the proxy and CA-bundle variables from the whole environment (`trust_env`): a few
milliseconds of CPU per request, which is most of what a caught-up pull costs the worker. Here
the environment is read once, when the worker builds its clients: `REQUESTS_CA_BUNDLE` (or
`CURL_CA_BUNDLE`) becomes the session's CA bundle, and only when a proxy variable is set does the
session keep reading the environment per request (so `NO_PROXY` still applies). The connection
pool holds as many connections as the worker has threads that may use it at once.
"""

from __future__ import annotations

import os
import ssl
import urllib.request

import aiohttp
import requests
from azure.core.pipeline.transport import AioHttpTransport, RequestsTransport
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

# Threads of one worker that may send through one client at once: the Python worker's threads
# (PYTHON_THREADPOOL_THREAD_COUNT, 32 in infra) plus the pull's page fetchers.
POOL_CONNECTIONS = 64


class _Adapter(HTTPAdapter):
    """requests' adapter with azure-core's larger read block size (its own adapter's one change)."""

    def get_connection_with_tls_context(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        conn = super().get_connection_with_tls_context(*args, **kwargs)
        conn.conn_kw = {**(conn.conn_kw or {}), "blocksize": 32768}
        return conn


def pooled_transport(connections: int = POOL_CONNECTIONS) -> RequestsTransport:
    session = requests.Session()
    # azure-core retries in its own pipeline: the adapter never retries or follows redirects.
    adapter = _Adapter(
        pool_connections=4,
        pool_maxsize=connections,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    for prefix in ("http://", "https://"):
        session.mount(prefix, adapter)
    session.trust_env = bool(urllib.request.getproxies())
    # azure-core passes `verify` with every request, which would win over the session's.
    return RequestsTransport(session=session, session_owner=True, connection_verify=ca_bundle() or True)


def ca_bundle() -> str | None:
    """The CA bundle the environment names for HTTPS (`REQUESTS_CA_BUNDLE`, else `CURL_CA_BUNDLE`), if any."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


def async_transport() -> AioHttpTransport:
    """The async clients' transport, with the same rules; call it on the event loop that will use it.

    azure-core's `AioHttpTransport` given a CA bundle path builds a new SSL context for every
    request (about 30 ms of CPU each). Here the context is built once and given to the session's
    connector, and the transport is left to verify with it.
    """
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca_bundle()))
    session = aiohttp.ClientSession(
        connector=connector,
        trust_env=bool(urllib.request.getproxies()),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,  # azure-core decodes what it asks to
    )
    return AioHttpTransport(session=session, session_owner=True)
