"""Load a v2-model app: import `function_app.py`, index its functions once, resolve their bindings."""

from __future__ import annotations

import enum
import importlib.util
import inspect
import logging
import re
import sys
import threading
import typing
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
from azure.functions import queue as func_queue
from azure.functions import timer as func_timer

from localdev.host.errors import HostStartupError
from localdev.host.models import HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, FunctionInfo
from localdev.host.schedule import Schedule, ScheduleError, parse_schedule
from localdev.host.storage import StorageAccount, resolve_account

logger = logging.getLogger(__name__)

SCRIPT_FILE = "function_app.py"
SUPPORTED_TRIGGERS = (HTTP_TRIGGER, TIMER_TRIGGER, QUEUE_TRIGGER)
_SETTING_REF = re.compile(r"%([^%]+)%")
_ROUTE_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CATCH_ALL = re.compile(r"\{\*([A-Za-z_][A-Za-z0-9_]*)\}")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")

# The concrete object each trigger delivers, to check the parameter's annotation against.
_TRIGGER_TYPES: dict[str, type] = {
    HTTP_TRIGGER: func.HttpRequest,
    TIMER_TRIGGER: func_timer.TimerRequest,
    QUEUE_TRIGGER: func_queue.QueueMessage,
}


def lookup_setting(settings: Mapping[str, str], name: str) -> str | None:
    """An app setting by name; like .NET configuration, falls back to a case-insensitive match."""
    value = settings.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in settings.items():
        if key.lower() == lowered:
            return candidate
    return None


def resolve_setting_refs(value: str, settings: Mapping[str, str], what: str) -> str:
    """Replace every `%NAME%` in `value` with the app setting NAME; a missing one is a start error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        resolved = lookup_setting(settings, name)
        if resolved is None:
            raise HostStartupError(f"{what}: {value!r} refers to the app setting {name!r}, which is not set")
        return resolved

    return _SETTING_REF.sub(replace, value)


def validate_queue_name(name: str, what: str) -> str:
    """Queue names are lower-cased, then checked against Storage's rules, as the host does."""
    normalized = name.lower()
    if not _QUEUE_NAME.match(normalized):
        raise HostStartupError(
            f"{what}: {name!r} is not a valid queue name (3-63 characters: lowercase letters, digits and "
            "single hyphens, starting and ending with a letter or digit)"
        )
    return normalized


def _plain(value: Any) -> Any:
    """A binding's dict representation with enums replaced by their values."""
    if isinstance(value, enum.Enum):
        if isinstance(value.value, int):
            return value.name.lower()
        return value.value
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def route_rule(route: str) -> str:
    """The werkzeug rule for a route template: literal segments (lower-cased) and `{name}` parameters.

    A catch-all `{*rest}` as the last segment takes the rest of the path (`<path:rest>`; the host
    also matches it empty, see `HttpDispatcher`). Route constraints (`{id:int}`), optional
    (`{id?}`) and default parameters, which the app does not use, are refused with a start error.
    """
    rule = []
    segments = route.split("/") if route else []
    for index, segment in enumerate(segments):
        parameter = _ROUTE_PARAMETER.fullmatch(segment)
        catch_all = _CATCH_ALL.fullmatch(segment)
        if parameter:
            rule.append(f"<{parameter.group(1)}>")
        elif catch_all and index == len(segments) - 1:
            rule.append(f"<path:{catch_all.group(1)}>")
        elif not segment or "{" in segment or "}" in segment:
            raise HostStartupError(
                f"route {route!r}: the local host supports literal segments and whole-segment parameters "
                "such as {id} only, and a catch-all {*rest} last (no empty segments, constraints or optional "
                "parameters)"
            )
        else:
            rule.append(segment.lower())
    parameters = [r.removeprefix("<path:").strip("<>") for r in rule if r.startswith("<")]
    if len(set(parameters)) != len(parameters):
        raise HostStartupError(f"route {route!r}: a parameter appears twice")
    return "/" + "/".join(rule)


@dataclass
class LoadedFunction:
    """A function ready to run: its descriptor plus what the host needs to invoke it."""

    info: FunctionInfo
    user_function: Callable[..., Any]
    schedule: Schedule | None = None
    account: StorageAccount | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.info.name


