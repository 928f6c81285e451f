"""The local Functions host against real HTTP and a real Azurite, with the sample apps in sample_apps/."""

from __future__ import annotations

import base64
import http.client
import importlib.util
import itertools
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from localdev.host import LocalHost
from localdev.host import queues as host_queues
from tests.support.timing import WELL_UNDER_DELAYED_ACK, median_round_trip

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path(__file__).resolve().parent / "sample_apps"
FUNCTION_KEY = "function-key-123"
MASTER_KEY = "master-key-456"


def import_sample(name: str) -> ModuleType:
    """A fresh import of a sample app, so its module-level records start empty."""
    path = SAMPLES / name / "function_app.py"
    spec = importlib.util.spec_from_file_location(f"sample_{name}_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call(
    host: LocalHost, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(host.base_url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# -- HTTP -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_host() -> Iterator[LocalHost]:
    host = LocalHost(
        SAMPLES / "http_app",
        port=0,
        environ={"SAMPLE_SEGMENT": "resolved-segment"},
        function_key=FUNCTION_KEY,
        master_key=MASTER_KEY,
    )
    with host:
        yield host


def test_http_functions_are_described(http_host: LocalHost) -> None:
    by_name = {f.name: f for f in http_host.functions}
    item = by_name["get_item"]
    assert item.trigger == "httpTrigger"
    assert item.route == "items/{id}"
    assert item.methods == ("GET", "PUT")
    assert item.auth_level == "function"
    assert item.url == f"{http_host.base_url}/api/items/{{id}}"
    assert by_name["ping"].auth_level == "anonymous"  # registered through a blueprint
    assert by_name["ping"].methods is None
    assert by_name["resolved"].route == "resolved-segment/resolved"


def test_function_level_needs_the_key(http_host: LocalHost) -> None:
    assert call(http_host, "GET", "/api/items/1")[0] == 401
    assert call(http_host, "GET", "/api/items/1?code=wrong")[0] == 401
    assert call(http_host, "GET", "/api/items/1", headers={"x-functions-key": "wrong"})[0] == 401
    assert call(http_host, "GET", f"/api/items/1?code={FUNCTION_KEY}")[0] == 200
    assert call(http_host, "GET", "/api/items/1", headers={"x-functions-key": FUNCTION_KEY})[0] == 200
    assert call(http_host, "GET", "/api/items/1", headers={"x-functions-key": MASTER_KEY})[0] == 200


def test_admin_level_needs_the_master_key(http_host: LocalHost) -> None:
    assert call(http_host, "GET", f"/api/restricted?code={FUNCTION_KEY}")[0] == 401
    status, _, body = call(http_host, "GET", f"/api/restricted?code={MASTER_KEY}")
    assert (status, body) == (200, b"admin only")


def test_route_query_headers_and_body_are_delivered(http_host: LocalHost) -> None:
    status, headers, body = call(
        http_host,
        "PUT",
        f"/api/items/42?code={FUNCTION_KEY}&tag=a&tag=b&q=x%20y",
        body=b'{"n": 1}',
        headers={"Content-Type": "application/json", "X-Custom": "v"},
    )
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Sample"] == "get_item"
    echoed = json.loads(body)
    assert echoed["function"] == "get_item"
    assert echoed["method"] == "PUT"
    assert echoed["route_params"] == {"id": "42"}
    assert echoed["params"] == {"code": FUNCTION_KEY, "tag": "a,b", "q": "x y"}
    assert echoed["headers"]["x-custom"] == "v"
    assert echoed["body"] == '{"n": 1}'
    assert echoed["url"] == f"{http_host.base_url}/api/items/42?code={FUNCTION_KEY}&tag=a&tag=b&q=x%20y"


def test_routes_match_literals_first_case_insensitively(http_host: LocalHost) -> None:
    key = {"x-functions-key": FUNCTION_KEY}
    status, _, body = call(http_host, "GET", "/api/items/latest", headers=key)
    assert status == 200 and json.loads(body)["function"] == "latest_item"  # a literal beats {id}
    status, _, body = call(http_host, "POST", "/api/Items/Books/dune/", body=b"b", headers=key)
    assert status == 201
    assert json.loads(body)["route_params"] == {"category": "Books", "name": "dune"}  # values keep their case
    assert call(http_host, "POST", "/api/items/books", body=b"b", headers=key)[0] == 405  # GET/PUT items/{id}


def test_wrong_method_is_405_and_unknown_route_is_404(http_host: LocalHost) -> None:
    key = {"x-functions-key": FUNCTION_KEY}
    status, headers, _ = call(http_host, "DELETE", "/api/items/1", headers=key)
    assert status == 405
    assert headers["Allow"] == "GET, PUT"
    assert call(http_host, "GET", "/api/no/such/route", headers=key)[0] == 404
    assert call(http_host, "GET", "/items/1", headers=key)[0] == 404  # outside the route prefix


def test_anonymous_function_from_a_blueprint_returning_text(http_host: LocalHost) -> None:
    status, headers, body = call(http_host, "GET", "/api/public/ping")
    assert (status, body) == (200, b"pong")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"


def test_exception_is_a_generic_500_and_a_failed_invocation(http_host: LocalHost) -> None:
    status, _, body = call(http_host, "GET", "/api/boom")
    assert status == 500
    assert b"kaboom" not in body
    failed = http_host.invocations.wait_for("boom", predicate=lambda i: i.outcome == "Failed", timeout=5)
    assert failed and "kaboom" in (failed[0].error or "")
    assert failed[0].trigger == "httpTrigger"


def test_none_is_204(http_host: LocalHost) -> None:
    assert call(http_host, "GET", "/api/nothing")[:1] == (204,)


def test_setting_in_route_and_binary_response(http_host: LocalHost) -> None:
    status, headers, body = call(http_host, "GET", "/api/resolved-segment/resolved")
    assert (status, body) == (200, b"\x00\x01binary")
    assert headers["Content-Type"] == "application/octet-stream"


def test_admin_api_needs_the_master_key(http_host: LocalHost) -> None:
    assert call(http_host, "GET", "/admin/host/status")[0] == 401
    status, _, body = call(http_host, "GET", "/admin/host/status", headers={"x-functions-key": MASTER_KEY})
    assert status == 200
    assert json.loads(body)["state"] == "Running"
    status, _, body = call(http_host, "POST", f"/admin/functions/ping?code={MASTER_KEY}", body=b"{}")
    assert status == 400  # HTTP functions are called through their URL
    assert call(http_host, "POST", f"/admin/functions/nope?code={MASTER_KEY}", body=b"{}")[0] == 404


def test_route_prefix_from_host_json_and_no_key_check_by_default() -> None:
    host_json = {"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}
    with LocalHost(SAMPLES / "http_app", port=0, environ={"SAMPLE_SEGMENT": "s"}, host_json=host_json) as host:
        status, _, body = call(host, "GET", "/items/7")
        assert status == 200 and json.loads(body)["route_params"] == {"id": "7"}
        assert call(host, "GET", "/api/items/7")[0] == 404
        assert call(host, "GET", "/admin/host/status")[0] == 200  # no master key: open


def test_a_path_with_control_characters_or_an_empty_segment_reaches_no_function(http_host: LocalHost) -> None:
    key = {"x-functions-key": FUNCTION_KEY}
    before = len(http_host.invocations)
    for path in (
        "/api/public/ping%0a",
        "/api/public/ping/%0A",
        "/api/items/%0a",
        "/api/items/latest/%0d%0a",
        "/api/items/a%00b",
        "/api/public//ping",
        "/api/items//",
    ):
        assert call(http_host, "GET", path, headers=key)[0] == 404, path
    assert len(http_host.invocations) == before


def test_function_and_master_keys_are_never_logged(http_host: LocalHost, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert call(http_host, "GET", f"/api/items/1?code={FUNCTION_KEY}&x=1")[0] == 200
    assert call(http_host, "GET", "/api/items/1", headers={"x-functions-key": FUNCTION_KEY})[0] == 200
    assert call(http_host, "GET", f"/admin/host/status?code={MASTER_KEY}")[0] == 200
    assert call(http_host, "GET", f"/api/boom?code={FUNCTION_KEY}")[0] == 500
    assert call(http_host, "GET", "/nothing%0a?code=" + FUNCTION_KEY)[0] == 404
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "/api/items/1" in logged  # the requests were logged, ...
    assert FUNCTION_KEY not in logged and MASTER_KEY not in logged  # ... their keys were not


def test_a_round_trip_takes_no_delayed_ack_wait(http_host: LocalHost) -> None:
    """Nagle's algorithm with the client's delayed ACK would add about 40 ms to every answer."""

    def once() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", http_host.port, timeout=10)
        try:
            connection.request("GET", "/api/public/ping")
            assert connection.getresponse().read() == b"pong"
        finally:
            connection.close()

    assert median_round_trip(once) < WELL_UNDER_DELAYED_ACK


# -- timers -----------------------------------------------------------------------------------


@pytest.fixture
def timer_app() -> Iterator[tuple[LocalHost, ModuleType]]:
    module = import_sample("timer_app")
    with LocalHost(SAMPLES / "timer_app", app=module.app, port=0, environ={"TICK_SCHEDULE": "*/1 * * * * *"}) as host:
        yield host, module


def test_timer_fires_on_its_resolved_schedule(timer_app: tuple[LocalHost, ModuleType]) -> None:
    host, module = timer_app
    tick = next(f for f in host.functions if f.name == "tick")
    assert (tick.trigger, tick.schedule) == ("timerTrigger", "*/1 * * * * *")
    runs = host.invocations.wait_for("tick", count=2, timeout=10)
    assert len(runs) >= 2
    assert all(r.outcome == "Succeeded" for r in runs)
    # Fired on the schedule's occurrences (whole seconds), not merely about once a second: the schedule
    # status the function gets names them exactly, however late a busy machine runs the thread.
    first, second = module.ticks[:2]
    last = datetime.fromisoformat(second.schedule_status["Last"])
    upcoming = [datetime.fromisoformat(t.schedule_status["Next"]) for t in (first, second)]
    assert first.schedule_status["Last"] is None
    assert all(moment.microsecond == 0 for moment in (last, *upcoming))
    assert last < upcoming[1] and upcoming[0] < upcoming[1]


def test_run_on_startup(timer_app: tuple[LocalHost, ModuleType]) -> None:
    host, module = timer_app
    assert len(host.invocations.wait_for("on_startup", timeout=5)) == 1
    assert len(module.startup_runs) == 1


def test_timer_run_through_the_admin_api(timer_app: tuple[LocalHost, ModuleType]) -> None:
    host, module = timer_app
    assert module.manual_runs == []
    status, _, _ = call(
        host, "POST", "/admin/functions/manual", body=b'{"input": ""}', headers={"Content-Type": "application/json"}
    )
    assert status == 202
    runs = host.invocations.wait_for("manual", timeout=5)
    assert len(runs) == 1 and runs[0].outcome == "Succeeded"
    assert len(module.manual_runs) == 1 and module.manual_runs[0].past_due is False


def test_a_timer_never_overlaps_itself(timer_app: tuple[LocalHost, ModuleType]) -> None:
    host, module = timer_app
    threads = [threading.Thread(target=call, args=(host, "POST", "/admin/functions/slow", b"{}")) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = sorted(host.invocations.wait_for("slow", count=3, timeout=10), key=lambda r: r.started)
    assert len(runs) == 3
    assert module.slow_overlaps == [0, 0, 0]
    for earlier, later in itertools.pairwise(runs):
        assert (later.started - earlier.started).total_seconds() >= earlier.duration - 0.01


# -- queues -----------------------------------------------------------------------------------


QUEUE_SETTINGS = ("OK_QUEUE", "FAIL_QUEUE", "FLAKY_QUEUE", "HOLD_QUEUE")


@pytest.fixture
def queue_env(storage_connection_string: str) -> dict[str, str]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    env = {name: f"{prefix}-{name.split('_')[0].lower()}" for name in QUEUE_SETTINGS}
    env["AzureWebJobsStorage"] = storage_connection_string
    return env


def encoded(conn: str, name: str) -> QueueClient:
    return QueueClient.from_connection_string(conn, name, message_encode_policy=TextBase64EncodePolicy())


def raw(conn: str, name: str) -> QueueClient:
    return QueueClient.from_connection_string(conn, name)


def drain(conn: str, name: str) -> list[Any]:
    client = raw(conn, name)
    try:
        return list(client.receive_messages(max_messages=32, messages_per_page=32, visibility_timeout=60))
    except Exception:
        return []


@pytest.fixture
def queue_app(queue_env: dict[str, str]) -> Iterator[tuple[LocalHost, ModuleType, dict[str, str]]]:
    module = import_sample("queue_app")
    host = LocalHost(SAMPLES / "queue_app", app=module.app, port=0, environ=queue_env)
    try:
        yield host.start(), module, queue_env
    finally:
        module.hold_release.set()
        host.stop(timeout=5)


def test_base64_message_is_decoded_and_delivered(queue_app: tuple[LocalHost, ModuleType, dict[str, str]]) -> None:
    host, module, env = queue_app
    conn, name = env["AzureWebJobsStorage"], env["OK_QUEUE"]
    record = next(f for f in host.functions if f.name == "record")
    assert (record.trigger, record.queue_name, record.connection) == ("queueTrigger", name, "AzureWebJobsStorage")
    sent = encoded(conn, name).send_message("héllo wörld")
    assert host.wait_idle(timeout=15)
    assert len(module.received) == 1
    got = module.received[0]
    assert got["body"] == "héllo wörld".encode()
    assert got["id"] == sent.id
    assert got["dequeue_count"] == 1
    assert got["insertion_time"] is not None
    assert raw(conn, name).get_queue_properties().approximate_message_count == 0
    runs = host.invocations.for_function("record")
    assert [(r.trigger, r.outcome, r.message_id, r.dequeue_count) for r in runs] == [
        ("queueTrigger", "Succeeded", sent.id, 1)
    ]


def test_always_failing_message_is_poisoned_after_max_dequeue_count(
    queue_app: tuple[LocalHost, ModuleType, dict[str, str]],
) -> None:
    host, module, env = queue_app
    conn, name = env["AzureWebJobsStorage"], env["FAIL_QUEUE"]
    encoded(conn, name).send_message("cannot be handled")
    assert host.wait_idle(timeout=20)
    assert module.failures == [1, 2, 3]  # maxDequeueCount is 3 in the sample host.json
    assert [r.outcome for r in host.invocations.for_function("always_fails")] == ["Failed"] * 3
    poisoned = drain(conn, f"{name}-poison")
    # The same text as on the queue, unchanged (still base64).
    assert [m.content for m in poisoned] == [base64.b64encode(b"cannot be handled").decode()]
    assert drain(conn, name) == []


def test_failing_once_then_succeeding_is_retried(queue_app: tuple[LocalHost, ModuleType, dict[str, str]]) -> None:
    host, module, env = queue_app
    conn, name = env["AzureWebJobsStorage"], env["FLAKY_QUEUE"]
    encoded(conn, name).send_message("try me")
    assert host.wait_idle(timeout=20)
    assert module.flaky == [1, 2]
    assert [r.outcome for r in host.invocations.for_function("fails_once")] == ["Failed", "Succeeded"]
    assert drain(conn, f"{name}-poison") == []
    assert drain(conn, name) == []


def test_plain_text_to_a_base64_trigger_is_poisoned_at_once(
    queue_app: tuple[LocalHost, ModuleType, dict[str, str]],
) -> None:
    host, module, env = queue_app
    conn, name = env["AzureWebJobsStorage"], env["OK_QUEUE"]
    raw(conn, name).send_message("not base64!")
    assert host.wait_idle(timeout=15)
    assert module.received == []
    assert host.invocations.for_function("record") == []
    assert [m.content for m in drain(conn, f"{name}-poison")] == ["not base64!"]


def test_message_dequeued_too_often_goes_straight_to_poison(queue_env: dict[str, str]) -> None:
    conn, name = queue_env["AzureWebJobsStorage"], queue_env["OK_QUEUE"]
    client = encoded(conn, name)
    client.create_queue()
    client.send_message("old")
    for _ in range(3):  # dequeue it maxDequeueCount times before the host starts
        (message,) = list(client.receive_messages(max_messages=1, visibility_timeout=30))
        client.update_message(message.id, message.pop_receipt, visibility_timeout=0)
    module = import_sample("queue_app")
    with LocalHost(SAMPLES / "queue_app", app=module.app, port=0, environ=queue_env) as host:
        assert host.wait_idle(timeout=15)
        assert module.received == []
    assert [base64.b64decode(m.content) for m in drain(conn, f"{name}-poison")] == [b"old"]


def test_queue_function_run_through_the_admin_api(queue_app: tuple[LocalHost, ModuleType, dict[str, str]]) -> None:
    host, module, _ = queue_app
    status, _, _ = call(host, "POST", "/admin/functions/record", body=json.dumps({"input": "direct"}).encode())
    assert status == 202
    assert host.wait_idle(timeout=10)
    assert [m["body"] for m in module.received] == [b"direct"]
    invocation_id = host.run_function("record", "second", wait=True)
    assert host.invocations.find(invocation_id) is not None
    assert [m["body"] for m in module.received] == [b"direct", b"second"]


@pytest.mark.slow
def test_long_running_function_keeps_its_message_invisible(
    queue_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_queues, "MESSAGE_VISIBILITY", 6.0)  # renewed every 3 s, 2 s or more before it lapses
    module = import_sample("queue_app")
    conn, name = queue_env["AzureWebJobsStorage"], queue_env["HOLD_QUEUE"]
    with LocalHost(SAMPLES / "queue_app", app=module.app, port=0, environ=queue_env) as host:
        encoded(conn, name).send_message("long")
        assert module.hold_started.wait(10)
        time.sleep(7.5)  # past the 6 s visibility: without renewal it would be delivered again
        module.hold_release.set()
        assert host.wait_idle(timeout=10)
        assert module.held == [1]
    assert drain(conn, name) == []


def test_stop_abandons_in_flight_messages_without_losing_them(queue_env: dict[str, str]) -> None:
    module = import_sample("queue_app")
    conn, name = queue_env["AzureWebJobsStorage"], queue_env["HOLD_QUEUE"]
    host = LocalHost(SAMPLES / "queue_app", app=module.app, port=0, environ=queue_env).start()
    try:
        encoded(conn, name).send_message("in flight")
        assert module.hold_started.wait(10)
        host.stop(timeout=0.5)
        # Abandoned: visible again at once, not deleted, even once the function finishes later.
        module.hold_release.set()
        time.sleep(0.5)
        messages = drain(conn, name)
        assert [(base64.b64decode(m.content), m.dequeue_count) for m in messages] == [(b"in flight", 2)]
    finally:
        module.hold_release.set()
        host.stop(timeout=0)


def test_messages_run_on_the_worker_thread_pool_and_batches_follow_new_batch_threshold(
    queue_env: dict[str, str],
) -> None:
    module = import_sample("queue_app")
    conn, name = queue_env["AzureWebJobsStorage"], queue_env["HOLD_QUEUE"]
    host_json = {"version": "2.0", "extensions": {"queues": {"batchSize": 4, "newBatchThreshold": 2}}}
    env = {**queue_env, "PYTHON_THREADPOOL_THREAD_COUNT": "3"}
    encoded(conn, name).create_queue()
    for n in range(10):
        encoded(conn, name).send_message(f"m{n}")
    host = LocalHost(SAMPLES / "queue_app", app=module.app, port=0, environ=env, host_json=host_json).start()
    try:
        assert module.hold_started.wait(10)
        time.sleep(1.0)
        # One batch of 4 received (4 in flight is above newBatchThreshold 2: no second batch yet),
        # of which 3 run, one per worker thread; the fourth waits for a thread.
        assert len(module.held) == 3
        assert len(raw(conn, name).peek_messages(max_messages=32)) == 6
        module.hold_release.set()
        assert host.wait_idle(timeout=20)
        assert len(module.held) == 10
    finally:
        module.hold_release.set()
        host.stop(timeout=5)


# -- start errors -----------------------------------------------------------------------------


def test_unresolved_setting_is_a_clear_start_error(queue_env: dict[str, str]) -> None:
    env = {k: v for k, v in queue_env.items() if k != "FLAKY_QUEUE"}
    module = import_sample("queue_app")
    with pytest.raises(Exception, match="FLAKY_QUEUE"):
        LocalHost(SAMPLES / "queue_app", app=module.app, port=0, environ=env).start()


# -- command line -----------------------------------------------------------------------------


def test_command_line_host_serves_and_stops_on_sigterm_without_losing_messages(
    queue_env: dict[str, str], tmp_path: Path
) -> None:
    conn, name = queue_env["AzureWebJobsStorage"], queue_env["HOLD_QUEUE"]
    env = {**os.environ, **queue_env, "HOLD_SECONDS": "60", "PYTHONPATH": str(ROOT)}
    stderr = (tmp_path / "stderr.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localdev.host",
            "--app-dir",
            str(SAMPLES / "queue_app"),
            "--port",
            "0",
            "--shutdown-timeout",
            "1",
            "--master-key",
            MASTER_KEY,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None

    def pump() -> None:
        for line in process.stdout or []:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        printed: list[str] = []
        base_url = None
        deadline = time.monotonic() + 20
        while base_url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                assert process.poll() is None, (tmp_path / "stderr.log").read_text()
                continue
            printed.append(line)
            match = re.search(r"Host running at (http://127\.0\.0\.1:\d+)", line)
            base_url = match.group(1) if match else None
        assert base_url, "".join(printed)
        table = "".join(printed)
        assert re.search(rf"hold\s+queueTrigger\s+{name}", table)
        assert re.search(r"record\s+queueTrigger", table)

        request = urllib.request.Request(base_url + "/admin/host/status", headers={"x-functions-key": MASTER_KEY})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["state"] == "Running"

        encoded(conn, name).send_message("keep me")
        deadline = time.monotonic() + 15
        while raw(conn, name).peek_messages() and time.monotonic() < deadline:
            time.sleep(0.1)  # wait until the host has taken it (invisible)
        assert not raw(conn, name).peek_messages()
        deadline = time.monotonic() + 15
        while "Executing 'Functions.hold'" not in (tmp_path / "stderr.log").read_text():
            assert time.monotonic() < deadline, "the host took the message but never ran it"
            time.sleep(0.1)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        log = (tmp_path / "stderr.log").read_text()
        assert "Executing 'Functions.hold'" in log
        assert MASTER_KEY not in log
        assert [(base64.b64decode(m.content), m.dequeue_count) for m in drain(conn, name)] == [(b"keep me", 2)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr.close()
