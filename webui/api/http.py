"""JSON in and out: strict request parsing, per-field validation messages, and the one error shape.

Every refusal is `{"error": {"code", "message", "details"}}` with the status it deserves;
input is checked here, before any engine call, for what would otherwise surface as a
database error (NUL characters, lone surrogates, non-finite numbers, absurd nesting).
"""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import date, datetime, timezone
from decimal import Decimal

from flask import Response, request
from werkzeug.exceptions import HTTPException

from engine import forms
from engine.errors import EngineError, InvalidInput, NotFound

log = logging.getLogger(__name__)

MAX_DEPTH = 32
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class Unauthorized(EngineError):
    code, status = "unauthorized", 401


class UnsupportedMediaType(EngineError):
    code, status = "unsupported_media_type", 415


class MethodNotAllowed(EngineError):
    code, status = "method_not_allowed", 405


NEED_LOGIN = ("Vui lòng đăng nhập hoặc gửi mã truy cập (Authorization: Bearer).",
              "Sign in or send an access token (Authorization: Bearer).")

_HTTP_ERRORS = {
    400: ("invalid_input", "Yêu cầu không hợp lệ.", "Bad request."),
    401: ("unauthorized", *NEED_LOGIN),
    403: ("forbidden", "Bạn không có quyền thực hiện thao tác này.", "You may not do this."),
    404: ("not_found", "Không tìm thấy.", "Not found."),
    405: ("method_not_allowed", "Phương thức không được hỗ trợ.", "Method not allowed."),
    409: ("conflict", "Xung đột dữ liệu.", "Conflict."),
    413: ("too_large", "Dữ liệu gửi lên quá lớn.", "The request is too large."),
    415: ("unsupported_media_type", "Kiểu nội dung không được hỗ trợ.", "Unsupported media type."),
    422: ("invalid_model", "Không xử lý được nội dung.", "Unprocessable content."),
    500: ("internal_error", "Lỗi hệ thống, vui lòng thử lại sau.", "Internal error, please try again later."),
    503: ("database_unavailable", "Cơ sở dữ liệu tạm thời không truy cập được, vui lòng thử lại sau giây lát.",
          "The database is temporarily unavailable, please try again shortly."),
}
RETRY_AFTER_SECONDS = 5


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached (down, restarting, connection cut): a 503 to retry, not a 500."""
    from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

    if isinstance(exc, DBAPIError) and exc.connection_invalidated or isinstance(exc, DisconnectionError):
        return True
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    text = str(exc.orig if isinstance(exc, DBAPIError) else exc).lower()
    if type(exc.orig).__module__.startswith("sqlite3"):  # SQLite reports schema errors as OperationalError too
        return any(word in text for word in ("locked", "busy", "unable to open", "disk i/o"))
    return True


# ------------------------------------------------------------------ responses
def _default(value):
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat() if value.tzinfo else value.isoformat() + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def json_response(payload, status: int = 200, headers: dict | None = None) -> Response:
    try:
        body = json.dumps(payload, ensure_ascii=False, default=_default, allow_nan=False)
    except ValueError:  # a NaN computed by a model's script: JSON has no such number
        body = json.dumps(_finite(payload), ensure_ascii=False, default=_default, allow_nan=False)
    response = Response(body, status=status, mimetype="application/json", headers=headers)
    # Answers carry personal data and, once, a token: never cached, never sniffed as HTML.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def error_response(status: int, code: str, message: str, details: dict | None = None,
                   headers: dict | None = None) -> Response:
    return json_response({"error": {"code": code, "message": message, "details": details or {}}}, status, headers)


def engine_error_response(exc: EngineError) -> Response:
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="dieuphoi"'
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.details.get("allowed", []))
    return error_response(exc.status, exc.code, exc.message, _safe_details(exc.details), headers)


def http_error_response(exc: HTTPException) -> Response:
    status = exc.code or 500
    code, vi, en = _HTTP_ERRORS.get(status, ("http_error", exc.name or "Lỗi", exc.name or "Error"))
    headers = {}
    if status == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="dieuphoi"'
    return error_response(status, code, f"{vi} / {en}", {}, headers)


def internal_error_response() -> Response:
    code, vi, en = _HTTP_ERRORS[500]
    return error_response(500, code, f"{vi} / {en}")


def unavailable_response() -> Response:
    code, vi, en = _HTTP_ERRORS[503]
    return error_response(503, code, f"{vi} / {en}", {}, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _safe_details(details) -> dict:
    """Details come from the engine and may hold anything; make sure they serialise."""
    if not isinstance(details, dict):
        return {"detail": str(details)}
    try:
        json.dumps(details, default=_default, allow_nan=False)
        return details
    except (TypeError, ValueError):
        return {str(k): str(v) for k, v in details.items()}


# ------------------------------------------------------------------ text checks
def check_text(value, where: str = "", depth: int = 0) -> None:
    """Refuse what no column can store: NUL, lone surrogates, and nesting past MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise InvalidInput("Dữ liệu lồng nhau quá sâu.", "The data is nested too deeply.",
                           {where or "body": f"Tối đa {MAX_DEPTH} cấp. / At most {MAX_DEPTH} levels."})
    if isinstance(value, str):
        if _BAD_TEXT.search(value):
            raise InvalidInput("Dữ liệu chứa ký tự không hợp lệ.", "The data contains an invalid character.",
                               {where or "body": "Ký tự không hợp lệ (NUL hoặc UTF-16 lẻ). / Invalid character."})
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, where, depth + 1)
            check_text(item, _child(where, key, depth), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, _child(where, index, depth), depth + 1)


