"""Tasks: the inbox and task lists, one task with its form, and what people do to a task."""

from __future__ import annotations

from engine import drafts, queries
from engine.errors import NotFound
from webui import request_db
from webui.api import schemas as S
from webui.api.auth import engine, resolve_user
from webui.api.spec import ASSIGNEE, CURSOR, LIMIT, ORGANISATION, OVERDUE, PROCESS, TASK_ID, Param, api_route


@api_route("GET", "/tasks", summary="Danh sách công việc / list tasks", tag="tasks",
           params=(Param("scope", "query", {"type": "string", "enum": list(queries.TASK_SCOPES), "default": "mine"},
                         "mine: việc tôi xử lý được (open) hoặc đã làm (done); group: việc của đơn vị tôi; "
                         "all: mọi việc (quản trị) hoặc của đơn vị tôi lãnh đạo / mine, group, all"),
                   Param("status", "query", {"type": "string", "enum": list(queries.TASK_STATUSES),
                                             "default": "open"}, "open hoặc done / open or done"),
                   PROCESS, ORGANISATION, ASSIGNEE, OVERDUE, LIMIT, CURSOR),
           response="TaskPage", errors=(403,))
def list_tasks(call):
    """Open tasks oldest first (an inbox), finished ones newest first. `scope=mine` (default) is
    what the caller may work on now: assigned to them or to someone they stand in for, or waiting
    unclaimed in their group's queue. `scope=all` is for administrators and supervisors (their units)."""
    eng = engine()
    q = queries.TaskQuery(**call.query)
    with request_db.read() as session:
        page = queries.task_list(session, call.actor, eng.today(), eng.now(), q)
    return {"items": page.items, "next_cursor": page.next_cursor}


@api_route("GET", "/tasks/{task_id}", summary="Chi tiết công việc / a task with its form", tag="tasks",
           params=(TASK_ID,), response="TaskDetail")
def get_task(call):
    """With the form's JSON Schema (and UI schema), the step's instructions, the case summary,
    the case's latest data (to prefill the form), the return reason if the work was sent back,
    and which actions the caller may take. A task the caller may not see is 404."""
    eng = engine()
    with request_db.read() as session:
        return queries.task_detail(session, call.actor, call.path["task_id"], eng.today(), eng.now(),
                                   eng.definitions)


def _require_visible_task(session, actor, task_id: str) -> int:
    """The task's case id; a task the caller may not see does not exist for them (404, never 403)."""
    instance_id = queries.visible_task_instance(session, actor, task_id, engine().today())
    if instance_id is None:
        raise NotFound("Không tìm thấy công việc.", "Task not found.", {"task": task_id})
    return instance_id


def _task_result(task_id: str, next_ids: list[str] = ()) -> dict:
    eng = engine()
    with request_db.read() as session:
        return queries.task_result(session, task_id, list(next_ids), eng.now())


def _visible(call) -> str:
    task_id = call.path["task_id"]
    with request_db.read() as session:
        _require_visible_task(session, call.actor, task_id)
    return task_id


ACTION_ERRORS = (403, 409)


@api_route("POST", "/tasks/{task_id}/claim", summary="Nhận xử lý / claim", tag="tasks", params=(TASK_ID,),
           body=S.EMPTY, response="TaskResult", errors=ACTION_ERRORS)
def claim_task(call):
    """Take a group task so colleagues see who is on it; 409 if someone else already has."""
    task_id = _visible(call)
    engine().claim(call.actor.id, task_id)
    return _task_result(task_id)


@api_route("POST", "/tasks/{task_id}/unclaim", summary="Trả về nhóm / release", tag="tasks", params=(TASK_ID,),
           body=S.EMPTY, response="TaskResult", errors=ACTION_ERRORS)
def unclaim_task(call):
    """Put a claimed task back in the group's queue (its holder or a supervisor of the unit)."""
    task_id = _visible(call)
    engine().unclaim(call.actor.id, task_id)
    return _task_result(task_id)


@api_route("POST", "/tasks/{task_id}/signal", summary="Gửi tín hiệu của bước / press a step's signal button",
           tag="tasks", params=(TASK_ID,), body=S.TASK_SIGNAL, body_required=True, response="TaskResult",
           errors=ACTION_ERRORS)
def signal_task(call):
    """Send one of the step's own signals (its signal boundary events, listed as `signals` on the
    task, e.g. "Sửa lại"): whoever may complete the step may press it. The case catches the signal
    and runs on as modelled (an interrupting one closes the step); 400 for a signal the step has not."""
    task_id = _visible(call)
    body = call.body
    next_ids = engine().signal_task(call.actor.id, task_id, body["name"], body.get("payload") or {})
    return _task_result(task_id, next_ids)


