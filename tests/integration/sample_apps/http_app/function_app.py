"""Sample app for the local host's HTTP tests: echoes what each function receives."""

import json

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
bp = func.Blueprint()


def echo(req: func.HttpRequest, name: str, status: int = 200) -> func.HttpResponse:
    payload = {
        "function": name,
        "method": req.method,
        "url": req.url,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "headers": dict(req.headers.items()),
        "body": req.get_body().decode("utf-8"),
    }
    return func.HttpResponse(
        json.dumps(payload), status_code=status, mimetype="application/json", headers={"X-Sample": name}
    )


@app.route(route="items/{id}", methods=["GET", "PUT"])
def get_item(req: func.HttpRequest) -> func.HttpResponse:
    return echo(req, "get_item")


@app.route(route="items/{category}/{name}", methods=["POST"])
def post_item(req: func.HttpRequest) -> func.HttpResponse:
    return echo(req, "post_item", status=201)


@app.route(route="items/latest", methods=["GET"])
def latest_item(req: func.HttpRequest) -> func.HttpResponse:
    return echo(req, "latest_item")


@bp.route(route="public/ping", auth_level=func.AuthLevel.ANONYMOUS)
def ping(req: func.HttpRequest) -> str:
    return "pong"


@app.route(route="restricted", auth_level=func.AuthLevel.ADMIN)
def restricted(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin only")


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("kaboom: a detail that must not leak")


@app.route(route="nothing", auth_level=func.AuthLevel.ANONYMOUS)
def nothing(req: func.HttpRequest) -> None:
    return None


@app.route(route="%SAMPLE_SEGMENT%/resolved", auth_level=func.AuthLevel.ANONYMOUS)
def resolved(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(b"\x00\x01binary", mimetype="application/octet-stream")


app.register_functions(bp)
