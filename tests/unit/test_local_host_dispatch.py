"""Request dispatch, keys, invocation records, message decoding and back-off, without sockets or storage.

The dispatcher is a WSGI app: werkzeug's test client drives it in-process.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest
from werkzeug.test import Client, TestResponse

from localdev.host.http_server import AdminError, HttpDispatcher
from localdev.host.invoker import Invoker
from localdev.host.loader import load_functions
from localdev.host.models import Invocation, InvocationLog
from localdev.host.queues import Backoff, decode_message

pytestmark = pytest.mark.unit

BASE = "http://127.0.0.1:7071"


def app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="fn")
    def fn(req: func.HttpRequest) -> str:
        return "function"

    @app.route(route="anon", auth_level=func.AuthLevel.ANONYMOUS)
    def anon(req: func.HttpRequest) -> str:
        return "anonymous"

    @app.route(route="adm", auth_level=func.AuthLevel.ADMIN)
    def adm(req: func.HttpRequest) -> str:
        return "admin"

    @app.route(route="bytes", auth_level=func.AuthLevel.ANONYMOUS)
    def wrong_type(req: func.HttpRequest) -> Any:
        return b"not a response"

    @app.route(route="teapot", auth_level=func.AuthLevel.ANONYMOUS)
    def teapot(req: func.HttpRequest) -> func.HttpResponse:
        response = func.HttpResponse("tea", status_code=418, headers={"Set-Cookie": "a=1"})
        response.headers.add("Set-Cookie", "b=2")
        return response

    # The shape of the activities API: a list route and an item route under the same literal.
    @app.route(route="activities", methods=["GET"])
    def activities_list(req: func.HttpRequest) -> str:
        return "list"

    @app.route(route="activities/{id}", methods=["GET"])
    def activity_get(req: func.HttpRequest) -> str:
        return "item " + req.route_params["id"]

    # The shape of the portal: a catch-all that redirects its bare form to the trailing slash.
    @app.route(route="files/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def files(req: func.HttpRequest) -> func.HttpResponse:
        path = req.route_params["path"]
        if not path and not req.url.split("?")[0].endswith("/"):
            return func.HttpResponse(status_code=301, headers={"Location": "/api/files/"})
        return func.HttpResponse(f"file [{path}]")

    return app


def dispatcher(function_key: str | None, master_key: str | None) -> tuple[HttpDispatcher, InvocationLog, list[Any]]:
    log = InvocationLog()
    invoker = Invoker(log)
    admin_calls: list[Any] = []

    def admin_invoke(name: str, value: str | None) -> str:
        if name == "missing":
            raise AdminError(404, "no such function")
        admin_calls.append((name, value))
        return "id"

    d = HttpDispatcher(
        load_functions(app(), {}),
        invoker,
        route_prefix="api",
        function_key=function_key,
        master_key=master_key,
        host_status=lambda: {"state": "Running"},
        admin_invoke=admin_invoke,
    )
    return d, log, admin_calls


def get(
    d: HttpDispatcher, path: str, headers: Mapping[str, str] | None = None, method: str = "GET", body: bytes = b""
) -> TestResponse:
    return Client(d).open(path, method=method, headers=dict(headers or {}), data=body, base_url=BASE)


def test_without_a_function_key_nothing_is_checked() -> None:
    d, _, _ = dispatcher(None, None)
    assert [get(d, p).status_code for p in ("/api/fn", "/api/anon", "/api/adm")] == [200, 200, 200]


def test_key_matrix() -> None:
    d, _, _ = dispatcher("fk", "mk")
    for path, key, status in [
        ("/api/fn", None, 401),
        ("/api/fn?code=fk", None, 200),
        ("/api/fn?code=mk", None, 200),  # the master key opens function-level functions too
        ("/api/fn", "fk", 200),
        ("/api/fn", "nope", 401),
        ("/api/anon", None, 200),
        ("/api/adm", "fk", 401),
        ("/api/adm", "mk", 200),
    ]:
        headers = {"x-functions-key": key} if key else {}
        assert get(d, path, headers).status_code == status, (path, key)


def test_admin_level_with_only_a_function_key_needs_that_key() -> None:
    d, _, _ = dispatcher("fk", None)
    assert get(d, "/api/adm").status_code == 401
    assert get(d, "/api/adm?code=fk").status_code == 200


def test_a_wrong_return_type_fails_the_invocation() -> None:
    d, log, _ = dispatcher(None, None)
    result = get(d, "/api/bytes")
    assert result.status_code == 500
    (invocation,) = log.for_function("wrong_type")
    assert invocation.outcome == "Failed"
    assert "must return azure.functions.HttpResponse or str" in (invocation.error or "")


def test_a_catch_all_takes_the_rest_of_the_path_or_nothing() -> None:
    d, _, _ = dispatcher("fk", None)
    assert get(d, "/api/files/").data == b"file []"
    assert get(d, "/api/FILES/a/B.js").data == b"file [a/B.js]"  # the value keeps its case
    assert get(d, "/api/files/%2e%2e/x").data == b"file [../x]"  # decoded once, as the host does
    bare = get(d, "/api/files")
    assert bare.status_code == 301 and bare.headers["Location"] == "/api/files/"
    assert get(d, "/api/files//x").status_code == 404
    assert get(d, "/api/files/x", method="POST").status_code == 405


def test_status_and_repeated_headers_pass_through() -> None:
    d, _, _ = dispatcher(None, None)
    result = get(d, "/api/teapot")
    assert result.status_code == 418
    assert result.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert result.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert result.data == b"tea"


def test_a_control_character_never_reaches_a_route_without_a_parameter_there() -> None:
    d, log, _ = dispatcher(None, None)
    assert get(d, "/api/activities").data == b"list"
    assert get(d, "/api/Activities/").data == b"list"
    assert get(d, "/api/activities/A1").data == b"item A1"
    for path in (
        "/api/activities/%0a",
        "/api/activities%0a",
        "/api/activities/%0d%0a",
        "/api/activities/%7f",
        "/api/activities/x%00",
        "/api/activities//",
        "/api//activities",
    ):
        assert get(d, path).status_code == 404, path
    assert [i.function for i in log] == ["activities_list", "activities_list", "activity_get"]


def test_admin_api() -> None:
    d, _, calls = dispatcher(None, "mk")
    assert get(d, "/admin/host/status").status_code == 401
    assert get(d, "/admin/host/status?code=mk").status_code == 200
    assert get(d, "/admin/host/status?code=mk", method="POST").status_code == 405
    assert get(d, "/admin/functions/fn?code=mk", method="POST", body=b'{"input": "x"}').status_code == 202
    assert get(d, "/admin/functions/fn?code=mk", method="POST", body=b"").status_code == 202
    assert get(d, "/admin/functions/fn?code=mk", method="POST", body=b'{"input": {"a": 1}}').status_code == 202
    assert calls == [("fn", "x"), ("fn", None), ("fn", '{"a": 1}')]
    assert get(d, "/admin/functions/fn?code=mk", method="POST", body=b"{bad").status_code == 400
    assert get(d, "/admin/functions/missing?code=mk", method="POST", body=b"{}").status_code == 404
    assert get(d, "/admin/functions/fn?code=mk").status_code == 405
    assert get(d, "/admin/nothing?code=mk").status_code == 404


def test_decode_message() -> None:
    assert decode_message(base64.b64encode("héllo".encode()).decode(), "base64") == "héllo".encode()
    assert decode_message("aGVs\nbG8=", "base64") == b"hello"  # whitespace is ignored, as in .NET
    assert decode_message("not base64!", "none") == b"not base64!"
    for bad in ("not base64!", "abc", "aGVsbG8=="):
        with pytest.raises(ValueError):
            decode_message(bad, "base64")


def test_backoff_doubles_to_the_maximum_and_resets_on_messages() -> None:
    backoff = Backoff(0.1, 1.0)
    delays = [backoff.next_delay(False) for _ in range(8)]
    assert 0.08 <= delays[0] <= 0.12
    assert all(d <= 1.0 for d in delays)
    assert delays[-1] >= 0.8
    assert 0.08 <= backoff.next_delay(True) <= 0.12
    assert Backoff(0.1, 0.05).next_delay(False) <= 0.05


def test_invocation_log_waits_for_invocations() -> None:
    log = InvocationLog()

    def record(name: str) -> Invocation:
        return Invocation(name, "timerTrigger", name, datetime.now(UTC), 0.0, "Succeeded")

    timer = threading.Timer(0.1, lambda: log.append(record("b")))
    timer.start()
    log.append(record("a"))
    assert [i.function for i in log.wait_for("b", timeout=5)] == ["b"]
    assert len(log) == 2 and log[0].function == "a" and [i.function for i in log] == ["a", "b"]
    assert log.wait_for("c", timeout=0.05) == []
    assert log.find("a") is not None and log.for_function("B")[0].succeeded
