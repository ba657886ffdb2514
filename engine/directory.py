"""The org directory and people: organisations, users, positions, substitutes, and seeding from data.

Every change an administrator makes here (from the admin pages or the CLI) writes an audit
event with the acting administrator and what changed, never a password or its hash; seeding
from the bundled data files does not.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import Action, record
from engine.errors import InvalidInput, NotFound
from engine.models import AuditEvent, Organisation, Position, Role, Substitute, User

_hasher = PasswordHasher()
MIN_PASSWORD = 8

# What the administration log ("Nhật ký quản trị") lists: changes to people, the directory and the calendar.
ADMIN_ACTIONS = (
    Action.USER_CREATED, Action.USER_UPDATED, Action.POSITION_ADDED, Action.POSITION_REMOVED,
    Action.SUBSTITUTE_ADDED, Action.SUBSTITUTE_REMOVED, Action.PASSWORD_RESET, Action.PASSWORD_CHANGED,
    Action.ORGANISATION_MERGED, Action.CALENDAR_CHANGED, Action.DEFINITION_DEPLOYED,
)


def _when(at: datetime | None) -> datetime:
    """The time of an audited change, always from the caller's (the engine's) clock: a wall-clock
    stamp would sort a test's or a replayed change among the wrong days."""
    if at is None or at.tzinfo is None:
        raise ValueError("an audited directory change needs `at`, an aware time from the engine's clock")
    return at


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
                positions: list[tuple[str, str]] = (), is_admin: bool = False, actor_id: int | None = None,
                at: datetime | None = None, audit: bool = True) -> User:
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
        _add_position(session, user, org_code, role)
    if audit:
        record(session, Action.USER_CREATED, _when(at), actor_id=actor_id, user_id=user.id, username=username,
               full_name=full_name, email=email, is_admin=bool(is_admin),
               positions=[[org, role] for org, role in positions], password_set=bool(password))
    return user


def update_user(session: Session, user_id: int, *, active: bool | None = None, is_admin: bool | None = None,
                actor_id: int | None = None, at: datetime | None = None) -> User:
    """Lock or unlock an account, grant or revoke administration; only real changes are audited."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("Không tìm thấy người dùng.", "User not found.", {"user": user_id})
    changes = {}
    if active is not None and user.active != active:
        user.active = changes["active"] = bool(active)
    if is_admin is not None and user.is_admin != is_admin:
        user.is_admin = changes["is_admin"] = bool(is_admin)
    if changes:
        session.flush()
        record(session, Action.USER_UPDATED, _when(at), actor_id=actor_id, user_id=user.id,
               username=user.username, changes=changes)
    return user


def set_password_hash(session: Session, user_id: int, password_hash: str, *, actor_id: int | None = None,
                      at: datetime | None = None) -> User:
    """Store a new password hash (made with `hash_password` outside the write transaction: argon2 is slow).

    Audited as a reset by an administrator, or as a change when people change their own.
    """
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("Không tìm thấy người dùng.", "User not found.", {"user": user_id})
    user.password_hash = password_hash
    action = Action.PASSWORD_CHANGED if actor_id == user_id else Action.PASSWORD_RESET
    record(session, action, _when(at), actor_id=actor_id, user_id=user.id, username=user.username)
    return user


def _add_position(session: Session, user: User, org_code: str, role: str) -> bool:
    if session.get(Organisation, org_code) is None:
        raise NotFound(f"Không có đơn vị '{org_code}'.", f"Unknown organisation '{org_code}'.", {"org": org_code})
    if role not in {r.value for r in Role}:
        raise InvalidInput(f"Vai trò '{role}' không hợp lệ.", f"Invalid role '{role}'.", {"role": role})
    exists = session.scalar(select(Position.id).where(
        Position.user_id == user.id, Position.org_code == org_code, Position.role == role))
    if exists:
        return False
    session.add(Position(user_id=user.id, org_code=org_code, role=role))
    session.flush()
    session.expire(user, ["positions"])
    return True


def add_position(session: Session, user: User, org_code: str, role: str, *, actor_id: int | None = None,
                 at: datetime | None = None) -> None:
    if _add_position(session, user, org_code, role):
        record(session, Action.POSITION_ADDED, _when(at), actor_id=actor_id, user_id=user.id,
               username=user.username, org=org_code, role=role)


def remove_position(session: Session, user_id: int, position_id: int, *, actor_id: int | None = None,
                    at: datetime | None = None) -> None:
    row = session.get(Position, position_id)
    if row is None or row.user_id != user_id:
        raise NotFound("Không tìm thấy chức vụ.", "Position not found.", {"position": position_id})
    username = session.scalar(select(User.username).where(User.id == user_id))
    org_code, role = row.org_code, row.role
    session.delete(row)
    session.flush()
    record(session, Action.POSITION_REMOVED, _when(at), actor_id=actor_id, user_id=user_id, username=username,
           org=org_code, role=role)


def add_substitute(session: Session, user_id: int, substitute_id: int, starts_on: date, ends_on: date, *,
                   actor_id: int | None = None, at: datetime | None = None) -> Substitute:
    if ends_on < starts_on:
        raise InvalidInput("Ngày kết thúc phải sau ngày bắt đầu.", "The end date must follow the start date.",
                           {"ends_on": "before start"})
    if user_id == substitute_id:
        raise InvalidInput("Không thể tự xử lý thay chính mình.", "A user cannot substitute for themselves.")
    sub = Substitute(user_id=user_id, substitute_id=substitute_id, starts_on=starts_on, ends_on=ends_on)
    session.add(sub)
    session.flush()
    record(session, Action.SUBSTITUTE_ADDED, _when(at), actor_id=actor_id, **_substitute_details(session, sub))
    return sub


def remove_substitute(session: Session, substitute_row: int, *, actor_id: int | None = None,
                      at: datetime | None = None) -> None:
    sub = session.get(Substitute, substitute_row)
    if sub is None:
        raise NotFound("Không tìm thấy.", "Not found.", {"substitute": substitute_row})
    details = _substitute_details(session, sub)
    session.delete(sub)
    session.flush()
    record(session, Action.SUBSTITUTE_REMOVED, _when(at), actor_id=actor_id, **details)


def _substitute_details(session: Session, sub: Substitute) -> dict:
    names = dict(session.execute(select(User.id, User.username).where(
        User.id.in_((sub.user_id, sub.substitute_id)))).all())
    return {"substitute_row": sub.id, "user_id": sub.user_id, "username": names.get(sub.user_id),
            "substitute_id": sub.substitute_id, "substitute_username": names.get(sub.substitute_id),
            "starts_on": sub.starts_on.isoformat(), "ends_on": sub.ends_on.isoformat()}


def admin_events(session: Session, *, offset: int = 0, limit: int = 50) -> tuple[list[AuditEvent], int]:
    """A page of the administration log, newest first, and how many events it holds in all."""
    from sqlalchemy import func

    actions = [a.value for a in ADMIN_ACTIONS]
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action.in_(actions)))
    rows = list(session.scalars(select(AuditEvent).where(AuditEvent.action.in_(actions))
                                .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).offset(offset).limit(limit)))
    return rows, total


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
                           positions=[tuple(p) for p in row.get("positions", [])], is_admin=row.get("is_admin", False),
                           audit=False)
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