def _child(where: str, key, depth: int) -> str:
    """The field path of a nested value, e.g. `data/noi_dung`; deep paths stop growing."""
    if depth >= 4:
        return where
    return f"{where}/{key}" if where else str(key)


# ------------------------------------------------------------------ bodies
def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("non-finite number")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


EMPTY = object()


def read_json_body(required: bool):
    """The request's JSON body, or EMPTY when there is none and none is required."""
    raw = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH: werkzeug raises 413 here
    if not raw.strip():
        if required:
            raise InvalidInput("Thiếu nội dung yêu cầu (JSON).", "The request body (JSON) is missing.",
                               {"body": "Trường này là bắt buộc. / This field is required."})
        return EMPTY
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType("Nội dung phải là JSON (Content-Type: application/json).",
                                   "The body must be JSON (Content-Type: application/json).",
                                   {"content_type": mimetype})
    try:
        value = json.loads(raw.decode("utf-8"), parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput("Nội dung JSON không hợp lệ.", "Malformed JSON.",
                           {"body": _short(str(exc))}) from None
    check_text(value)
    return value


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


# ------------------------------------------------------------------ validation
# One wording of every schema violation, shared with the engine's form checks.
field_errors = forms.field_errors
_message_for_type = forms.message_for_type


def validate_body(schema: dict, value) -> dict:
    if not isinstance(value, dict):
        raise InvalidInput("Nội dung yêu cầu phải là một đối tượng JSON.", "The request body must be a JSON object.",
                           {"body": _message_for_type("object")})
    details = field_errors(schema, value)
    if details:
        raise InvalidInput("Dữ liệu gửi lên có trường chưa hợp lệ.", "Some fields are invalid.", details)
    return value




# ------------------------------------------------------------------ parameters
_INT = re.compile(r"^-?[0-9]{1,12}$")


def coerce(schema: dict, raw: str):
    """A query or path string as the type its schema names; unconvertible text stays text (then fails)."""
    kind = schema.get("type")
    if kind == "integer" and _INT.match(raw):
        return int(raw)
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    return raw


def parse_params(params, values: dict, location: str) -> dict:
    """Validate query parameters (400 with per-field details) or path parameters (404: an id that
    cannot exist is simply not found)."""
    out, details = {}, {}
    for p in params:
        if p.location != location:
            continue
        raw = values.get(p.name)
        if raw is None:
            if p.required:
                details[p.name] = _message_for_required()
            continue
        if _BAD_TEXT.search(raw) or len(raw) > 2048:
            details[p.name] = "Ký tự không hợp lệ hoặc quá dài. / Invalid character or too long."
            continue
        value = coerce(p.schema, raw)
        problems = field_errors(p.schema, value, p.name)
        if problems:
            details[p.name] = next(iter(problems.values()))
        else:
            out[p.name] = value
    if details:
        if location == "path":
            raise NotFound("Không tìm thấy.", "Not found.", {k: "không tồn tại / does not exist" for k in details})
        raise InvalidInput("Tham số không hợp lệ.", "Invalid parameters.", details)
    return out


def _message_for_required() -> str:
    return "Trường này là bắt buộc. / This field is required."
