"""Who may act on a task: lane rules resolved against the org directory, substitutes included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from engine.errors import InvalidInput
from engine.models import HumanTask, Position, Role, Substitute, User
from engine.store import Store


@dataclass(frozen=True)
class Assignment:
    org_code: str | None
    role: str | None
    candidate_user_id: int | None = None


def active_org_code(store: Store, code: str) -> str | None:
    """Follow `merged_into` so work routed to a merged organisation reaches its successor."""
    seen: set[str] = set()
    while code and code not in seen:
        seen.add(code)
        exists, successor = store.org_successor(code)
        if not exists:
            return None
        if not successor:
            return code
        code = successor
    return None


def _lookup(data: dict, path: str):
    value = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, dict):
        value = value.get("code") or value.get("ma_don_vi")
    return value


def resolve(store: Store, rule: dict, *, owner_org: str | None, initiator_id: int | None, data: dict) -> Assignment:
    """Turn a lane rule into the organisation and role (or single user) a new task goes to."""
    if "user" in rule:
        who = rule["user"]
        if who == "$initiator":
            return Assignment(owner_org, None, initiator_id)
        username = _lookup(data, who[5:]) if who.startswith("data:") else who
        user_id = store.scalar("SELECT id FROM users WHERE username = :u", u=str(username or ""))
        if user_id is None:
            raise InvalidInput(f"Không tìm thấy người dùng '{username}'.", f"Unknown user '{username}'.",
                               {"user": str(username)})
        return Assignment(owner_org, None, user_id)
    org_ref = rule["org"]
    if org_ref == "$owner":
        code = owner_org
    elif org_ref.startswith("data:"):
        code = _lookup(data, org_ref[5:])
    else:
        code = org_ref
    active = active_org_code(store, str(code)) if code else None
    if active is None:
        raise InvalidInput(
            f"Không xác định được đơn vị xử lý ('{code}').",
            f"Cannot determine the organisation for this step ('{code}').",
            {"org": str(code)},
        )
    return Assignment(active, rule["role"], None)


def substitutes_today(session: Session, user_id: int, today: date) -> list[int]:
    """The users `user_id` is acting for today."""
    return list(session.scalars(
        select(Substitute.user_id).where(
            Substitute.substitute_id == user_id, Substitute.starts_on <= today, Substitute.ends_on >= today
        )
    ))


def may_act(store: Store, user_id: int, task, today: date) -> tuple[bool, int | None]:
    """(allowed, acting_for): may this (active) user complete the task, and for whom are they acting?"""
    def direct(uid: int) -> bool:
        if task.assignee_id is not None:
            return task.assignee_id == uid
        if task.candidate_user_id is not None:
            return task.candidate_user_id == uid
        return store.holds(uid, task.org_code, task.role)

    personal = task.assignee_id is not None or task.candidate_user_id is not None
    if direct(user_id) and (not personal or store.active(user_id)):
        return True, None
    if not store.active(user_id):
        return False, None
    for absent in store.acting_for_today(user_id, today):
        if direct(absent):
            return True, absent
    return False, None


def is_supervisor(store: Store, user_id: int, org_code: str | None) -> bool:
    return store.holds(user_id, org_code, Role.SUPERVISOR.value) or store.holds(user_id, org_code, Role.LEADER.value)


def candidates(session: Session, task: HumanTask) -> list[User]:
    """Who could take the task now: follows membership changes, since nothing is copied at creation."""
    if task.assignee_id is not None:
        return [session.get(User, task.assignee_id)]
    if task.candidate_user_id is not None:
        return [session.get(User, task.candidate_user_id)]
    return list(session.scalars(
        select(User).join(Position).where(
            Position.org_code == task.org_code, Position.role == task.role, User.active.is_(True)
        ).order_by(User.full_name)
    ))


def visible_task_filter(session: Session, user_id: int, today: date):
    """SQL condition for the open tasks a user (or someone they act for) may work on."""
    people = [user_id, *substitutes_today(session, user_id, today)]
    clauses = [HumanTask.assignee_id.in_(people)]
    clauses.append(and_(HumanTask.assignee_id.is_(None), HumanTask.candidate_user_id.in_(people)))
    positions = session.execute(select(Position.org_code, Position.role).where(Position.user_id.in_(people))).all()
    for org_code, role in positions:
        clauses.append(and_(
            HumanTask.assignee_id.is_(None), HumanTask.candidate_user_id.is_(None),
            HumanTask.org_code == org_code, HumanTask.role == role,
        ))
    return or_(*clauses)
