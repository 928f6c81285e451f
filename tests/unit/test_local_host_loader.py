"""Loading a v2 app: indexing once, resolving %SETTINGS%, and refusing what the host cannot run."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from localdev.host import LocalHost
from localdev.host.errors import HostStartupError
from localdev.host.host import load_local_settings
from localdev.host.loader import (
    find_app,
    import_app_module,
    load_functions,
    resolve_setting_refs,
    validate_queue_name,
)
from localdev.host.storage import DEV_CONNECTION_STRING, resolve_account

pytestmark = pytest.mark.unit

CONN = "UseDevelopmentStorage=true"


def sample_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="things/{id}", methods=["GET", "POST"])
    def things(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("x")

    @app.route(auth_level=func.AuthLevel.ANONYMOUS)
    def health(req: func.HttpRequest) -> str:
        return "ok"

    @app.timer_trigger(arg_name="timer", schedule="%SCHEDULE%", run_on_startup=True)
    def tick(timer: func.TimerRequest) -> None:
        pass

    @app.queue_trigger(arg_name="msg", queue_name="%PREFIX%-Jobs", connection="")
    def work(msg: func.QueueMessage) -> None:
        pass

    return app


SETTINGS = {
    "SCHEDULE": "0 */5 * * * *",
    "PREFIX": "acme",
    "AzureWebJobsStorage": CONN,
}


def test_functions_are_described_with_settings_resolved() -> None:
    loaded = {f.name: f for f in load_functions(sample_app(), SETTINGS)}
    things = loaded["things"].info
    assert (things.trigger, things.binding_name, things.route, things.methods, things.auth_level) == (
        "httpTrigger",
        "req",
        "things/{id}",
        ("GET", "POST"),
        "function",
    )
    health = loaded["health"].info
    assert (health.route, health.methods, health.auth_level) == ("health", None, "anonymous")
    tick = loaded["tick"].info
    assert (tick.trigger, tick.schedule, tick.run_on_startup) == ("timerTrigger", "0 */5 * * * *", True)
    work = loaded["work"]
    assert (work.info.trigger, work.info.queue_name, work.info.connection) == (
        "queueTrigger",
        "acme-jobs",
        "AzureWebJobsStorage",  # lower-cased, default connection
    )
    assert work.account is not None and work.account.connection_string == DEV_CONNECTION_STRING


def test_an_app_object_is_indexed_once_and_can_be_hosted_again() -> None:
    app = sample_app()
    first = load_functions(app, SETTINGS)
    second = load_functions(app, {**SETTINGS, "PREFIX": "other"})  # get_functions() would fail twice
    assert [f.name for f in first] == [f.name for f in second]
    assert next(f for f in second if f.name == "work").info.queue_name == "other-jobs"


def test_setting_references() -> None:
    settings = {"PREFIX": "acme", "Mixed_Case": "m"}
    assert resolve_setting_refs("%PREFIX%-poison", settings, "x") == "acme-poison"
    assert resolve_setting_refs("%PREFIX%/%mixed_case%", settings, "x") == "acme/m"
    assert resolve_setting_refs("plain", settings, "x") == "plain"
    with pytest.raises(HostStartupError, match="'MISSING', which is not set"):
        resolve_setting_refs("%MISSING%-q", settings, "function 'f', queueName")


@pytest.mark.parametrize("missing", ["SCHEDULE", "PREFIX"])
def test_an_unresolved_setting_names_the_setting_and_function(missing: str) -> None:
    settings = {k: v for k, v in SETTINGS.items() if k != missing}
    with pytest.raises(HostStartupError, match=f"'{missing}', which is not set"):
        load_functions(sample_app(), settings)


def test_a_missing_storage_connection_is_a_start_error() -> None:
    settings = {k: v for k, v in SETTINGS.items() if k != "AzureWebJobsStorage"}
    with pytest.raises(HostStartupError, match="storage connection 'AzureWebJobsStorage' is not configured"):
        load_functions(sample_app(), settings)


def test_storage_connections() -> None:
    assert resolve_account("", {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}, "f").connection_string == (
        DEV_CONNECTION_STRING
    )
    assert "127.0.0.1:10001" in DEV_CONNECTION_STRING
    prefixed = resolve_account("Data", {"AzureWebJobsData": "AccountName=a;AccountKey=a2V5"}, "f")
    assert prefixed.connection == "AzureWebJobsData"
    with pytest.raises(HostStartupError, match="identity-based"):  # deployed apps only
        resolve_account(None, {"AzureWebJobsStorage__accountName": "acct"}, "f")
    with pytest.raises(HostStartupError, match="not a storage connection string"):
        resolve_account(None, {"AzureWebJobsStorage": "nonsense"}, "f")


def test_queue_names_are_validated() -> None:
    assert validate_queue_name("Jobs-1", "x") == "jobs-1"
    for bad in ("ab", "a--b", "-ab", "a_b", "x" * 64):
        with pytest.raises(HostStartupError, match="not a valid queue name"):
            validate_queue_name(bad, "x")


def test_unsupported_trigger_is_refused() -> None:
    app = func.FunctionApp()

    @app.blob_trigger(arg_name="blob", path="c/{name}", connection="AzureWebJobsStorage")
    def on_blob(blob: func.InputStream) -> None:
        pass

    with pytest.raises(HostStartupError, match="'on_blob' has a 'blobTrigger' trigger"):
        load_functions(app, SETTINGS)


def test_unsupported_binding_is_refused() -> None:
    app = func.FunctionApp()

    @app.route(route="r")
    @app.table_input(arg_name="rows", connection="AzureWebJobsStorage", table_name="t")
    def with_table(req: func.HttpRequest, rows: str) -> str:
        return rows

    with pytest.raises(HostStartupError, match="'with_table' uses a 'table' input binding"):
        load_functions(app, SETTINGS)


def test_parameter_without_binding_is_refused() -> None:
    app = func.FunctionApp()

    @app.route(route="r")
    def extra(req: func.HttpRequest, other: str) -> str:
        return other

    with pytest.raises(HostStartupError, match="parameter 'other' is not bound"):
        load_functions(app, SETTINGS)


def test_trigger_annotation_must_match_what_the_trigger_delivers() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="jobs", connection="AzureWebJobsStorage")
    def typed(msg: str) -> None:
        pass

    with pytest.raises(HostStartupError, match="annotated str, but a queueTrigger delivers"):
        load_functions(app, SETTINGS)


def test_bad_schedule_names_the_function() -> None:
    with pytest.raises(HostStartupError, match="function 'tick': invalid schedule"):
        load_functions(sample_app(), {**SETTINGS, "SCHEDULE": "every minute"})


@pytest.mark.parametrize("route", ["r/{id:int}", "r/{id?}", "r/{id=1}", "r/{*rest}/x", "r/{a}.{b}", "r//x", "{a}/{a}"])
def test_routes_beyond_literals_and_whole_segment_parameters_are_refused(route: str) -> None:
    app = func.FunctionApp()

    @app.route(route=route)
    def constrained(req: func.HttpRequest) -> str:
        return "x"

    with pytest.raises(HostStartupError, match=f"function 'constrained': route '{re.escape(route)}'"):
        load_functions(app, SETTINGS)


def test_features_the_app_does_not_use_are_refused_clearly() -> None:
    asynchronous = func.FunctionApp()

    @asynchronous.route(route="r")
    async def coroutine(req: func.HttpRequest) -> str:
        return "x"

    with pytest.raises(HostStartupError, match="'coroutine' is async"):
        load_functions(asynchronous, SETTINGS)

    output = func.FunctionApp()

    @output.queue_trigger(arg_name="msg", queue_name="jobs", connection="AzureWebJobsStorage")
    @output.queue_output(arg_name="out", queue_name="done", connection="AzureWebJobsStorage")
    def relay(msg: func.QueueMessage, out: func.Out[str]) -> None:
        pass

    with pytest.raises(HostStartupError, match="'relay' uses a 'queue' output binding"):
        load_functions(output, SETTINGS)

    context = func.FunctionApp()

    @context.route(route="r")
    def with_context(req: func.HttpRequest, context: func.Context) -> str:
        return "x"

    with pytest.raises(HostStartupError, match="parameter 'context' is not bound"):
        load_functions(context, SETTINGS)


# -- importing function_app.py ----------------------------------------------------------------

APP_SOURCE = """
import azure.functions as func
import helper