@api_route("POST", "/tasks/{task_id}/complete", summary="Hoàn thành / complete", tag="tasks", params=(TASK_ID,),
           body=S.COMPLETE, response="TaskResult", errors=ACTION_ERRORS)
def complete_task(call):
    """Submit the form `data` (checked against the task's JSON Schema: 400 with a message per
    field). Pass `expected_version` (the case's `version` you read) to get 409 instead of
    overwriting someone else's change; a task that is no longer open is 409 too."""
    task_id = _visible(call)
    body = call.body or {}
    next_ids = engine().complete_task(call.actor.id, task_id, body.get("data") or {}, body.get("expected_version"))
    return _task_result(task_id, next_ids)


@api_route("POST", "/tasks/{task_id}/return", summary="Trả lại / return with a reason", tag="tasks",
           params=(TASK_ID,), body=S.RETURN, body_required=True, response="TaskResult", errors=ACTION_ERRORS)
def return_task(call):
    """Send the work back to the previous human step; the reason is mandatory and shown on the
    reopened task."""
    task_id = _visible(call)
    reopened = engine().return_task(call.actor.id, task_id, call.body["reason"], call.body.get("expected_version"))
    return _task_result(task_id, [reopened])


@api_route("POST", "/tasks/{task_id}/reassign", summary="Chuyển xử lý / reassign", tag="tasks", params=(TASK_ID,),
           body=S.REASSIGN, body_required=True, response="TaskResult", errors=ACTION_ERRORS)
def reassign_task(call):
    """A supervisor of the task's unit (or an administrator) gives it to another member of the same
    unit, by `user_id` or `username`, with an optional note."""
    task_id = _visible(call)
    eng = engine()
    with request_db.read() as session:
        target = resolve_user(session, call.body.get("user_id"), call.body.get("username"))
    eng.reassign(call.actor.id, task_id, target, call.body.get("note", ""))
    return _task_result(task_id)


# ------------------------------------------------------------------ drafts (Lưu nháp)
DRAFT_BODY = S.obj({"data": {**S.ANY_OBJECT, "description": "Biểu mẫu đang soạn (không kiểm tra theo biểu mẫu) / "
                                                            "the form as it is now (not validated)"}},
                   ["data"], closed=True)
DRAFT_ERRORS = (403, 409)


def _draft_dict(task_id: str, found) -> dict:
    if found is None:
        return {"task_id": task_id, "data": None, "saved_at": None, "saved_by": None}
    with request_db.read() as session:
        who = queries.user_refs(session, [found.saved_by]).get(found.saved_by)
    return {"task_id": found.task_id, "data": found.data, "saved_at": found.saved_at, "saved_by": who}


@api_route("GET", "/tasks/{task_id}/draft", summary="Bản nháp của công việc / a task's saved draft", tag="tasks",
           params=(TASK_ID,), response="TaskDraft", errors=(403,))
def get_task_draft(call):
    """The draft saved for this open task (`data` is null when there is none, or when the task is no
    longer open). Only someone who may complete the task may read it (403 otherwise)."""
    task_id = _visible(call)
    return _draft_dict(task_id, drafts.load_draft(engine(), call.actor.id, task_id))


@api_route("PUT", "/tasks/{task_id}/draft", summary="Lưu nháp / save a draft", tag="tasks", params=(TASK_ID,),
           body=DRAFT_BODY, body_required=True, response="TaskDraft", errors=DRAFT_ERRORS)
def save_task_draft(call):
    """Keep the form `data` as it is, replacing any earlier draft: it is not checked against the
    form (it may be half-filled) and nothing is submitted. It must still be a JSON object of at
    most 256 KB without the reserved `typename` key. Only someone who may complete the task (403),
    only while it is open and its case running (409)."""
    task_id = _visible(call)
    return _draft_dict(task_id, drafts.save_draft(engine(), call.actor.id, task_id, call.body["data"]))


@api_route("DELETE", "/tasks/{task_id}/draft", summary="Xóa bản nháp / discard a draft", tag="tasks",
           params=(TASK_ID,), response="TaskDraft", errors=DRAFT_ERRORS)
def discard_task_draft(call):
    """Throw the draft away (harmless when there is none); answers the now empty draft."""
    task_id = _visible(call)
    drafts.discard_draft(engine(), call.actor.id, task_id)
    return _draft_dict(task_id, None)
