"""The table of API routes: each entry drives the Flask rule, request checking and the OpenAPI document.

A view is declared once with `@api_route(...)`; its parameters, body schema, success
response and possible errors are then both enforced and documented from that entry, so
the document cannot drift from the routes that exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from webui.api import schemas as S

PREFIX = "/api/v1"
API_VERSION = "1.0.0"


@dataclass(frozen=True)
class Param:
    name: str
    location: str  # "path" | "query"
    schema: dict
    description: str
    required: bool = False


@dataclass
class Route:
    method: str
    path: str  # OpenAPI form, relative to PREFIX: "/tasks/{task_id}"
    operation_id: str
    summary: str
    tag: str
    view: Callable | None
    params: tuple[Param, ...] = ()
    body: dict | None = None
    body_required: bool = False
    uploads: bool = False  # multipart files or a raw model body (POST /definitions)
    status: int = 200
    response: str | None = None  # component name of the success body
    alt_status: tuple[int, ...] = ()  # other success statuses with the same body
    errors: tuple[int, ...] = ()
    auth: bool = True
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def flask_rule(self) -> str:
        return PREFIX + re.sub(r"\{(\w+)\}", r"<\1>", self.path)

    def statuses(self) -> list[int]:
        codes = set(self.errors)
        if self.auth:
            codes |= {401}
        if self.params or self.body is not None or self.uploads:
            codes |= {400}
        if any(p.location == "path" for p in self.params):
            codes |= {404}
        if self.body is not None or self.uploads:
            codes |= {413, 415}
        return sorted(codes)


ROUTES: list[Route] = []

# ------------------------------------------------------------------ shared parameters
INSTANCE_ID = Param("instance_id", "path", S.ID, "Mã hồ sơ / case id", True)
TASK_ID = Param("task_id", "path", {"type": "string", "pattern": S.TASK_ID_PATTERN}, "Mã công việc / task id", True)
TOKEN_ID = Param("token_id", "path", S.ID, "Mã của mã truy cập / token id", True)
LIMIT = Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
              "Số mục mỗi trang / page size")
CURSOR = Param("cursor", "query", {"type": "string", "minLength": 1, "maxLength": 512},
               "Con trỏ trang tiếp theo (next_cursor) / the previous page's next_cursor")
PROCESS = Param("process", "query", {"type": "string", "minLength": 1, "maxLength": 128}, "Mã quy trình / process key")
ORGANISATION = Param("organisation", "query", {"type": "string", "minLength": 1, "maxLength": 64},
                     "Mã đơn vị / organisation code")
ASSIGNEE = Param("assignee", "query", {"type": "string", "minLength": 1, "maxLength": 64},
                 "Tên đăng nhập người đang xử lý / assignee's username")
OVERDUE = Param("overdue", "query", {"type": "boolean"}, "Chỉ việc quá hạn (true) hoặc chưa quá hạn (false) / overdue")


def api_route(method: str, path: str, *, summary: str, tag: str, **options) -> Callable:
    """Declare a view in the route table (see `Route` for the options)."""
    def register(view: Callable) -> Callable:
        ROUTES.append(Route(method=method, path=path, operation_id=view.__name__, summary=summary, tag=tag,
                            view=view, description=view.__doc__ or "", **options))
        return view
    return register


def external_route(method: str, path: str, *, operation_id: str, summary: str, tag: str, response: str,
                   auth: bool = False) -> None:
    """A route served by another blueprint under PREFIX (the health check) that the document must describe."""
    ROUTES.append(Route(method=method, path=path, operation_id=operation_id, summary=summary, tag=tag, view=None,
                        response=response, auth=auth))


# ------------------------------------------------------------------ OpenAPI
SECURITY = [{"bearerAuth": []}, {"sessionCookie": []}]
ERROR_DESCRIPTIONS = {
    400: "Dữ liệu không hợp lệ, chi tiết theo từng trường / invalid input, per-field details",
    401: "Chưa đăng nhập hoặc mã truy cập không hợp lệ / not authenticated",
    403: "Không có quyền / not allowed",
    404: "Không tìm thấy (hoặc không được xem) / not found, or not visible to the caller",
    409: "Xung đột: người khác vừa thay đổi, hoặc công việc không còn mở / conflict",
    413: "Dữ liệu quá lớn / too large",
    415: "Kiểu nội dung không được hỗ trợ / unsupported media type",
    422: "Mô hình quy trình không hợp lệ / invalid process model",
    429: "Tạm khóa do nhập sai mật khẩu nhiều lần / locked after repeated wrong passwords",
}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _operation(route: Route) -> dict:
    op: dict = {"operationId": route.operation_id, "summary": route.summary, "tags": [route.tag]}
    if route.description:
        op["description"] = " ".join(route.description.split())
    op["security"] = SECURITY if route.auth else []
    if route.params:
        op["parameters"] = [{
            "name": p.name, "in": p.location, "required": p.required or p.location == "path",
            "description": p.description, "schema": p.schema,
        } for p in route.params]
    if route.body is not None:
        op["requestBody"] = {"required": route.body_required, "content": _json(route.body)}
    if route.uploads:
        op["requestBody"] = {"required": True, "content": {
            "multipart/form-data": {"schema": S.DEPLOY_MULTIPART},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        }}
    success = {"description": "OK"}
    if route.response:
        success["content"] = _json(S.ref(route.response))
    responses = {str(route.status): success}
    for status in route.alt_status:
        responses[str(status)] = success
    for status in route.statuses():
        responses[str(status)] = {"description": ERROR_DESCRIPTIONS.get(status, "Lỗi / error"),
                                  "content": _json(S.ref("Error"))}
    op["responses"] = responses
    op.update(route.extra)
    return op


def openapi_document() -> dict:
    paths: dict = {}
    for route in sorted(ROUTES, key=lambda r: (r.path, r.method)):
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Điều Phối API",
            "version": API_VERSION,
            "description": (
                "API của hệ thống điều phối công việc thực hiện kế hoạch KH&CN. Lỗi luôn có dạng "
                "{\"error\": {\"code\", \"message\", \"details\"}}; thông báo tiếng Việt trước, tiếng Anh sau.\n\n"
                "REST API of the S&T plan workflow system. Authenticate with `Authorization: Bearer <token>` "
                "(POST /auth/token) or the web session cookie; with the cookie, writes must come from the same "
                "origin (an Origin header of this site, or X-Requested-With). Lists are paged by `limit` and "
                "the `next_cursor` of the previous page."
            ),
        },
        "servers": [{"url": PREFIX}],
        "tags": [{"name": t} for t in sorted({r.tag for r in ROUTES})],
        "paths": paths,
        "components": {
            "schemas": S.COMPONENTS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "Mã truy cập từ POST /auth/token / a token from POST /auth/token"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "session",
                                  "description": "Phiên đăng nhập giao diện web / the web UI's session"},
            },
        },
    }
