"""Triggers of the connector API: wiring only."""

from __future__ import annotations

import azure.functions as func

from connector import api
from core.http import handle_http

bp = func.Blueprint()


@bp.route(route="connectors/azure", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def connector_connect(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.connect)


@bp.route(route="connectors/azure", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def connector_get(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.get_connector)


@bp.route(route="connectors/azure", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
def connector_disconnect(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.disconnect)


@bp.route(route="connectors", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def connector_list(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.list_connectors)


# Anonymous at the host (a browser cannot keep a function key): the handler requires the token.
@bp.route(route="connectors/azure/activity-per-day", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def connector_activity_per_day(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.activity_per_day)


# Anonymous and without a token: the catalog of messages carries no data.
@bp.route(route="troubleshooting", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def troubleshooting(req: func.HttpRequest) -> func.HttpResponse:
    return api.troubleshooting(req)