def import_app_module(app_dir: Path) -> ModuleType:
    """Import `function_app.py` from `app_dir` (put on sys.path) as the module `function_app`.

    Every call imports the file afresh (replacing any earlier `function_app` module), as each start
    of the Functions host does.
    """
    app_dir = app_dir.resolve()
    script = app_dir / SCRIPT_FILE
    if not script.is_file():
        raise HostStartupError(f"{script} not found: the app folder must contain {SCRIPT_FILE}")
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    spec = importlib.util.spec_from_file_location("function_app", script)
    if spec is None or spec.loader is None:
        raise HostStartupError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["function_app"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop("function_app", None)
        raise HostStartupError(f"importing {script} failed: {type(exc).__name__}: {exc}") from exc
    return module


def find_app(module: ModuleType) -> func.FunctionRegister:
    """The one FunctionApp (or AsgiFunctionApp, WsgiFunctionApp) instance the module defines."""
    apps = list({id(v): v for v in vars(module).values() if isinstance(v, func.FunctionRegister)}.values())
    if not apps:
        raise HostStartupError(f"{module.__file__} defines no azure.functions.FunctionApp instance")
    if len(apps) > 1:
        raise HostStartupError(f"{module.__file__} defines {len(apps)} FunctionApp instances; it must define one")
    return apps[0]


def _annotation_error(user: Callable[..., Any], param: str, trigger: str, fname: str) -> str | None:
    try:
        hints = typing.get_type_hints(user)
    except Exception:  # noqa: BLE001 - unresolvable annotations: nothing to check
        return None
    annotation = hints.get(param)
    if annotation is None or not isinstance(annotation, type):
        return None
    delivered = _TRIGGER_TYPES[trigger]
    if issubclass(delivered, annotation):
        return None
    return (
        f"function {fname!r}: parameter {param!r} is annotated {annotation.__name__}, but a {trigger} "
        f"delivers {delivered.__module__}.{delivered.__name__}"
    )


# get_functions() builds and validates every function and fails if called twice on one app, so its
# result is kept per app object: several hosts (one after another in tests) can share an app.
_INDEXED: weakref.WeakKeyDictionary[func.FunctionRegister, list[func.Function]] = weakref.WeakKeyDictionary()
_INDEX_LOCK = threading.Lock()


def _indexed(app: func.FunctionRegister) -> list[func.Function]:
    with _INDEX_LOCK:
        functions = _INDEXED.get(app)
        if functions is None:
            try:
                functions = list(app.get_functions())
            except Exception as exc:
                raise HostStartupError(f"indexing the app's functions failed: {type(exc).__name__}: {exc}") from exc
            _INDEXED[app] = functions
        return functions


def load_functions(app: func.FunctionRegister, settings: Mapping[str, str]) -> list[LoadedFunction]:
    """Index the app (calls `get_functions()` once) and resolve every binding against the app settings."""
    functions = _indexed(app)
    loaded: list[LoadedFunction] = []
    seen: set[str] = set()
    for function in functions:
        item = _load_one(function, settings)
        if item.name.lower() in seen:
            raise HostStartupError(f"two functions are named {item.name!r}")
        seen.add(item.name.lower())
        loaded.append(item)
    return loaded


def _load_one(function: func.Function, settings: Mapping[str, str]) -> LoadedFunction:
    name = function.get_function_name() or function.get_user_function().__name__
    trigger = function.get_trigger()
    if trigger is None:
        raise HostStartupError(f"function {name!r} has no trigger")
    tdict: dict[str, Any] = _plain(trigger.get_dict_repr())
    ttype = tdict.get("type")
    if ttype not in SUPPORTED_TRIGGERS:
        raise HostStartupError(
            f"function {name!r} has a {ttype!r} trigger; the local host supports {', '.join(SUPPORTED_TRIGGERS)}"
        )
    bindings = [_plain(b.get_dict_repr()) for b in function.get_bindings()]
    trigger_param = str(tdict["name"])
    user = function.get_user_function()
    if inspect.iscoroutinefunction(user):
        raise HostStartupError(f"function {name!r} is async; the local host runs plain (def) functions only")
    for binding in bindings:
        btype, bname, direction = binding.get("type"), binding.get("name"), binding.get("direction")
        if (btype, bname) == (ttype, trigger_param) or (btype, bname, ttype) == ("http", "$return", HTTP_TRIGGER):
            continue
        kind = "output" if direction == "out" else "input"
        raise HostStartupError(
            f"function {name!r} uses a {btype!r} {kind} binding ({bname!r}); the local host supports only "
            "HTTP, timer and queue triggers (and an HTTP function's return value)"
        )
    for extra in inspect.signature(user).parameters:
        if extra != trigger_param:
            raise HostStartupError(f"function {name!r}: parameter {extra!r} is not bound by the trigger")
    problem = _annotation_error(user, trigger_param, ttype, name)
    if problem:
        raise HostStartupError(problem)

    item = LoadedFunction(
        info=FunctionInfo(name=name, trigger=ttype, binding_name=trigger_param),
        user_function=user,
    )
    if ttype == HTTP_TRIGGER:
        _load_http(item, tdict, settings)
    elif ttype == TIMER_TRIGGER:
        _load_timer(item, tdict, settings)
    else:
        _load_queue(item, tdict, settings)
    return item


def _load_http(item: LoadedFunction, tdict: Mapping[str, Any], settings: Mapping[str, str]) -> None:
    what = f"function {item.name!r}, route"
    route = resolve_setting_refs(str(tdict.get("route") or item.name), settings, what).strip("/")
    methods = tdict.get("methods")
    auth = str(tdict.get("authLevel") or "function").lower()
    if auth not in ("anonymous", "function", "admin"):
        raise HostStartupError(f"function {item.name!r}: unknown authLevel {auth!r}")
    try:
        route_rule(route)
    except HostStartupError as exc:
        raise HostStartupError(f"function {item.name!r}: {exc}") from None
    item.info = replace(
        item.info, route=route, methods=tuple(str(m).upper() for m in methods) if methods else None, auth_level=auth
    )


def _load_timer(item: LoadedFunction, tdict: Mapping[str, Any], settings: Mapping[str, str]) -> None:
    what = f"function {item.name!r}, schedule"
    schedule = resolve_setting_refs(str(tdict.get("schedule", "")), settings, what)
    try:
        item.schedule = parse_schedule(schedule)
    except ScheduleError as exc:
        raise HostStartupError(f"function {item.name!r}: {exc}") from None
    item.info = replace(item.info, schedule=schedule, run_on_startup=bool(tdict.get("runOnStartup", False)))


def _load_queue(item: LoadedFunction, tdict: Mapping[str, Any], settings: Mapping[str, str]) -> None:
    what = f"function {item.name!r}, queueName"
    queue_name = validate_queue_name(resolve_setting_refs(str(tdict.get("queueName", "")), settings, what), what)
    connection = tdict.get("connection") or None
    item.account = resolve_account(connection, settings, item.name)
    item.info = replace(item.info, queue_name=queue_name, connection=item.account.connection)
