"""HTTP handlers of the connector API. Each takes the request and the runtime; the blueprint wires them."""

from __future__ import annotations

import azure.functions as func

from connector import service
from connector.state import ConnectorStore
from connector.status import connector_body
from core.http import authenticate, json_response, read_json_body
from core.runtime import Runtime
from core.storage import CONNECTOR_TABLE


def store_of(runtime: Runtime) -> ConnectorStore:
    return ConnectorStore(runtime.storage.table(CONNECTOR_TABLE))


def connect(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    principal = authenticate(req, runtime, admin=True)
    read_json_body(req)  # no fields today, but a body that is not JSON or too large is refused
    answer = service.connect(store_of(runtime), runtime.arm, runtime.clock, principal)
    return json_response(answer.status, answer.body)


def get_connector(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    authenticate(req, runtime)
    return json_response(200, service.load_body(store_of(runtime)))


def disconnect(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    principal = authenticate(req, runtime, admin=True)
    answer = service.disconnect(store_of(runtime), runtime.clock, principal)
    return json_response(answer.status, answer.body)


def list_connectors(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    authenticate(req, runtime)
    store = store_of(runtime)
    connector = store.get_connector()
    items = [] if connector is None else [connector_body(connector, store.list_subscriptions())]
    return json_response(200, {"items": items})
