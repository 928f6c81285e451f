"""The HTTP edge maps domain errors to JSON answers and never leaks internals."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest

from core.errors import Forbidden, InvalidInput, NotFound, SettingsError, Unauthenticated
from core.http import handle_http, read_json_body

pytestmark = pytest.mark.unit


def _req(body: bytes = b"") -> func.HttpRequest:
    return func.HttpRequest("POST", "http://localhost/api/x", headers={}, params={}, body=body)


def _answer(exc: BaseException) -> tuple[int, Any]:
    def handler(req: func.HttpRequest, runtime: Any) -> func.HttpResponse:
        raise exc

    response = handle_http(_req(), handler, runtime=lambda: None)  # type: ignore[arg-type, return-value]
    return response.status_code, json.loads(response.get_body())


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (InvalidInput("limit", "must be 1 to 100"), 400, "InvalidInput"),
        (Unauthenticated("expired"), 401, "Unauthorized"),
        (Forbidden("needs a role"), 403, "Forbidden"),
        (NotFound("nothing"), 404, "NotFound"),
        (SettingsError("The app setting X is not set.", setting="X"), 500, "ConfigurationError"),
    ],
)
def test_domain_errors_become_json_answers(exc: Exception, status: int, code: str) -> None:
    got_status, body = _answer(exc)
    assert got_status == status and body["error"]["code"] == code and body["error"]["message"] == str(exc)


def test_unexpected_errors_are_a_500_without_internals(caplog: pytest.LogCaptureFixture) -> None:
    status, body = _answer(KeyError("PartitionKey secret-internal"))
    assert status == 500 and "secret-internal" not in json.dumps(body) and "Traceback" not in json.dumps(body)
    assert "Unhandled error" in caplog.text


def test_json_body_rules() -> None:
    assert read_json_body(_req(b"")) is None
    assert read_json_body(_req(b'{"a": 1}')) == {"a": 1}
    for bad in (b"[1]", b"{nope", b"\xff\xfe"):
        with pytest.raises(InvalidInput, match="body"):
            read_json_body(_req(bad))
    with pytest.raises(InvalidInput, match="64 KiB"):
        read_json_body(_req(b"{}" + b" " * 70_000))


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 30_000 + b"]" * 30_000,  # deeper than the parser's recursion limit
        b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
        b'{"a": NaN}',
        b'{"a": Infinity}',
        "\ufeff{}".encode(),  # a byte order mark
        '{"a": "é"}'.encode("utf-16"),
        b'{"a": "\xc3\x28"}',  # invalid UTF-8 inside a string
        b'{"a": 1',
    ],
)
def test_any_body_that_is_not_json_is_a_400_without_a_traceback(body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    def handler(req: func.HttpRequest, runtime: Any) -> func.HttpResponse:
        read_json_body(req)
        return func.HttpResponse("accepted", status_code=200)

    response = handle_http(_req(body), handler, runtime=lambda: None)  # type: ignore[arg-type, return-value]
    answer = json.loads(response.get_body())
    assert response.status_code == 400, answer
    assert answer["error"]["code"] == "InvalidInput" and answer["error"]["message"].startswith("body:")
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.exc_info]


def test_unreachable_storage_is_a_503() -> None:
    from azure.core.exceptions import ServiceRequestError

    status, body = _answer(ServiceRequestError("connection refused to 10.1.2.3"))
    assert status == 503 and body["error"]["code"] == "ServiceUnavailable" and "10.1.2.3" not in json.dumps(body)
