"""Read-side queries for lists and detail pages: projections only, never a write.

Lists (inbox, task lists, instance lists) read the indexed projection tables and never
deserialize a workflow; only the detail of one instance loads its stored state, to show
the latest data. Visibility mirrors the engine's rules (`Engine.may_view_instance`,
`assignment.visible_task_filter`), expressed as SQL so lists can be filtered and paged.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from jinja2 import ChainableUndefined
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import and_, exists, false, or_, select, true
from sqlalchemy.orm import Session, defer, load_only

from engine import serialization
from engine.assignment import visible_task_filter
from engine.errors import Forbidden, InvalidInput, NotFound
from engine.models import (
    AuditEvent,
    Comment,
    Definition,
    HumanTask,
    Instance,
    Organisation,
    Position,
    Role,
    TaskState,
    User,
)

log = logging.getLogger(__name__)

OPEN = TaskState.OPEN.value
SUPERVISING_ROLES = (Role.SUPERVISOR.value, Role.LEADER.value)
MAX_HISTORY = 1000


# ------------------------------------------------------------------ paging
@dataclass
class Page:
    items: list[dict]
    next_cursor: str | None = None


def encode_cursor(created_at: datetime, row_id) -> str:
    raw = json.dumps([created_at.astimezone(timezone.utc).isoformat(), row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, id_type: type) -> tuple[datetime, Any]:
    """The (created_at, id) a page continues after; a damaged cursor is the caller's mistake (400)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, row_id = json.loads(raw)
        when = datetime.fromisoformat(when)
        if when.tzinfo is None or not isinstance(row_id, id_type) or isinstance(row_id, bool):
            raise ValueError
        if id_type is int and not 0 < row_id < 2**31:
            raise ValueError
        if id_type is str and len(row_id) > 32:
            raise ValueError
        return when, row_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput("Con trỏ phân trang không hợp lệ.", "Invalid pagination cursor.",
                           {"cursor": "Con trỏ không hợp lệ. / Invalid cursor."}) from None


def _after(created_col, id_col, cursor: str | None, id_type: type, descending: bool):
    if not cursor:
        return true()
    when, row_id = decode_cursor(cursor, id_type)
    if descending:
        return or_(created_col < when, and_(created_col == when, id_col < row_id))
    return or_(created_col > when, and_(created_col == when, id_col > row_id))


def _page(rows: list, limit: int, to_dict, key) -> Page:
    more = len(rows) > limit
    rows = rows[:limit]
    items = [to_dict(r) for r in rows]
    return Page(items, encode_cursor(*key(rows[-1])) if more and rows else None)


# ------------------------------------------------------------------ people and organisations
def org_codes(session: Session, user_id: int, roles: tuple[str, ...] | None = None) -> list[str]:
    query = select(Position.org_code).where(Position.user_id == user_id)
    if roles:
        query = query.where(Position.role.in_(roles))
    return sorted(set(session.scalars(query)))


def user_refs(session: Session, ids) -> dict[int, dict]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.username, User.full_name).where(User.id.in_(wanted)))
    return {r.id: {"id": r.id, "username": r.username, "full_name": r.full_name} for r in rows}


def org_refs(session: Session, codes) -> dict[str, dict]:
    wanted = {c for c in codes if c}
    if not wanted:
        return {}
    rows = session.execute(select(Organisation.code, Organisation.name_vi, Organisation.name_en)
                           .where(Organisation.code.in_(wanted)))
    return {r.code: {"code": r.code, "name_vi": r.name_vi, "name_en": r.name_en} for r in rows}


def user_id_by_username(session: Session, username: str) -> int | None:
    return session.scalar(select(User.id).where(User.username == (username or "").strip().lower()))


# ------------------------------------------------------------------ visibility
def visible_instance_condition(session: Session, user: User):
    """SQL form of `Engine.may_view_instance`: admin, initiator, owner unit, or a unit/person on a task."""
    if user.is_admin:
        return true()
    orgs = org_codes(session, user.id)
    on_a_task = exists().where(
        HumanTask.instance_id == Instance.id,
        or_(HumanTask.org_code.in_(orgs), HumanTask.assignee_id == user.id,
            HumanTask.completed_by == user.id, HumanTask.candidate_user_id == user.id),
    )
    return or_(Instance.initiator_id == user.id, Instance.owner_org.in_(orgs), on_a_task)


