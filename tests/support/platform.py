"""The local platform for integration and e2e tests: emulator + Azurite + runtime + local host."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import azure.functions as func

from core.clock import Clock
from core.runtime import Runtime, build_runtime
from core.settings import default_values, load_settings
from localdev.azurite import ROOT, Azurite

_counter = itertools.count()
FUNCTION_KEY = "test-function-key"


def connector_environ(emulator: Any, azurite: Azurite, **overrides: str) -> dict[str, str]:
    """App settings pointing at this emulator and Azurite, with tables and queue of their own."""
    unique = uuid.uuid4().hex[:10]
    env = {
        **default_values(),
        **emulator.connector_settings(),
        "AzureWebJobsStorage": azurite.connection_string,
        "STORAGE_TABLE_PREFIX": f"t{unique}",
        "PULL_QUEUE": f"pull-{unique}",
        "ALERT_QUEUE": f"alert-{unique}",
        "ALERT_WEBHOOK_ALLOW_PRIVATE": "true",  # the tests' receivers listen on loopback
    }
    env.update(overrides)
    return env


def make_runtime(environ: dict[str, str], clock: Clock) -> Runtime:
    runtime = build_runtime(load_settings(environ), clock=clock)
    runtime.storage.ensure()
    return runtime


def fresh_function_app() -> func.FunctionApp:
    """Import function_app.py anew: a FunctionApp object builds its functions only once."""
    name = f"function_app_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, ROOT / "function_app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def call(
    base_url: str,
    method: str,
    path: str,
    token: str | None = None,
    *,
    key: str | None = FUNCTION_KEY,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """An HTTP call to the local host; returns (status, parsed JSON or text)."""
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    if key is not None:
        all_headers["x-functions-key"] = key
    data = body if body is not None else (b"" if method in ("POST", "PUT", "PATCH") else None)
    req = urllib.request.Request(base_url + path, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


@contextmanager
def hosted_app(environ: dict[str, str], monkeypatch: Any, *, host_json: dict[str, Any] | None = None) -> Iterator[Any]:
    """function_app.py in a started local host with these app settings (also set in the process)."""
    from localdev.host import LocalHost

    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    host = LocalHost(
        app_dir=ROOT, app=fresh_function_app(), port=0, environ=dict(os.environ), function_key=FUNCTION_KEY,
        master_key=FUNCTION_KEY, host_json=host_json,
    )  # fmt: skip
    host.start()
    try:
        yield host
    finally:
        host.stop()


__all__ = ["FUNCTION_KEY", "Path", "call", "connector_environ", "fresh_function_app", "hosted_app", "make_runtime"]