app = func.FunctionApp()

@app.route(route="hello", auth_level=func.AuthLevel.ANONYMOUS)
def hello(req: func.HttpRequest) -> str:
    return helper.GREETING
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Any:
    (tmp_path / "function_app.py").write_text(APP_SOURCE, encoding="utf-8")
    (tmp_path / "helper.py").write_text("GREETING = 'hi'\n", encoding="utf-8")
    yield tmp_path
    for name in ("function_app", "helper"):
        sys.modules.pop(name, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def test_import_puts_the_app_folder_on_sys_path(app_dir: Path) -> None:
    module = import_app_module(app_dir)
    app = find_app(module)
    assert [f.name for f in load_functions(app, {})] == ["hello"]
    again = import_app_module(app_dir)
    assert again is not module  # every host start imports afresh, like a new host process


def test_import_errors_are_start_errors(app_dir: Path) -> None:
    (app_dir / "function_app.py").write_text("import nonexistent_module_xyz\n", encoding="utf-8")
    with pytest.raises(HostStartupError, match=r"importing .* failed: ModuleNotFoundError"):
        import_app_module(app_dir)
    with pytest.raises(HostStartupError, match="not found"):
        import_app_module(app_dir / "nowhere")


def test_the_module_must_define_exactly_one_app(app_dir: Path) -> None:
    (app_dir / "function_app.py").write_text("x = 1\n", encoding="utf-8")
    with pytest.raises(HostStartupError, match=r"defines no azure\.functions\.FunctionApp"):
        find_app(import_app_module(app_dir))
    (app_dir / "function_app.py").write_text(
        "import azure.functions as func\na = func.FunctionApp()\nb = func.FunctionApp()\n", encoding="utf-8"
    )
    with pytest.raises(HostStartupError, match="defines 2 FunctionApp instances"):
        find_app(import_app_module(app_dir))


def test_local_settings_values_fill_os_environ_without_overriding(
    app_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCALHOST_TEST_KEPT", "from-environment")
    monkeypatch.delenv("LOCALHOST_TEST_ADDED", raising=False)
    settings = {
        "IsEncrypted": False,
        "Values": {"LOCALHOST_TEST_KEPT": "from-file", "LOCALHOST_TEST_ADDED": "added", "LOCALHOST_TEST_N": 3},
    }
    (app_dir / "local.settings.json").write_text(json.dumps(settings), encoding="utf-8")
    try:
        values = load_local_settings(app_dir)
        assert os.environ["LOCALHOST_TEST_KEPT"] == "from-environment"
        assert os.environ["LOCALHOST_TEST_ADDED"] == "added"
        assert values["LOCALHOST_TEST_N"] == "3"
    finally:
        os.environ.pop("LOCALHOST_TEST_ADDED", None)
        os.environ.pop("LOCALHOST_TEST_N", None)


def test_local_settings_resolve_bindings_when_environ_is_given(app_dir: Path) -> None:
    (app_dir / "function_app.py").write_text(
        "import azure.functions as func\napp = func.FunctionApp()\n"
        "@app.route(route='%LOCALHOST_TEST_ROUTE%')\ndef r(req: func.HttpRequest) -> str:\n    return 'x'\n",
        encoding="utf-8",
    )
    (app_dir / "local.settings.json").write_text(
        json.dumps({"Values": {"LOCALHOST_TEST_ROUTE": "from-file"}}), encoding="utf-8"
    )
    try:
        host = LocalHost(app_dir, environ={})
        assert [f.route for f in host.functions] == ["from-file"]
    finally:
        os.environ.pop("LOCALHOST_TEST_ROUTE", None)
