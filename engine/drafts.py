"""Saved drafts of a task's form (Lưu nháp): half-filled work kept until it is submitted.

A draft is not validated against the form (it may be incomplete), but it is still a JSON
object of bounded size without the reserved `typename` key, exactly as completion requires
of what it stores. Only someone who may complete the task may save, read or discard its
draft (the engine's own check for completing and claiming), and only while the task is
open: a draft left behind by a completed task is never shown again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from engine import serialization
from engine.audit import Action, record
from engine.errors import Conflict, InvalidInput, NotFound, TooLarge
from engine.models import TaskDraft, TaskState
from engine.store import Store

if TYPE_CHECKING:
    from engine.runtime import Engine

MAX_DRAFT_BYTES = 256 * 1024  # the draft as compact JSON (UTF-8)
MAX_FIELDS_AUDITED = 50


@dataclass(frozen=True)
class Draft:
    task_id: str
    data: dict
    saved_at: datetime
    saved_by: int | None


def check_draft_data(data) -> dict:
    """A JSON object the task could later be completed with: bounded, serialisable, no `typename`."""
    if not isinstance(data, dict):
        raise InvalidInput("Bản nháp phải là một đối tượng JSON.", "A draft must be a JSON object.",
                           {"data": "object"})
    try:
        encoded = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        raise InvalidInput("Bản nháp chứa giá trị không lưu được.", "The draft holds a value that cannot be stored.",
                           {"data": "not JSON"}) from None
    if len(encoded.encode("utf-8")) > MAX_DRAFT_BYTES:
        raise TooLarge(f"Bản nháp quá lớn (tối đa {MAX_DRAFT_BYTES // 1024} KB).",
                       f"The draft is too large (at most {MAX_DRAFT_BYTES // 1024} KB).", {"data": "too large"})
    serialization.check_submitted_data(data)  # the same refusal of `typename` as on completion
    if _has_nul(data):  # no text column of PostgreSQL can hold it
        raise InvalidInput("Bản nháp chứa ký tự không hợp lệ.", "The draft contains an invalid character.",
                           {"data": "NUL"})
    return json.loads(encoded)  # a plain copy: what is stored is exactly what was checked


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def save_draft(engine: Engine, actor_id: int, task_id: str, data) -> Draft:
    """Keep the form as it is now, replacing any earlier draft of the task; nothing is submitted.

    Refused like a completion would be: 404 for an unknown task, 409 if it is no longer open or
    its case is suspended or ended, 403 for someone who may not complete it.
    """
    data = check_draft_data(data)
    with engine._action() as session:
        store = Store(session)
        task, inst, _ = engine._open_task(store, task_id)
        acting_for = engine._check_actor(store, actor_id, task)
        now = engine.now()
        row = session.get(TaskDraft, task.id)
        if row is None:
            session.add(TaskDraft(task_id=task.id, data=data, saved_at=now, saved_by=actor_id))
        else:
            row.data, row.saved_at, row.saved_by = data, now, actor_id
        # Drafts of this case's finished steps are never shown again: drop them while here.
        store.execute("DELETE FROM task_drafts WHERE task_id IN (SELECT id FROM human_tasks "
                      "WHERE instance_id = :iid AND state <> :open)", iid=inst.id, open=TaskState.OPEN.value)
        record(session, Action.TASK_DRAFT_SAVED, now, task_id=task.id, actor_id=actor_id, acting_for_id=acting_for,
               instance=inst.id, task=task.task_name, fields=sorted(data)[:MAX_FIELDS_AUDITED])
        return Draft(task.id, data, now, actor_id)


def load_draft(engine: Engine, actor_id: int, task_id: str) -> Draft | None:
    """The task's draft, for someone who may complete it; None when there is none or the task is not open."""
    with engine.db.read() as session:
        store = Store(session)
        task = store.task(str(task_id))
        if task is None:
            raise NotFound("Không tìm thấy công việc.", "Task not found.", {"task": str(task_id)})
        if task.state != TaskState.OPEN.value:
            return None
        engine._check_actor(store, actor_id, task)
        row = session.get(TaskDraft, task.id)
        if row is None:
            return None
        return Draft(row.task_id, dict(row.data or {}), row.saved_at, row.saved_by)


def discard_draft(engine: Engine, actor_id: int, task_id: str) -> bool:
    """Throw the task's draft away; True if there was one."""
    with engine._action() as session:
        store = Store(session)
        task = store.task(str(task_id))
        if task is None:
            raise NotFound("Không tìm thấy công việc.", "Task not found.", {"task": str(task_id)})
        if task.state != TaskState.OPEN.value:
            raise Conflict("Công việc này đã được xử lý, không còn mở.", "This task is no longer open.",
                           {"task": task.id, "state": task.state})
        engine._check_actor(store, actor_id, task)
        row = session.get(TaskDraft, task.id)
        if row is None:
            return False
        session.delete(row)
        record(session, Action.TASK_DRAFT_DISCARDED, engine.now(), task_id=task.id, actor_id=actor_id,
               instance=task.instance_id, task=task.task_name)
        return True
