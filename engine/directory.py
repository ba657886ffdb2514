"""The org directory and people: organisations, users, positions, substitutes, and seeding from data."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import InvalidInput, NotFound
from engine.models import Organisation, Position, Role, Substitute, User

_hasher = PasswordHasher()
MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise InvalidInput(f"Mật khẩu cần ít nhất {MIN_PASSWORD} ký tự.",
                           f"Passwords need at least {MIN_PASSWORD} characters.", {"password": "too short"})
    return _hasher.hash(password)


def verify_password(user: User, password: str) -> bool:
    if not user.password_hash:
        return False
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def upsert_organisation(session: Session, code: str, name_vi: str, name_en: str = "", kind: str = "department",
                        parent: str | None = None) -> Organisation:
    org = session.get(Organisation, code)
    if org is None:
        org = Organisation(code=code, name_vi=name_vi, name_en=name_en, kind=kind, parent_code=parent, active=True)
        session.add(org)
    else:
        org.name_vi, org.name_en, org.kind, org.parent_code = name_vi, name_en, kind, parent
    session.flush()
    return org


def create_user(session: Session, username: str, full_name: str, *, email: str = "", password: str | None = None,
                positions: list[tuple[str, str]] = (), is_admin: bool = False) -> User:
    username = (username or "").strip().lower()
    if not username or len(username) > 64:
        raise InvalidInput("Tên đăng nhập không hợp lệ.", "Invalid username.", {"username": "invalid"})
    if session.scalar(select(User.id).where(User.username == username)):
        raise InvalidInput(f"Tên đăng nhập '{username}' đã tồn tại.", f"Username '{username}' exists.",
                           {"username": "taken"})
    user = User(username=username, full_name=full_name, email=email, is_admin=is_admin, active=True,
                password_hash=hash_password(password) if password else None)
    session.add(user)
    session.flush()
    for org_code, role in positions:
        add_position(session, user, org_code, role)
    return user


def add_position(session: Session, user: User, org_code: str, role: str) -> None:
    if session.get(Organisation, org_code) is None:
        raise NotFound(f"Không có đơn vị '{org_code}'.", f"Unknown organisation '{org_code}'.", {"org": org_code})
    if role not in {r.value for r in Role}:
        raise InvalidInput(f"Vai trò '{role}' không hợp lệ.", f"Invalid role '{role}'.", {"role": role})
    exists = session.scalar(select(Position.id).where(
        Position.user_id == user.id, Position.org_code == org_code, Position.role == role))
    if not exists:
        session.add(Position(user_id=user.id, org_code=org_code, role=role))
        session.flush()
        session.expire(user, ["positions"])


def add_substitute(session: Session, user_id: int, substitute_id: int, starts_on: date, ends_on: date) -> Substitute:
    if ends_on < starts_on:
        raise InvalidInput("Ngày kết thúc phải sau ngày bắt đầu.", "The end date must follow the start date.",
                           {"ends_on": "before start"})
    if user_id == substitute_id:
        raise InvalidInput("Không thể tự xử lý thay chính mình.", "A user cannot substitute for themselves.")
    sub = Substitute(user_id=user_id, substitute_id=substitute_id, starts_on=starts_on, ends_on=ends_on)
    session.add(sub)
    session.flush()
    return sub


def user_by_username(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == (username or "").strip().lower()))


def load_organisations(session: Session, path: Path) -> int:
    """Idempotent: parents first, then every row updated in place."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    pending = list(rows)
    done: set[str] = {o for o in session.scalars(select(Organisation.code))}
    for _ in range(len(rows) + 1):
        later = []
        for row in pending:
            if row.get("parent") and row["parent"] not in done and row["parent"] != row["code"]:
                later.append(row)
                continue
            upsert_organisation(session, row["code"], row["name_vi"], row.get("name_en", ""),
                                row.get("kind", "department"),
                                row.get("parent"))
            done.add(row["code"])
        pending = later
        if not pending:
            break
    return len(rows)


def load_users(session: Session, path: Path) -> int:
    spec = json.loads(path.read_text(encoding="utf-8"))
    created = 0
    password_hash = None
    for row in spec["users"]:
        if user_by_username(session, row["username"]) is not None:
            continue
        password_hash = password_hash or hash_password(spec["password"])
        user = create_user(session, row["username"], row["full_name"], email=row.get("email", ""),
                           positions=[tuple(p) for p in row.get("positions", [])], is_admin=row.get("is_admin", False))
        user.password_hash = password_hash
        created += 1
    return created


def merge_organisation(session: Session, source: str, target: str, *, actor_id: int | None, at) -> dict:
    """Merge `source` into `target` in one audited operation (as the 2025 reorganisation did).

    People keep their roles in the target; open tasks and running cases move there; the
    source stays in the directory, inactive and pointing at its successor, so history still
    shows where work was done and rules naming it route to the successor.
    """
    from sqlalchemy import update

    from engine.audit import Action, record
    from engine.models import HumanTask, Instance, TaskState

    if source == target:
        raise InvalidInput("Không thể sáp nhập một đơn vị vào chính nó.", "Cannot merge an organisation into itself.")
    src, dst = session.get(Organisation, source), session.get(Organisation, target)
    if src is None or dst is None:
        missing = source if src is None else target
        raise NotFound(f"Không có đơn vị '{missing}'.", f"Unknown organisation '{missing}'.", {"org": missing})
    if src.merged_into:
        raise InvalidInput(f"Đơn vị '{source}' đã được sáp nhập vào '{src.merged_into}'.",
                           f"'{source}' was already merged into '{src.merged_into}'.")
    if dst.merged_into or not dst.active:
        raise InvalidInput(f"Đơn vị nhận '{target}' không còn hoạt động.", f"Target '{target}' is not active.")
    moved_positions = 0
    for pos in session.scalars(select(Position).where(Position.org_code == source)).all():
        exists = session.scalar(select(Position.id).where(
            Position.user_id == pos.user_id, Position.org_code == target, Position.role == pos.role))
        if exists:
            session.delete(pos)
        else:
            pos.org_code = target
        moved_positions += 1
    tasks = session.execute(update(HumanTask).where(
        HumanTask.org_code == source, HumanTask.state == TaskState.OPEN.value).values(org_code=target)).rowcount
    cases = session.execute(update(Instance).where(
        Instance.owner_org == source, Instance.status.in_(("running", "suspended"))).values(owner_org=target)).rowcount
    for child in session.scalars(select(Organisation).where(Organisation.parent_code == source)):
        child.parent_code = target
    src.merged_into, src.active = target, False
    session.flush()
    summary = {"source": source, "target": target, "positions": moved_positions, "open_tasks": tasks, "cases": cases}
    record(session, Action.ORGANISATION_MERGED, at, actor_id=actor_id, **summary)
    return summary
