"""One HTTP transport per service client, built for many threads waiting at once.

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
import urllib.request

import requests
from azure.core.pipeline.transport import RequestsTransport
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
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    # azure-core passes `verify` with every request, which would win over the session's.
    return RequestsTransport(session=session, session_owner=True, connection_verify=bundle or True)
