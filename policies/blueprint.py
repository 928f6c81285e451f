"""Triggers of policies and alerts: the API routes and the webhook queue. Wiring only.

The routes are anonymous at the host (a browser calls them with its bearer token alone); every
handler still validates that token first (`core.http.authenticate`).
"""

from __future__ import annotations

import azure.functions as func

from core.http import handle_http
from core.runtime import get_runtime
from policies import api
from policies.notify import run_notify

bp = func.Blueprint()
ANONYMOUS = func.AuthLevel.ANONYMOUS


@bp.route(route="policies", methods=["GET"], auth_level=ANONYMOUS)
def policies_list(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.list_policies)


@bp.route(route="policies", methods=["POST"], auth_level=ANONYMOUS)
def policy_create(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.create_policy)


@bp.route(route="policies/{id}", methods=["GET"], auth_level=ANONYMOUS)
def policy_get(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.get_policy)


@bp.route(route="policies/{id}", methods=["PUT"], auth_level=ANONYMOUS)
def policy_replace(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.replace_policy)


@bp.route(route="policies/{id}", methods=["DELETE"], auth_level=ANONYMOUS)
def policy_delete(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.delete_policy)


@bp.route(route="policy-templates", methods=["GET"], auth_level=ANONYMOUS)
def policy_templates(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.list_templates)


@bp.route(route="alerts", methods=["GET"], auth_level=ANONYMOUS)
def alerts_list(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.list_alerts)


@bp.route(route="alerts/{id}", methods=["GET"], auth_level=ANONYMOUS)
def alert_get(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.get_alert)


@bp.route(route="alerts/{id}", methods=["PATCH"], auth_level=ANONYMOUS)
def alert_change(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.change_alert)


@bp.queue_trigger(arg_name="msg", queue_name="%ALERT_QUEUE%", connection="AzureWebJobsStorage")
def alert_notify(msg: func.QueueMessage) -> None:
    run_notify(get_runtime().notify, msg.get_body(), message_id=msg.id)