def may_view_instance(session: Session, user: User, instance_id: int, today: date) -> bool:
    """Who may see a case: the engine's rule, plus a substitute with an open task in it today."""
    visible = session.scalar(select(Instance.id).where(Instance.id == instance_id,
                                                       visible_instance_condition(session, user)))
    if visible is not None:
        return True
    return session.scalar(select(HumanTask.id).where(
        HumanTask.instance_id == instance_id, HumanTask.state == OPEN,
        visible_task_filter(session, user.id, today)).limit(1)) is not None


def task_in_instance(session: Session, task_id: str, instance_id: int) -> bool:
    return session.scalar(select(HumanTask.id).where(HumanTask.id == task_id,
                                                     HumanTask.instance_id == instance_id)) is not None


def may_act_now(session: Session, user_id: int, task_id: str, today: date) -> bool:
    return session.scalar(select(HumanTask.id).where(
        HumanTask.id == task_id, HumanTask.state == OPEN, visible_task_filter(session, user_id, today))) is not None


# ------------------------------------------------------------------ tasks
TASK_SCOPES = ("mine", "group", "all")
TASK_STATUSES = ("open", "done")


@dataclass
class TaskQuery:
    scope: str = "mine"
    status: str = "open"
    process: str | None = None
    organisation: str | None = None
    assignee: str | None = None
    overdue: bool | None = None
    limit: int = 50
    cursor: str | None = None


def _overdue_condition(now: datetime):
    """Past due while open, or finished after the due time; never NULL, so it can be negated."""
    return and_(HumanTask.due_at.is_not(None),
                or_(and_(HumanTask.completed_at.is_(None), HumanTask.due_at < now),
                    and_(HumanTask.completed_at.is_not(None), HumanTask.completed_at > HumanTask.due_at)))


def _is_overdue(task: HumanTask, now: datetime) -> bool:
    return task.due_at is not None and (task.completed_at or now) > task.due_at


def task_list(session: Session, user: User, today: date, now: datetime, q: TaskQuery) -> Page:
    """A page of tasks for one scope: `mine` (what I may work on / what I did), `group` (my units'),
    `all` (everything for an administrator, the supervised units' for a supervisor)."""
    is_open = q.status == "open"
    query = select(HumanTask, Instance.title, Instance.status).join(Instance, Instance.id == HumanTask.instance_id)
    query = query.where(HumanTask.state == OPEN if is_open else HumanTask.state != OPEN)
    mine_done = or_(HumanTask.completed_by == user.id, HumanTask.acting_for == user.id)
    if q.scope == "mine":
        query = query.where(visible_task_filter(session, user.id, today) if is_open else mine_done)
    elif q.scope == "group":
        orgs = org_codes(session, user.id)
        own = visible_task_filter(session, user.id, today) if is_open else mine_done
        query = query.where(or_(HumanTask.org_code.in_(orgs), own))
    elif not user.is_admin:
        supervised = org_codes(session, user.id, SUPERVISING_ROLES)
        if not supervised:
            raise Forbidden("Chỉ quản trị hệ thống hoặc lãnh đạo đơn vị được xem toàn bộ công việc.",
                            "Only an administrator or a supervisor may list all tasks.", {"scope": "all"})
        query = query.where(HumanTask.org_code.in_(supervised))
    if q.process:
        query = query.where(HumanTask.process_key == q.process)
    if q.organisation:
        query = query.where(HumanTask.org_code == q.organisation)
    if q.assignee:
        assignee_id = user_id_by_username(session, q.assignee)
        query = query.where(HumanTask.assignee_id == assignee_id if assignee_id is not None else false())
    if q.overdue is not None:
        overdue = _overdue_condition(now)
        query = query.where(overdue if q.overdue else ~overdue)
    descending = not is_open  # the inbox oldest first; finished work newest first
    query = query.where(_after(HumanTask.created_at, HumanTask.id, q.cursor, str, descending))
    order = (HumanTask.created_at.desc(), HumanTask.id.desc()) if descending else (HumanTask.created_at, HumanTask.id)
    rows = session.execute(query.order_by(*order).limit(q.limit + 1)).all()
    tasks = [r[0] for r in rows[:q.limit]]
    users = user_refs(session, [i for t in tasks for i in (t.assignee_id, t.candidate_user_id, t.completed_by,
                                                           t.acting_for)])
    orgs = org_refs(session, [t.org_code for t in tasks])
    return _page(rows, q.limit,
                 lambda r: task_dict(r[0], now, users, orgs, {"title": r[1], "status": r[2]}),
                 lambda r: (r[0].created_at, r[0].id))


