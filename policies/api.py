"""HTTP handlers of the policies and alerts API; the blueprint wires them.

Each handler authenticates first (admins only for changes: Global or Security Administrator),
then reads its parameters and body (400 naming the field), then asks `policies.service` or the
alert store.
"""

from __future__ import annotations

import azure.functions as func

from activities.tokens import MAX_TOKEN_CHARS
from activity_api import params
from activity_api.api import caller_of
from core.http import authenticate, json_response, read_json_body
from core.runtime import Runtime
from policies import service
from policies.alert_queries import AlertQuery
from policies.templates import TEMPLATES

ALERT_PARAMETERS = ("from", "to", "status", "severity", "policyId", "user", "limit", "continuation")
MAX_ALERT_ACTIVITIES_SHOWN = 50


def list_policies(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    """Every policy; a webhook's whole URL only for an administrator (it may carry its own secret)."""
    principal = authenticate(req, runtime)
    params.reject_unknown(req.params, ())
    shown = principal.is_admin
    return json_response(200, {"items": [p.to_api(show_webhook_url=shown) for p in runtime.policies.list()]})


def create_policy(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    principal = authenticate(req, runtime, admin="policies")
    params.reject_unknown(req.params, ())
    document = read_json_body(req, required=True)
    assert document is not None
    record = service.create_policy(
        runtime.policies,
        runtime.engine,
        runtime.clock,
        principal,
        document,
        webhook_secret=runtime.settings.alert_webhook_secret,
        allow_private_webhooks=runtime.settings.alert_webhook_allow_private,
    )
    return json_response(201, record.to_api(show_webhook_url=True), {"Location": f"/api/policies/{record.id}"})


def get_policy(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    principal = authenticate(req, runtime)
    params.reject_unknown(req.params, ())
    record = service.get_policy(runtime.policies, params.route_id(req.route_params))
    return json_response(200, record.to_api(show_webhook_url=principal.is_admin))


def replace_policy(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    principal = authenticate(req, runtime, admin="policies")
    params.reject_unknown(req.params, ())
    document = read_json_body(req, required=True)
    assert document is not None
    record = service.replace_policy(
        runtime.policies,
        runtime.engine,
        runtime.clock,
        principal,
        params.route_id(req.route_params),
        document,
        webhook_secret=runtime.settings.alert_webhook_secret,
        allow_private_webhooks=runtime.settings.alert_webhook_allow_private,
    )
    return json_response(200, record.to_api(show_webhook_url=True))


def delete_policy(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    authenticate(req, runtime, admin="policies")
    params.reject_unknown(req.params, ())
    service.delete_policy(runtime.policies, runtime.engine, params.route_id(req.route_params))
    return func.HttpResponse(status_code=204, headers={"Cache-Control": "no-store"})


def list_templates(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    authenticate(req, runtime)
    params.reject_unknown(req.params, ())
    return json_response(200, {"items": [t.to_api() for t in TEMPLATES]})


def list_alerts(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    principal = authenticate(req, runtime)
    args = req.params
    params.reject_unknown(args, ALERT_PARAMETERS)
    query = AlertQuery(
        start=params.timestamp(args, "from"),
        end=params.timestamp(args, "to"),
        status=params.text(args, "status"),
        severity=params.text(args, "severity"),
        policy_id=params.text(args, "policyId"),
        user=params.text(args, "user"),
    )
    limit = params.limit(args)
    continuation = params.text(args, "continuation", max_chars=MAX_TOKEN_CHARS)
    page = runtime.alerts.search(query, limit, continuation, caller=caller_of(principal))
    return json_response(200, {"items": page.items, "continuation": page.continuation})


def get_alert(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    """The alert with the activities that raised it (the first MAX_ALERT_ACTIVITIES_SHOWN, without raw events)."""
    authenticate(req, runtime)
    params.reject_unknown(req.params, ())
    alert = service.get_alert(runtime.alerts, params.route_id(req.route_params))
    activities = runtime.reader.get_activities(alert.activity_ids[:MAX_ALERT_ACTIVITIES_SHOWN])
    return json_response(200, {**alert.to_api(), "activities": activities})


def change_alert(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    principal = authenticate(req, runtime, admin="alerts")
    params.reject_unknown(req.params, ())
    document = read_json_body(req, required=True)
    assert document is not None
    alert = service.change_alert(runtime.alerts, runtime.clock, principal, params.route_id(req.route_params), document)
    return json_response(200, alert.to_api())
