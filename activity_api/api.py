"""HTTP handlers of the activities and accounts API; the blueprint wires them.

Each handler authenticates first (401 before anything else is looked at), then reads its
parameters (400 naming the parameter), then asks `activities.reader`.
"""

from __future__ import annotations

import azure.functions as func

from activities.reader import ActivityQuery
from activities.tokens import MAX_TOKEN_CHARS
from activity_api import params
from core.auth import Principal
from core.errors import NotFound
from core.http import authenticate, json_response
from core.runtime import Runtime

ACTIVITY_PARAMETERS = ("from", "to", "user", "subscriptionId", "action", "status", "ipAddress", "limit", "continuation")
ACCOUNT_PARAMETERS = ("type", "limit", "continuation")


def caller_of(principal: Principal) -> str:
    """What continuation tokens are bound to: the caller's object id (an app's id for lack of one)."""
    return principal.object_id or principal.app_id or principal.upn or ""


def list_activities(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    principal = authenticate(req, runtime)
    args = req.params
    params.reject_unknown(args, ACTIVITY_PARAMETERS)
    query = ActivityQuery(
        start=params.timestamp(args, "from"),
        end=params.timestamp(args, "to"),
        user=params.text(args, "user"),
        subscription_id=params.text(args, "subscriptionId"),
        action=params.text(args, "action"),
        status=params.text(args, "status"),
        ip_address=params.text(args, "ipAddress"),
    )
    limit = params.limit(args)
    continuation = params.text(args, "continuation", max_chars=MAX_TOKEN_CHARS)
    page = runtime.reader.search(query, limit, continuation, caller=caller_of(principal))
    return json_response(200, {"items": page.items, "continuation": page.continuation})


def get_activity(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    authenticate(req, runtime)
    params.reject_unknown(req.params, ())
    activity_id = params.route_id(req.route_params)
    activity = runtime.reader.get_activity(activity_id)
    if activity is None:
        raise NotFound(f"No activity with id {activity_id!r} is stored.")
    return json_response(200, activity)


def list_accounts(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    principal = authenticate(req, runtime)
    args = req.params
    params.reject_unknown(args, ACCOUNT_PARAMETERS)
    account_type = params.text(args, "type")
    limit = params.limit(args)
    continuation = params.text(args, "continuation", max_chars=MAX_TOKEN_CHARS)
    page = runtime.reader.list_accounts(limit, continuation, account_type, caller=caller_of(principal))
    return json_response(200, {"items": page.items, "continuation": page.continuation})


def get_account(req: func.HttpRequest, runtime: Runtime) -> func.HttpResponse:
    authenticate(req, runtime)
    params.reject_unknown(req.params, ())
    account_id = params.route_id(req.route_params)
    account = runtime.reader.get_account(account_id)
    if account is None:
        raise NotFound(f"No account with id or UPN {account_id!r} is known.")
    return json_response(200, account)