def task_dict(t: HumanTask, now: datetime, users: dict, orgs: dict, instance: dict | None = None) -> dict:
    out = {
        "id": t.id,
        "instance_id": t.instance_id,
        "process": t.process_key,
        "name": t.task_name,
        "title": t.title,
        "lane": t.lane,
        "organisation": orgs.get(t.org_code) if t.org_code else None,
        "role": t.role,
        "state": t.state,
        "assignee": users.get(t.assignee_id),
        "candidate": users.get(t.candidate_user_id),
        "completed_by": users.get(t.completed_by),
        "acting_for": users.get(t.acting_for),
        "created_at": t.created_at,
        "due_at": t.due_at,
        "completed_at": t.completed_at,
        "overdue": _is_overdue(t, now),
        "form": t.form_key,
        "business": t.business or {},
        "return_reason": t.return_reason,
    }
    if instance is not None:
        out["instance_title"] = instance["title"]
        out["instance_status"] = instance["status"]
    return out


def task_detail(session: Session, user: User, task_id: str, today: date, now: datetime, definitions) -> dict:
    """One task with its form schema, instructions and case summary; 404 unless the caller may see it."""
    task = session.get(HumanTask, task_id)
    if task is None or not (may_view_instance(session, user, task.instance_id, today)
                            or may_act_now(session, user.id, task.id, today)):
        raise NotFound("Không tìm thấy công việc.", "Task not found.", {"task": task_id})
    inst = session.get(Instance, task.instance_id)
    definition = session.get(Definition, inst.definition_id)
    users = user_refs(session, [task.assignee_id, task.candidate_user_id, task.completed_by, task.acting_for,
                                inst.initiator_id])
    orgs = org_refs(session, [task.org_code, inst.owner_org])
    out = task_dict(task, now, users, orgs)
    forms = definition.forms or {}
    schema = forms.get(task.form_key) if task.form_key else None
    out["form_schema"] = schema
    out["form_ui_schema"] = _ui_schema(forms, task.form_key)
    data = task_data(session, definitions, inst, task.spiff_task_id) if task.state == OPEN else None
    out["instructions"] = render_instructions(_instructions(session, definitions, definition.id, task.task_name),
                                              data or {})
    may_act = task.state == OPEN and may_act_now(session, user.id, task.id, today)
    out["actions"] = {
        "complete": may_act and inst.status == "running",
        "claim": may_act and task.assignee_id is None,
        "unclaim": task.state == OPEN and task.assignee_id is not None and (
            task.assignee_id == user.id or task.org_code in org_codes(session, user.id, SUPERVISING_ROLES)),
        "return": may_act and inst.status == "running",
    }
    out["instance"] = instance_summary(inst, definition, users, orgs)
    out["data"] = data
    return out


def _ui_schema(forms: dict, form_key: str | None):
    """spiff-arena's convention: `x-schema.json` pairs with `x-uischema.json`."""
    if not form_key:
        return None
    stem = form_key[:-5] if form_key.endswith(".json") else form_key
    for name in (f"{stem.removesuffix('-schema')}-uischema.json", f"{stem}-uischema.json", f"{stem}.uischema.json"):
        if name in forms:
            return forms[name]
    return None


def _instructions(session: Session, definitions, definition_id: int, task_name: str) -> str | None:
    try:
        parsed = definitions.get(session, definition_id)
    except Exception:  # noqa: BLE001 - a detail page must not fail because a model cannot be parsed now
        log.exception("definition %s could not be parsed for instructions", definition_id)
        return None
    for spec in parsed.human_tasks.values():
        if spec.bpmn_id == task_name or spec.name == task_name:
            return spec.instructions
    return None


# ------------------------------------------------------------------ instances
INSTANCE_STATUSES = ("running", "suspended", "completed", "cancelled", "error")


@dataclass
class InstanceQuery:
    process: str | None = None
    status: str | None = None
    organisation: str | None = None
    assignee: str | None = None
    overdue: bool | None = None
    limit: int = 50
    cursor: str | None = None


