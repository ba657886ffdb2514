"""REST API `/api/v1`: JSON in and out, Bearer tokens or the web session, described by OpenAPI 3.1.

`init_api(app)` registers the blueprint built from the route table in `spec.py`, installs
Flask-Login if the web UI has not, and makes every error under /api/ a JSON error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from flask import Blueprint, Flask, request
from werkzeug.exceptions import HTTPException

from engine.errors import EngineError
from webui.api import http
from webui.api.spec import PREFIX, ROUTES, Route, api_route, external_route, openapi_document

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__)


@dataclass
class Call:
    """One API request after checking: the caller, and the parsed path, query and body."""

    route: Route
    actor: object = None
    path: dict = field(default_factory=dict)
    query: dict = field(default_factory=dict)
    body: dict | None = None


def _endpoint(route: Route):
    from webui.api.auth import authenticate

    def view(**path_values):
        call = Call(route)
        if route.auth:
            call.actor = authenticate()
        call.path = http.parse_params(route.params, path_values, "path")
        call.query = http.parse_params(route.params, request.args, "query")
        if route.body is not None:
            body = http.read_json_body(route.body_required)
            call.body = http.validate_body(route.body, body) if body is not http.EMPTY else None
        result = route.view(call)
        payload, status = result if isinstance(result, tuple) else (result, route.status)
        return http.json_response(payload, status)

    view.__name__ = route.operation_id
    return view


@api_route("GET", "/openapi.json", summary="Tài liệu OpenAPI của API này / this API's OpenAPI document",
           tag="meta", auth=False, response="OpenApiDocument")
def openapi(call):
    """The OpenAPI 3.1 document, generated from the same route table that serves the requests."""
    return openapi_document()


external_route("GET", "/health", operation_id="health", summary="Kiểm tra hoạt động / health check", tag="meta",
               response="Health")

# The views register themselves in ROUTES when imported.
from webui.api import auth, definitions, instances, messages, tasks  # noqa: E402,F401

for _route in ROUTES:
    if _route.view is not None:
        bp.add_url_rule(_route.flask_rule, endpoint=_route.operation_id, view_func=_endpoint(_route),
                        methods=[_route.method])


# ------------------------------------------------------------------ errors
@bp.errorhandler(EngineError)
def _engine_error(exc: EngineError):
    return http.engine_error_response(exc)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return http.http_error_response(exc)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return http.http_error_response(exc)
    if http.database_unavailable(exc):
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        return http.unavailable_response()
    log.exception("unexpected error on %s %s", request.method, request.path)
    return http.internal_error_response()


def _register_code_handlers() -> None:
    # The app's own handlers for a status code (HTML pages) would win over a class handler.
    from werkzeug.exceptions import default_exceptions

    for code in default_exceptions:
        bp.register_error_handler(code, _http_error)


_register_code_handlers()


def _routing_error_as_json():
    """Unknown /api/ paths and wrong methods fail before any view runs: answer them in JSON here."""
    exc = request.routing_exception
    if exc is not None and (request.path == "/api" or request.path.startswith("/api/")) \
            and isinstance(exc, HTTPException) and not getattr(exc, "new_url", None):
        return http.http_error_response(exc)
    return None


def init_api(app: Flask) -> None:
    from webui.api.auth import init_login

    init_login(app)
    app.register_blueprint(bp)
    app.before_request_funcs.setdefault(None, []).insert(0, _routing_error_as_json)


__all__ = ["bp", "init_api", "openapi_document", "PREFIX"]
