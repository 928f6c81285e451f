"""HTTP handlers of the connector API: authenticate, call the service, pick the status code."""

from __future__ import annotations

import azure.functions as func

from activities.reader import MAX_DAYS, PerDay
from activity_api import params
from connector import service
from connector.status import ConnectorView, connector_body
from core.http import authenticate, json_response, read_json_body
from core.runtime import Runtime
from core.troubleshooting import catalog_body

CONNECT_STATUS = {"connected": 201, "already_connected": 200, "probe_failed": 502}


def connect(req: func.HttpRequest, rt: Runtime) -> func.HttpResponse:
    principal = authenticate(req, rt, admin="connector")
    read_json_body(req)  # no fields today, but a body that is not JSON or too large is refused
    result = service.connect(rt.connector, rt.subscriptions, rt.arm, rt.clock, principal)
    return json_response(CONNECT_STATUS[result.outcome], connector_body(result.view))


def get_connector(req: func.HttpRequest, rt: Runtime) -> func.HttpResponse:
    authenticate(req, rt)
    return json_response(200, connector_body(service.current_view(rt.connector, rt.subscriptions)))


def disconnect(req: func.HttpRequest, rt: Runtime) -> func.HttpResponse:
    principal = authenticate(req, rt, admin="connector")
    return json_response(200, connector_body(service.disconnect(rt.connector, rt.subscriptions, rt.clock, principal)))


def list_connectors(req: func.HttpRequest, rt: Runtime) -> func.HttpResponse:
    authenticate(req, rt)
    record = rt.connector.get()
    items = [] if record is None else [connector_body(ConnectorView(record, rt.subscriptions.list()))]
    return json_response(200, {"items": items})


DEFAULT_DAYS = 30


def activity_per_day(req: func.HttpRequest, rt: Runtime) -> func.HttpResponse:
    """Activities per UTC day for the last `days` days (1..90, default 30), per subscription."""
    authenticate(req, rt)
    query = dict(req.params)
    params.reject_unknown(query, ["days"])
    days = params.whole_number(query, "days", default=DEFAULT_DAYS, maximum=MAX_DAYS)
    return json_response(200, per_day_body(rt.reader.activity_per_day(days, rt.clock.now())))


def per_day_body(answer: PerDay) -> dict[str, object]:
    return {
        "days": answer.days,
        "subscriptions": [
            {"subscriptionId": s.subscription_id, "displayName": s.display_name, "counts": s.counts}
            for s in answer.subscriptions
        ],
    }


def troubleshooting(req: func.HttpRequest) -> func.HttpResponse:
    """The troubleshooting catalog: no data and no token, and no settings needed (it helps fix them)."""
    return json_response(200, catalog_body())