def instance_list(session: Session, user: User, now: datetime, q: InstanceQuery) -> Page:
    """A page of the cases the caller may see, newest first."""
    query = select(Instance.id, Instance.process_key, Instance.title, Instance.status, Instance.owner_org,
                   Instance.initiator_id, Instance.business, Instance.created_at, Instance.updated_at,
                   Instance.completed_at, Instance.version)
    query = query.where(visible_instance_condition(session, user))
    if q.process:
        query = query.where(Instance.process_key == q.process)
    if q.status:
        query = query.where(Instance.status == q.status)
    if q.organisation:
        query = query.where(Instance.owner_org == q.organisation)
    if q.assignee:
        assignee_id = user_id_by_username(session, q.assignee)
        query = query.where(exists().where(HumanTask.instance_id == Instance.id, HumanTask.state == OPEN,
                                           HumanTask.assignee_id == assignee_id) if assignee_id else false())
    if q.overdue is not None:
        late = exists().where(HumanTask.instance_id == Instance.id, HumanTask.state == OPEN,
                              HumanTask.due_at.is_not(None), HumanTask.due_at < now)
        query = query.where(late if q.overdue else ~late)
    query = query.where(_after(Instance.created_at, Instance.id, q.cursor, int, True))
    rows = session.execute(query.order_by(Instance.created_at.desc(), Instance.id.desc()).limit(q.limit + 1)).all()
    shown = rows[:q.limit]
    users = user_refs(session, [r.initiator_id for r in shown])
    orgs = org_refs(session, [r.owner_org for r in shown])

    def to_dict(r) -> dict:
        return {
            "id": r.id, "process": r.process_key, "title": r.title, "status": r.status,
            "owner_org": orgs.get(r.owner_org) if r.owner_org else None, "initiator": users.get(r.initiator_id),
            "business": r.business or {}, "created_at": r.created_at, "updated_at": r.updated_at,
            "completed_at": r.completed_at, "version": r.version,
        }

    return _page(rows, q.limit, to_dict, lambda r: (r.created_at, r.id))


def instance_summary(inst: Instance, definition: Definition, users: dict, orgs: dict) -> dict:
    return {
        "id": inst.id,
        "process": inst.process_key,
        "process_title": definition.title_vi,
        "definition_version": definition.version,
        "title": inst.title,
        "status": inst.status,
        "owner_org": orgs.get(inst.owner_org) if inst.owner_org else None,
        "initiator": users.get(inst.initiator_id),
        "business": inst.business or {},
        "created_at": inst.created_at,
        "updated_at": inst.updated_at,
        "completed_at": inst.completed_at,
        "version": inst.version,
    }


def instance_brief(session: Session, instance_id: int, now: datetime) -> dict:
    """The case summary with its open tasks, from projections only (the stored state is not even read)."""
    inst = session.get(Instance, instance_id, options=[defer(Instance.state)])
    definition = session.get(Definition, inst.definition_id, options=[load_only(
        Definition.id, Definition.title_vi, Definition.version)])
    tasks = list(session.scalars(select(HumanTask).where(HumanTask.instance_id == inst.id, HumanTask.state == OPEN)
                                 .order_by(HumanTask.created_at, HumanTask.id)))
    users = user_refs(session, [inst.initiator_id, *(t.assignee_id for t in tasks),
                                *(t.candidate_user_id for t in tasks)])
    orgs = org_refs(session, [inst.owner_org, *(t.org_code for t in tasks)])
    out = instance_summary(inst, definition, users, orgs)
    out["open_tasks"] = [task_dict(t, now, users, orgs) for t in tasks]
    return out


def task_result(session: Session, task_id: str, next_ids: list[str], now: datetime) -> dict:
    """What an action on a task answers: the task, the tasks it opened, and the case summary."""
    task = session.get(HumanTask, task_id)
    following = [t for t in (session.get(HumanTask, i) for i in next_ids) if t is not None]
    people = [i for t in (task, *following) for i in (t.assignee_id, t.candidate_user_id, t.completed_by,
                                                         t.acting_for)]
    users = user_refs(session, people)
    orgs = org_refs(session, [t.org_code for t in (task, *following)])
    brief = instance_brief(session, task.instance_id, now)
    brief.pop("open_tasks")
    return {"task": task_dict(task, now, users, orgs),
            "next_tasks": [task_dict(t, now, users, orgs) for t in following],
            "instance": brief}


