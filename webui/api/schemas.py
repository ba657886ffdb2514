"""JSON Schemas of the API's bodies and responses: one source for validation and the OpenAPI document.

OpenAPI 3.1 schemas are JSON Schema 2020-12, so the request schemas below are used as they
are to validate requests, and the response schemas are what the fuzz test checks answers against.
"""

from __future__ import annotations

MAX_ID = 2**31 - 1
TASK_ID_PATTERN = "^[0-9a-f]{32}$"
KEY_PATTERN = "^[A-Za-z0-9_.-]{1,128}$"


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict) -> dict:
    if set(schema) == {"type"} and isinstance(schema["type"], str):
        return {"type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict, required: list[str] | None = None, *, closed: bool = False, **extra) -> dict:
    """An object schema; every property is required unless a list says otherwise."""
    out = {"type": "object", "properties": properties,
           "required": list(properties) if required is None else required}
    if closed:
        out["additionalProperties"] = False
    out.update(extra)
    return out


STRING = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
DATETIME = {"type": "string", "format": "date-time"}
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
ANY_OBJECT = {"type": "object"}
VERSION = {"type": "integer", "minimum": 1, "maximum": MAX_ID,
           "description": "Phiên bản hồ sơ đã đọc (chống ghi đè) / the case version read, for optimistic locking"}

# ------------------------------------------------------------------ responses
USER_REF = obj({"id": INT, "username": STRING, "full_name": STRING})
ORG_REF = obj({"code": STRING, "name_vi": STRING, "name_en": STRING})

TASK_PROPS = {
    "id": STRING,
    "instance_id": INT,
    "process": STRING,
    "name": STRING,
    "title": STRING,
    "lane": nullable(STRING),
    "organisation": nullable(ref("OrgRef")),
    "role": nullable(STRING),
    "state": {"type": "string", "enum": ["open", "completed", "returned", "cancelled"]},
    "assignee": nullable(ref("UserRef")),
    "candidate": nullable(ref("UserRef")),
    "completed_by": nullable(ref("UserRef")),
    "acting_for": nullable(ref("UserRef")),
    "created_at": DATETIME,
    "due_at": nullable(DATETIME),
    "completed_at": nullable(DATETIME),
    "overdue": BOOL,
    "form": nullable(STRING),
    "business": ANY_OBJECT,
    "return_reason": nullable(STRING),
}
TASK = obj(TASK_PROPS)
TASK_LIST_ITEM = obj({**TASK_PROPS, "instance_title": STRING, "instance_status": STRING})

INSTANCE_PROPS = {
    "id": INT,
    "process": STRING,
    "title": STRING,
    "status": {"type": "string", "enum": ["running", "suspended", "completed", "cancelled", "error"]},
    "owner_org": nullable(ref("OrgRef")),
    "initiator": nullable(ref("UserRef")),
    "business": ANY_OBJECT,
    "created_at": DATETIME,
    "updated_at": DATETIME,
    "completed_at": nullable(DATETIME),
    "version": INT,
}
INSTANCE_LIST_ITEM = obj(INSTANCE_PROPS)
INSTANCE_SUMMARY = obj({**INSTANCE_PROPS, "process_title": STRING, "definition_version": INT})
HISTORY_EVENT = obj({"id": INT, "at": DATETIME, "action": STRING, "task_id": nullable(STRING),
                     "actor": nullable(ref("UserRef")), "acting_for": nullable(ref("UserRef")),
                     "details": ANY_OBJECT})
COMMENT = obj({"id": INT, "task_id": nullable(STRING), "author": nullable(ref("UserRef")),
               "acting_for": nullable(ref("UserRef")), "body": STRING, "created_at": DATETIME})
INSTANCE_DETAIL = obj({
    **INSTANCE_SUMMARY["properties"],
    "error": nullable(STRING),
    "data": nullable(ANY_OBJECT),
    "open_tasks": {"type": "array", "items": ref("Task")},
    "tasks": {"type": "array", "items": ref("Task")},
    "history": {"type": "array", "items": ref("HistoryEvent")},
    "comments": {"type": "array", "items": ref("Comment")},
})
INSTANCE_BRIEF = obj({**INSTANCE_SUMMARY["properties"], "open_tasks": {"type": "array", "items": ref("Task")}})
TASK_DETAIL = obj({
    **TASK_PROPS,
    "form_schema": nullable(ANY_OBJECT),
    "form_ui_schema": nullable(ANY_OBJECT),
    "instructions": nullable(STRING),
    "actions": obj({"complete": BOOL, "claim": BOOL, "unclaim": BOOL, "return": BOOL}),
    "signals": {"type": "array", "description": "Nút tín hiệu của bước (sự kiện biên tín hiệu) / the step's signal "
                "buttons (signal boundary events)", "items": obj({"name": STRING, "label": STRING})},
    "instance": ref("InstanceSummary"),
    "data": nullable(ANY_OBJECT),
})
TASK_RESULT = obj({"task": ref("Task"), "next_tasks": {"type": "array", "items": ref("Task")},
                   "instance": ref("InstanceSummary")})


def page_of(item: str) -> dict:
    return obj({"items": {"type": "array", "items": ref(item)}, "next_cursor": nullable(STRING)})


DEFINITION = obj({"id": INT, "process": STRING, "version": INT, "latest": BOOL, "title_vi": STRING,
                  "title_en": STRING, "dialect": STRING, "deployed_at": DATETIME,
                  "deployed_by": nullable(ref("UserRef"))})
DEPLOY_RESULT = obj({"definition_id": INT, "process": STRING, "version": INT, "created": BOOL})
TOKEN = obj({"id": INT, "name": STRING, "prefix": STRING, "owner": nullable(ref("UserRef")),
             "created_at": DATETIME, "expires_at": nullable(DATETIME), "last_used_at": nullable(DATETIME),
             "revoked_at": nullable(DATETIME), "active": BOOL})
NEW_TOKEN = obj({**TOKEN["properties"], "token": {"type": "string", "description": "Chỉ hiện một lần / shown once"}})
ME = obj({"id": INT, "username": STRING, "full_name": STRING, "is_admin": BOOL,
          "positions": {"type": "array", "items": obj({"organisation": ref("OrgRef"), "role": STRING})},
          "auth": {"type": "string", "enum": ["token", "session"]}})
TASK_DRAFT = obj({
    "task_id": STRING,
    "data": {**nullable(ANY_OBJECT),
             "description": "Biểu mẫu đang soạn, chưa kiểm tra; null nếu chưa có bản nháp / the unvalidated form, "
                            "null when there is no draft"},
    "saved_at": nullable(DATETIME),
    "saved_by": nullable(ref("UserRef")),
})
MESSAGE_RESULT = obj({"instances": {"type": "array", "items": INT}})
HEALTH = obj({"status": STRING, "database": STRING})
ERROR = obj({"error": obj({
    "code": STRING,
    "message": {"type": "string", "description": "Tiếng Việt / English"},
    "details": {"type": "object", "description": "Chi tiết theo từng trường / per-field details"},
})})

COMPONENTS = {
    "Error": ERROR,
    "UserRef": USER_REF,
    "OrgRef": ORG_REF,
    "Task": TASK,
    "TaskListItem": TASK_LIST_ITEM,
    "TaskPage": page_of("TaskListItem"),
    "TaskDetail": TASK_DETAIL,
    "TaskResult": TASK_RESULT,
    "TaskDraft": TASK_DRAFT,
    "InstanceListItem": INSTANCE_LIST_ITEM,
    "InstancePage": page_of("InstanceListItem"),
    "InstanceSummary": INSTANCE_SUMMARY,
    "InstanceBrief": INSTANCE_BRIEF,
    "InstanceDetail": INSTANCE_DETAIL,
    "HistoryEvent": HISTORY_EVENT,
    "Comment": COMMENT,
    "Definition": DEFINITION,
    "DefinitionList": obj({"items": {"type": "array", "items": ref("Definition")}}),
    "DeployResult": DEPLOY_RESULT,
    "Token": TOKEN,
    "NewToken": NEW_TOKEN,
    "TokenList": obj({"items": {"type": "array", "items": ref("Token")}}),
    "Me": ME,
    "MessageResult": MESSAGE_RESULT,
    "Health": HEALTH,
    "OpenApiDocument": {"type": "object", "required": ["openapi", "info", "paths"]},
}

# ------------------------------------------------------------------ request bodies
SCALAR = {"type": ["string", "number", "integer", "boolean"]}
SHORT_TEXT = {"type": "string", "maxLength": 2000}

TOKEN_REQUEST = obj({
    "username": {"type": "string", "minLength": 1, "maxLength": 64},
    "password": {"type": "string", "minLength": 1, "maxLength": 1024},
    "name": {"type": "string", "maxLength": 100, "description": "Tên gợi nhớ / a label for the token"},
    "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650},
}, ["username", "password"], closed=True)
START_INSTANCE = obj({
    "process": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": KEY_PATTERN},
    "data": ANY_OBJECT,
    "owner_org": {"type": "string", "minLength": 1, "maxLength": 64},
    "version": ID,
}, ["process"], closed=True)
COMPLETE = obj({"data": ANY_OBJECT, "expected_version": VERSION}, [], closed=True)
RETURN = obj({"reason": {"type": "string", "minLength": 1, "maxLength": 2000}, "expected_version": VERSION},
             ["reason"], closed=True)
REASSIGN = obj({
    "user_id": ID,
    "username": {"type": "string", "minLength": 1, "maxLength": 64},
    "note": SHORT_TEXT,
}, [], closed=True, oneOf=[{"required": ["user_id"]}, {"required": ["username"]}])
EMPTY = obj({}, [], closed=True)
COMMENT_REQUEST = obj({
    "body": {"type": "string", "minLength": 1, "maxLength": 10000},
    "task_id": {"type": "string", "pattern": TASK_ID_PATTERN},
}, ["body"], closed=True)
ADMIN_ACTION = obj({"reason": SHORT_TEXT}, [], closed=True)
MESSAGE = obj({
    "name": {"type": "string", "minLength": 1, "maxLength": 255},
    "correlations": {"type": "object", "maxProperties": 20, "additionalProperties": SCALAR,
                     "propertyNames": {"maxLength": 255}},
    "payload": ANY_OBJECT,
}, ["name"], closed=True)
SIGNAL = obj({
    "name": {"type": "string", "minLength": 1, "maxLength": 255},
    "payload": ANY_OBJECT,
    "instance_id": ID,
}, ["name"], closed=True)
TASK_SIGNAL = obj({
    "name": {"type": "string", "minLength": 1, "maxLength": 255},
    "payload": ANY_OBJECT,
}, ["name"], closed=True)
DEPLOY_MULTIPART = obj({
    "files": {"type": "array", "minItems": 1,
              "items": {"type": "string", "contentMediaType": "application/octet-stream"},
              "description": ".bpmn, .dmn, biểu mẫu .json, process.json"},
    "key": {"type": "string", "pattern": KEY_PATTERN},
}, ["files"])
