"""Triggers of the activities and accounts API: wiring only."""

from __future__ import annotations

import azure.functions as func

from activity_api import api
from core.http import handle_http

bp = func.Blueprint()


@bp.route(route="activities", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def activities_list(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.list_activities)


@bp.route(route="activities/{id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def activity_get(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.get_activity)


@bp.route(route="accounts", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def accounts_list(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.list_accounts)


@bp.route(route="accounts/{id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def account_get(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, api.get_account)