def instance_detail(session: Session, user: User, instance_id: int, today: date, now: datetime,
                    definitions) -> dict:
    """Status, data, open tasks, history and comments of one case; 404 unless the caller may see it."""
    inst = session.get(Instance, instance_id)
    if inst is None or not may_view_instance(session, user, instance_id, today):
        raise NotFound("Không tìm thấy hồ sơ.", "Case not found.", {"instance": instance_id})
    definition = session.get(Definition, inst.definition_id)
    tasks = list(session.scalars(select(HumanTask).where(HumanTask.instance_id == inst.id)
                                 .order_by(HumanTask.created_at, HumanTask.id)))
    events = list(session.scalars(select(AuditEvent).where(AuditEvent.instance_id == inst.id)
                                  .order_by(AuditEvent.at, AuditEvent.id).limit(MAX_HISTORY)))
    comments = list(session.scalars(select(Comment).where(Comment.instance_id == inst.id)
                                    .order_by(Comment.created_at, Comment.id)))
    people = [inst.initiator_id]
    people += [i for t in tasks for i in (t.assignee_id, t.candidate_user_id, t.completed_by, t.acting_for)]
    people += [i for e in events for i in (e.actor_id, e.acting_for_id)]
    people += [i for c in comments for i in (c.author_id, c.acting_for_id)]
    users = user_refs(session, people)
    orgs = org_refs(session, [inst.owner_org, *(t.org_code for t in tasks)])
    out = instance_summary(inst, definition, users, orgs)
    out["error"] = inst.error if user.is_admin else None
    out["data"] = latest_data(session, definitions, inst)
    out["open_tasks"] = [task_dict(t, now, users, orgs) for t in tasks if t.state == OPEN]
    out["tasks"] = [task_dict(t, now, users, orgs) for t in tasks]
    out["history"] = [{
        "id": e.id, "at": e.at, "action": e.action, "task_id": e.task_id,
        "actor": users.get(e.actor_id), "acting_for": users.get(e.acting_for_id), "details": e.details or {},
    } for e in events]
    out["comments"] = [comment_dict(c, users) for c in comments]
    return out


def comment_dict(c: Comment, users: dict) -> dict:
    return {"id": c.id, "task_id": c.task_id, "author": users.get(c.author_id),
            "acting_for": users.get(c.acting_for_id), "body": c.body, "created_at": c.created_at}


def comment(session: Session, comment_id: int) -> dict:
    c = session.get(Comment, comment_id)
    return comment_dict(c, user_refs(session, [c.author_id, c.acting_for_id]))


def latest_data(session: Session, definitions, inst: Instance) -> dict | None:
    """The case's current data: the workflow data once it has ended, else the last run step's data."""
    try:
        parsed = definitions.get(session, inst.definition_id)
        wf = serialization.loads(inst.state, parsed.dialect, inst.definition_id, parsed.spec_pair)
        data = dict(wf.last_task.data) if wf.last_task is not None else dict(wf.task_tree.data)
        if wf.is_completed():
            data.update(wf.data)
        return json_safe(data)
    except Exception:  # noqa: BLE001 - show the rest of the case even if its state cannot be read
        log.exception("state of instance %s could not be read", inst.id)
        return None


def task_data(session: Session, definitions, inst: Instance, spiff_task_id: str) -> dict | None:
    """The data an open step sees: its own (a unit's multi-instance step sees its unit, not the last one)."""
    try:
        parsed = definitions.get(session, inst.definition_id)
        wf = serialization.loads(inst.state, parsed.dialect, inst.definition_id, parsed.spec_pair)
        spiff = wf.get_task_from_id(UUID(spiff_task_id))
        return json_safe(dict(spiff.data)) if spiff is not None else None
    except Exception:  # noqa: BLE001 - show the rest of the task even if its state cannot be read
        log.exception("state of instance %s could not be read", inst.id)
        return None


_JINJA = SandboxedEnvironment(autoescape=False, undefined=ChainableUndefined)
MAX_INSTRUCTIONS = 20_000


def render_instructions(template: str | None, data: dict) -> str | None:
    """Fill a step's `{{ field }}` placeholders from its data, in Jinja's sandbox; plain text out (escaped by views)."""
    if not template:
        return template
    try:
        return _JINJA.from_string(template).render(**data)[:MAX_INSTRUCTIONS]
    except Exception:  # noqa: BLE001 - a broken template shows as written rather than failing the page
        return template


def json_safe(value, depth: int = 0):
    """Task data as JSON: dates as ISO strings, decimals as strings (exact), anything else as text."""
    if depth > 64:
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


# ------------------------------------------------------------------ definitions
def definition_list(session: Session, process: str | None = None) -> list[dict]:
    query = select(Definition.id, Definition.process_key, Definition.version, Definition.title_vi,
                   Definition.title_en, Definition.dialect, Definition.deployed_at, Definition.deployed_by)
    if process:
        query = query.where(Definition.process_key == process)
    rows = session.execute(query.order_by(Definition.process_key, Definition.version.desc())).all()
    latest: dict[str, int] = {}
    for r in rows:
        latest.setdefault(r.process_key, r.version)
    users = user_refs(session, [r.deployed_by for r in rows])
    return [{
        "id": r.id, "process": r.process_key, "version": r.version, "latest": latest[r.process_key] == r.version,
        "title_vi": r.title_vi, "title_en": r.title_en, "dialect": r.dialect, "deployed_at": r.deployed_at,
        "deployed_by": users.get(r.deployed_by),
    } for r in rows]
