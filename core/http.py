"""The HTTP edge: authentication, JSON bodies, and the one mapping from domain errors to answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func
from azure.core.exceptions import ServiceRequestError, ServiceResponseError

from core.auth import AdminAction, Principal, require_admin
from core.errors import (
    Conflict,
    ConnectorError,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    SettingsError,
    Unauthenticated,
)
from core.runtime import Runtime, get_runtime
from core.troubleshooting import text

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024

_STATUS: list[tuple[type[ConnectorError], int]] = [
    (InvalidInput, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (SettingsError, 500),
    (ServiceUnavailable, 503),
]


# Every JSON answer: never sniffed as something else, never rendered or framed as a document.
JSON_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers={**JSON_HEADERS, **(headers or {})},
    )


def error_response(status: int, code: str, message: str) -> func.HttpResponse:
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


def answer_for(exc: ConnectorError) -> func.HttpResponse:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return error_response(status, exc.code, exc.message)
    logger.error("Unmapped connector error %s: %s", type(exc).__name__, exc.message)
    return error_response(500, "InternalError", text("InternalError"))


def authenticate(req: func.HttpRequest, runtime: Runtime, *, admin: AdminAction | None = None) -> Principal:
    """The caller; with `admin`, only an administrator, refused naming that change."""
    principal = runtime.tokens.authenticate(req.headers.get("Authorization"))
    if admin is not None:
        require_admin(principal, admin)
    return principal


def read_json_body(req: func.HttpRequest, *, required: bool = False) -> dict[str, Any] | None:
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput("body", f"is larger than {MAX_BODY_BYTES // 1024} KiB")
    if not raw.strip():
        if required:
            raise InvalidInput("body", "a JSON object is required")
        return None
    document = parse_json(raw)
    if not isinstance(document, dict):
        raise InvalidInput("body", "must be a JSON object")
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """A request body as JSON (UTF-8, RFC 8259); InvalidInput however it fails to parse.

    Depth is the parser's recursion limit (a deeply nested body is a RecursionError, not a crash),
    `NaN`/`Infinity` are refused, and so is anything that is not UTF-8.
    """
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise InvalidInput("body", "is not UTF-8 text") from None
    except RecursionError:
        raise InvalidInput("body", "is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or a constant refused above
        raise InvalidInput("body", f"is not valid JSON ({str(exc).split(':')[0]})") from None


Handler = Callable[[func.HttpRequest, Runtime], func.HttpResponse]


def handle_http(
    req: func.HttpRequest, handler: Handler, *, runtime: Callable[[], Runtime] = get_runtime
) -> func.HttpResponse:
    """Run a handler for an HTTP trigger: get the runtime, map domain errors to JSON answers."""
    try:
        return handler(req, runtime())
    except ConnectorError as exc:
        if isinstance(exc, SettingsError):
            logger.error("Configuration error: %s", exc.message)
        return answer_for(exc)
    except (ServiceRequestError, ServiceResponseError) as exc:
        logger.warning("Storage could not be reached: %s", type(exc).__name__)
        return error_response(503, "ServiceUnavailable", text("StorageUnreachable"))
    except Exception:  # the HTTP edge: anything unexpected is logged and answered without internals
        logger.exception("Unhandled error in %s", getattr(handler, "__name__", "handler"))
        return error_response(500, "InternalError", text("InternalError"))
