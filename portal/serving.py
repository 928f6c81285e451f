"""Serving the portal: its static files, its `config.json`, and the headers every answer carries.

The files carry no data, so no token is needed; the page signs in with MSAL and calls the API
with an access token. Paths are whitelisted segment by segment (letters, digits, `.`, `_`, `-`,
never starting with a dot) and must resolve inside `portal/static/` (symbolic links included),
so `..`, encoded or not, absolute paths, backslashes and hidden files are all 404.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from core.auth import API_SCOPE
from core.errors import SettingsError
from core.runtime import Runtime
from core.settings import Settings

logger = logging.getLogger(__name__)

STATIC_ROOT = Path(__file__).resolve().parent / "static"
INDEX = "index.html"
CONFIG = "config.json"

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".map": "application/json; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".webmanifest": "application/manifest+json",
}


def origin(url: str) -> str:
    """`scheme://host[:port]` of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def security_headers(authority_host: str | None) -> dict[str, str]:
    """The headers of every portal answer: a strict CSP (no inline script or style), no sniffing, no referrer."""
    connect = "'self'" + (f" {origin(authority_host)}" if authority_host else "")
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; "
            "object-src 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def resolve(path: str, root: Path = STATIC_ROOT) -> Path | None:
    """The file under root that a request path names, or None (never anything outside root)."""
    if not path:
        path = INDEX
    segments = path.split("/")
    if not all(_SEGMENT.fullmatch(s) for s in segments):
        return None
    base = root.resolve()
    candidate = base.joinpath(*segments).resolve()
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    return candidate


def content_type(file: Path) -> str:
    return CONTENT_TYPES.get(file.suffix.lower(), "application/octet-stream")


def api_identifier(audience: str) -> str:
    """The API's identifier URI for scopes: the audience, or `api://<client id>` when it is a bare client id."""
    audience = audience.rstrip("/")
    return audience if "://" in audience else f"api://{audience}"


def portal_config(settings: Settings) -> dict[str, Any]:
    """What MSAL in the page needs: the client, the authority (no instance discovery) and the API's scope."""
    settings.require("AZURE_TENANT_ID", "CONNECTOR_API_AUDIENCE")
    assert settings.tenant_id and settings.api_audience
    client_id = settings.portal_client
    return {
        "clientId": client_id,
        "authority": f"{settings.authority_host}/{settings.tenant_id}",
        "tenantId": settings.tenant_id,
        "knownAuthorities": [urlsplit(settings.authority_host).netloc],
        "scopes": [f"{api_identifier(settings.api_audience)}/{API_SCOPE}"],
    }


def _answer(status: int, body: bytes, content: str, headers: dict[str, str]) -> func.HttpResponse:
    return func.HttpResponse(body, status_code=status, headers={**headers, "Content-Type": content})


def serve(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    """GET /api/portal/{*path}: a static file, config.json, or a redirect from /api/portal to /api/portal/."""
    settings = runtime.settings
    headers = {**security_headers(settings.authority_host), "Cache-Control": "no-cache"}
    path = req.route_params.get("path") or ""
    url_path = urlsplit(req.url).path
    if not path and not url_path.endswith("/"):
        query = urlsplit(req.url).query
        headers["Location"] = f"{url_path}/" + (f"?{query}" if query else "")
        return _answer(301, b"", "text/plain; charset=utf-8", headers)
    if path == CONFIG:
        try:
            body = json.dumps(portal_config(settings), separators=(",", ":")).encode()
        except SettingsError as exc:
            logger.error("Configuration error: %s", exc.message)
            body = json.dumps({"error": {"code": exc.code, "message": exc.message}}).encode()
            return _answer(500, body, CONTENT_TYPES[".json"], {**headers, "Cache-Control": "no-store"})
        return _answer(200, body, CONTENT_TYPES[".json"], {**headers, "Cache-Control": "no-store"})
    file = resolve(path)
    if file is None:
        return _answer(404, b"Not found.\n", CONTENT_TYPES[".txt"], headers)
    return _answer(200, file.read_bytes(), content_type(file), headers)
