"""The portal's trigger: wiring only. Anonymous at the host: the files carry no data."""

from __future__ import annotations

import azure.functions as func

from core.http import handle_http
from portal import serving

bp = func.Blueprint()


@bp.route(route="portal/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def portal(req: func.HttpRequest) -> func.HttpResponse:
    return handle_http(req, serving.serve)
