"""LocalHost: load a v2-model Functions app and run its HTTP, timer and queue functions locally."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import queue as func_queue

from localdev.host.errors import HostStartupError
from localdev.host.hostjson import HostConfig
from localdev.host.http_server import AdminError, HttpDispatcher
from localdev.host.invoker import Invoker
from localdev.host.loader import LoadedFunction, find_app, import_app_module, load_functions
from localdev.host.models import HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, FunctionInfo, InvocationLog
from localdev.host.queues import QueueListener
from localdev.host.timers import TimerRunner, timer_request
from localdev.host.workers import WorkerPool, worker_pool
from localdev.serving import LocalServer

logger = logging.getLogger(__name__)

ADMIN_REASON = "This function was programmatically called via the host APIs."


def load_local_settings(app_dir: Path) -> dict[str, str]:
    """`Values` from `local.settings.json`, put into os.environ without overriding what is set."""
    path = app_dir / "local.settings.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as exc:
        raise HostStartupError(f"{path} is not valid JSON: {exc}") from None
    if data.get("IsEncrypted"):
        raise HostStartupError(f"{path} is encrypted; the local host reads only plain settings")
    values = data.get("Values") or {}
    if not isinstance(values, dict):
        raise HostStartupError(f'{path}: "Values" must be an object')
    loaded = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    for key, value in loaded.items():
        os.environ.setdefault(key, value)
    return loaded


def function_table(functions: Sequence[FunctionInfo]) -> str:
    """A plain-text table of the hosted functions: name, trigger, and route, schedule or queue."""
    rows = [("Function", "Trigger", "Route / schedule / queue")]
    rows += [(f.name, f.trigger, f.target) for f in functions]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows]
    lines.insert(1, f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * len(rows[0][2])}")
    return "\n".join(lines)


class LocalHost:
    """Runs a v2 `azure.functions.FunctionApp` the way the Functions host does, against Azurite.

    `app_dir` holds `function_app.py` and `host.json` (and optionally `local.settings.json`, whose
    `Values` are loaded into os.environ without overriding). Pass `app` to host an already
    imported FunctionApp instead of importing `function_app.py`. `environ` is the app settings
    (default os.environ). `function_key` turns on key checks for FUNCTION/ADMIN-level HTTP
    functions (`?code=` or `x-functions-key`); `master_key` protects `/admin/*`. `host_json`, a
    mapping, replaces the app folder's host.json. `port=0` picks a free port.
    """

    def __init__(
        self,
        app_dir: Path | str = Path("."),
        *,
        app: func.FunctionRegister | None = None,
        port: int = 7071,
        environ: Mapping[str, str] | None = None,
        function_key: str | None = None,
        master_key: str | None = None,
        host_json: Mapping[str, Any] | None = None,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.function_key = function_key
        self.master_key = master_key
        self.invocations = InvocationLog()
        self._app = app
        self._requested_port = port
        self._environ = environ
        self._host_json = host_json
        self._lock = threading.RLock()
        self._state = "created"
        self._loaded: list[LoadedFunction] | None = None
        self._config: HostConfig | None = None
        self._invoker: Invoker | None = None
        self._server: LocalServer | None = None
        self._dispatcher: HttpDispatcher | None = None
        self._listeners: list[QueueListener] = []
        self._timers: list[TimerRunner] = []
        self._abandon = threading.Event()
        self._workers: WorkerPool | None = None
        self._started_monotonic = 0.0
        self.settings: Mapping[str, str] = os.environ

    # -- loading ------------------------------------------------------------------------------

    def _load(self) -> list[LoadedFunction]:
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            local_values = load_local_settings(self.app_dir)
            self.settings = os.environ if self._environ is None else ChainMap(dict(self._environ), local_values)
            if self._host_json is not None:
                self._config = HostConfig.from_dict(self._host_json)
            else:
                self._config = HostConfig.load(self.app_dir / "host.json")
            app = self._app if self._app is not None else find_app(import_app_module(self.app_dir))
            loaded = load_functions(app, self.settings)
            self._invoker = Invoker(self.invocations, function_timeout=self._config.function_timeout)
            self._loaded = loaded
            return loaded

    @property
    def config(self) -> HostConfig:
        self._load()
        assert self._config is not None
        return self._config

    @property
    def functions(self) -> list[FunctionInfo]:
        """The hosted functions, with their routes, schedules and queue names resolved."""
        infos = [f.info for f in self._load()]
        if self._server is None:
            return infos
        return [replace(i, url=self._url(i)) if i.trigger == HTTP_TRIGGER else i for i in infos]

    def _url(self, info: FunctionInfo) -> str:
        return f"{self.base_url}/{'/'.join(p for p in (self.config.route_prefix, info.route) if p)}"

    def _function(self, name: str) -> LoadedFunction:
        for fn in self._load():
            if fn.name.lower() == name.lower():
                return fn
        raise KeyError(f"no function named {name!r}")

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the host is not running")
        return self._server.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalHost:
        with self._lock:
            if self._state == "running":
                return self
            if self._state != "created":
                raise RuntimeError("a LocalHost cannot be started again after stop(); create a new one")
            loaded = self._load()
            assert self._config is not None and self._invoker is not None
            azure_logger = logging.getLogger("azure")
            if azure_logger.level == logging.NOTSET:
                azure_logger.setLevel(logging.WARNING)
            try:
                self._dispatcher = HttpDispatcher(
                    loaded,
                    self._invoker,
                    route_prefix=self._config.route_prefix,
                    function_key=self.function_key,
                    master_key=self.master_key,
                    host_status=self._host_status,
                    admin_invoke=self._admin_invoke,
                )
                try:
                    self._server = LocalServer(self._dispatcher, self._requested_port)
                except OSError as exc:
                    raise HostStartupError(
                        f"cannot listen on 127.0.0.1:{self._requested_port}: {exc.strerror or exc}"
                    ) from None
                self._server.start("localhost-http")
                self._started_monotonic = time.monotonic()
                self._state = "running"
                # Queue messages run on the worker's thread pool (PYTHON_THREADPOOL_THREAD_COUNT), as in Azure.
                self._workers = worker_pool(self.settings)
                for fn in loaded:
                    if fn.info.trigger == QUEUE_TRIGGER:
                        self._listeners.append(QueueListener(fn, self._config.queues, self._invoker, self._workers))
                        self._listeners[-1].start()
                for fn in loaded:
                    if fn.info.trigger == TIMER_TRIGGER:
                        self._timers.append(TimerRunner(fn, self._invoker))
                        self._timers[-1].start()
            except BaseException:
                self._shutdown(timeout=0)
                raise
            logger.info("Local Functions host listening on %s with %d functions", self.base_url, len(loaded))
            for info in self.functions:
                logger.debug("  %s: %s %s", info.name, info.trigger, info.target)
            return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop triggering; wait up to `timeout` s for running invocations, then abandon them.

        An abandoned queue message is made visible again (never deleted), so nothing is lost.
        """
        with self._lock:
            if self._state != "running":
                self._state = "stopped"
                return
            self._state = "stopping"
        self._shutdown(timeout)

    def abandon(self) -> None:
        """Make a stop() in progress give up waiting for running invocations now."""
        self._abandon.set()

    def _shutdown(self, timeout: float) -> None:
        logger.info("Stopping the local Functions host")
        for runner in self._timers:
            runner.stop()
        for listener in self._listeners:
            listener.stop_polling()
        if self._dispatcher is not None:
            self._dispatcher.closed = True  # a request already accepted gets 503 from now on
        if self._server is not None:
            self._server.stop()
        drained = self._wait_drained(timeout)
        if not drained:
            for listener in self._listeners:
                listener.abandon_in_flight()
            busy = self._invoker.busy if self._invoker else 0
            if busy:
                logger.warning("Stopped with %d invocation(s) still running; their results are ignored", busy)
        if self._workers is not None:
            self._workers.shutdown()
        with self._lock:
            self._state = "stopped"
        logger.info("Local Functions host stopped")

    def _quiet(self) -> bool:
        """Nothing runs and no queue message is in flight."""
        busy = self._invoker.busy if self._invoker else 0
        return busy == 0 and all(listener.in_flight == 0 for listener in self._listeners)

    def _wait_drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._quiet():
            if time.monotonic() >= deadline or self._abandon.is_set():
                return False
            time.sleep(0.05)
        return True

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queues -------------------------------------------------------------------------------

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once every watched queue is empty and nothing runs; False if `timeout` s pass first."""
        deadline = time.monotonic() + timeout
        invoker = self._invoker
        if invoker is None or self._state == "created":
            raise RuntimeError("the host has not been started")

        while True:
            before = invoker.activity
            empty = self._quiet() and all(listener.approximate_message_count() == 0 for listener in self._listeners)
            if empty and self._quiet() and invoker.activity == before:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # -- running functions on demand ----------------------------------------------------------

    def run_function(self, name: str, input: str | None = None, *, wait: bool = False) -> str:
        """Run a timer or queue function once now, as `POST /admin/functions/<name>` does.

        For a queue function `input` is the message text. Returns the invocation id; the
        invocation runs in the background (appearing in `invocations` when done) unless `wait`.
        """
        with self._lock:
            if self._state != "running":
                raise RuntimeError("the host is not running")
        fn = self._function(name)
        if fn.info.trigger == HTTP_TRIGGER:
            raise ValueError(f"function {fn.name!r} is an HTTP function: call its URL instead")
        invoker = self._invoker
        assert invoker is not None
        if fn.info.trigger == TIMER_TRIGGER:
            value: Any = timer_request(past_due=False, last=None, next_=None)
        else:
            now = datetime.now(UTC)
            value = func_queue.QueueMessage(
                id=str(uuid.uuid4()),
                body=(input or "").encode("utf-8"),
                dequeue_count=1,
                insertion_time=now,
                expiration_time=now + timedelta(days=7),
                time_next_visible=now,
            )
        invocation_id = str(uuid.uuid4())
        invoker.accept()

        def run() -> None:
            try:
                invoker.invoke(fn, value, reason=ADMIN_REASON, invocation_id=invocation_id, accepted=True)
            except Exception:
                logger.exception("Invoking %s failed", fn.name)

        if wait:
            run()
        else:
            threading.Thread(target=run, name=f"admin-{fn.name}", daemon=True).start()
        return invocation_id

    # -- admin API ----------------------------------------------------------------------------

    def _admin_invoke(self, name: str, input: str | None) -> str:
        try:
            return self.run_function(name, input)
        except KeyError as exc:
            raise AdminError(404, str(exc.args[0])) from None
        except ValueError as exc:
            raise AdminError(400, str(exc)) from None

    def _host_status(self) -> Mapping[str, Any]:
        return {
            "id": "localhost",
            "state": "Running" if self._state == "running" else "Stopping",
            "version": "4.0.0-local",
            "versionDetails": f"localdev.host (azure-functions {getattr(func, '__version__', '?')})",
            "processUptime": int((time.monotonic() - self._started_monotonic) * 1000),
            "functions": [f.name for f in self._load()],
        }
