"""Cases (process instances): start, list, read, comment; cancel, suspend and resume (administrators)."""

from __future__ import annotations

from engine import queries
from engine.errors import InvalidInput, NotFound
from webui import request_db
from webui.api import schemas as S
from webui.api.auth import engine
from webui.api.spec import ASSIGNEE, CURSOR, INSTANCE_ID, LIMIT, ORGANISATION, OVERDUE, PROCESS, Param, api_route


def instance_brief(session, instance_id: int) -> dict:
    return queries.instance_brief(session, instance_id, engine().now())


def require_visible_instance(session, actor, instance_id: int) -> None:
    """A case the caller may not see does not exist for them (404, never 403)."""
    if not queries.may_view_instance(session, actor, instance_id, engine().today()):
        raise NotFound("Không tìm thấy hồ sơ.", "Case not found.", {"instance": instance_id})


@api_route("POST", "/instances", summary="Khởi tạo hồ sơ / start a case", tag="instances",
           body=S.START_INSTANCE, body_required=True, status=201, response="InstanceBrief", errors=(403, 404))
def start_instance(call):
    """Starts the latest version of `process` (or `version`) with `data` (checked against the start
    form, if the process has one). `owner_org` must be one of the caller's units."""
    eng = engine()
    body = call.body
    instance_id = eng.start_instance(call.actor.id, body["process"], body.get("data") or {},
                                     owner_org=body.get("owner_org"), version=body.get("version"))
    with request_db.read() as session:
        return instance_brief(session, instance_id)


@api_route("GET", "/instances", summary="Danh sách hồ sơ / list cases", tag="instances",
           params=(PROCESS,
                   Param("status", "query", {"type": "string", "enum": list(queries.INSTANCE_STATUSES)},
                         "Trạng thái / status"),
                   ORGANISATION, ASSIGNEE, OVERDUE, LIMIT, CURSOR),
           response="InstancePage")
def list_instances(call):
    """The cases the caller may see, newest first. `organisation` filters on the owning unit;
    `assignee` and `overdue` on the case's open tasks."""
    eng = engine()
    q = queries.InstanceQuery(**{k: v for k, v in call.query.items()})
    with request_db.read() as session:
        page = queries.instance_list(session, call.actor, eng.now(), q)
    return {"items": page.items, "next_cursor": page.next_cursor}


@api_route("GET", "/instances/{instance_id}", summary="Chi tiết hồ sơ / a case in detail", tag="instances",
           params=(INSTANCE_ID,), response="InstanceDetail")
def get_instance(call):
    """Status, business fields, the latest data, open tasks, every task so far, the history (who,
    acting for whom, what, when) and comments. A case the caller may not see is 404."""
    eng = engine()
    with request_db.read() as session:
        return queries.instance_detail(session, call.actor, call.path["instance_id"], eng.today(), eng.now(),
                                       eng.definitions)


@api_route("POST", "/instances/{instance_id}/comments", summary="Thêm ý kiến / add a comment", tag="instances",
           params=(INSTANCE_ID,), body=S.COMMENT_REQUEST, body_required=True, status=201, response="Comment",
           errors=(403,))
def add_comment(call):
    """Anyone who may see the case may comment on it, optionally about one of its tasks."""
    eng = engine()
    instance_id = call.path["instance_id"]
    with request_db.read() as session:
        require_visible_instance(session, call.actor, instance_id)
        task_id = call.body.get("task_id")
        if task_id and not queries.task_in_instance(session, task_id, instance_id):
            raise InvalidInput("Công việc không thuộc hồ sơ này.", "The task is not part of this case.",
                               {"task_id": "Không thuộc hồ sơ. / Not in this case."})
    comment_id = eng.add_comment(call.actor.id, instance_id, call.body["body"], task_id)
    with request_db.read() as session:
        return queries.comment(session, comment_id)


def _admin_action(call, action: str):
    eng = engine()
    instance_id = call.path["instance_id"]
    with request_db.read() as session:
        require_visible_instance(session, call.actor, instance_id)
    reason = (call.body or {}).get("reason", "")
    if action == "resume":
        eng.resume(call.actor.id, instance_id)
    else:
        getattr(eng, action)(call.actor.id, instance_id, reason)
    with request_db.read() as session:
        return instance_brief(session, instance_id)


@api_route("POST", "/instances/{instance_id}/cancel", summary="Hủy hồ sơ / cancel a case", tag="instances",
           params=(INSTANCE_ID,), body=S.ADMIN_ACTION, response="InstanceBrief", errors=(403, 409))
def cancel_instance(call):
    """Administrators only; closes every open task. 409 if the case has already ended."""
    return _admin_action(call, "cancel")


@api_route("POST", "/instances/{instance_id}/suspend", summary="Tạm dừng hồ sơ / suspend a case", tag="instances",
           params=(INSTANCE_ID,), body=S.ADMIN_ACTION, response="InstanceBrief", errors=(403, 409))
def suspend_instance(call):
    """Administrators only; a suspended case accepts no task action until resumed."""
    return _admin_action(call, "suspend")


@api_route("POST", "/instances/{instance_id}/resume", summary="Tiếp tục hồ sơ / resume a case", tag="instances",
           params=(INSTANCE_ID,), body=S.ADMIN_ACTION, response="InstanceBrief", errors=(403, 409))
def resume_instance(call):
    """Administrators only."""
    return _admin_action(call, "resume")
