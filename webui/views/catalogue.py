"""What the pages say about processes, steps and history events, in the reader's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.models import Definition, Position, User
from webui.views.formats import locale_code, title_text

ACTIONS = {
    "instance_started": _l("Khởi tạo hồ sơ"),
    "instance_completed": _l("Hồ sơ hoàn thành"),
    "instance_cancelled": _l("Hủy hồ sơ"),
    "instance_suspended": _l("Tạm dừng hồ sơ"),
    "instance_resumed": _l("Tiếp tục hồ sơ"),
    "instance_failed": _l("Hồ sơ gặp lỗi"),
    "task_created": _l("Chuyển đến bước"),
    "task_completed": _l("Hoàn thành bước"),
    "task_claimed": _l("Nhận xử lý"),
    "task_unclaimed": _l("Trả về đơn vị"),
    "task_returned": _l("Trả lại"),
    "task_reassigned": _l("Chuyển xử lý"),
    "task_cancelled": _l("Hủy bước"),
    "message_delivered": _l("Nhận thông điệp"),
    "signal_received": _l("Nhận tín hiệu"),
    "timer_fired": _l("Đến hạn hẹn giờ"),
    "timer_failed": _l("Hẹn giờ lỗi"),
    "task_reminded": _l("Nhắc việc"),
    "task_escalated": _l("Cảnh báo quá hạn"),
    "comment_added": _l("Ý kiến"),
    "organisation_merged": _l("Sáp nhập đơn vị"),
    "definition_deployed": _l("Triển khai quy trình"),
}

STATUSES = {
    "running": _l("Đang xử lý"),
    "suspended": _l("Tạm dừng"),
    "completed": _l("Hoàn thành"),
    "cancelled": _l("Đã hủy"),
    "error": _l("Lỗi"),
}

TASK_STATES = {
    "open": _l("Đang chờ xử lý"),
    "completed": _l("Đã hoàn thành"),
    "returned": _l("Đã trả lại"),
    "cancelled": _l("Đã hủy"),
}

ROLES = {
    "staff": _l("Chuyên viên"),
    "supervisor": _l("Lãnh đạo đơn vị"),
    "leader": _l("Lãnh đạo UBND tỉnh"),
}


def label(table: dict, key) -> str:
    value = table.get(key)
    return str(value) if value is not None else str(key or "")


def processes(session: Session) -> dict[str, dict]:
    """The latest version of each process: {key: {"title", "list_fields", "start", "definition_id", "version"}}."""
    latest = select(Definition.process_key, func.max(Definition.version).label("v")).group_by(
        Definition.process_key).subquery()
    rows = session.execute(
        select(Definition.id, Definition.process_key, Definition.version, Definition.title_vi, Definition.title_en,
               Definition.descriptor)
        .join(latest, (latest.c.process_key == Definition.process_key) & (latest.c.v == Definition.version))
        .order_by(Definition.title_vi)).all()
    lang = locale_code()
    out = {}
    for r in rows:
        descriptor = r.descriptor or {}
        out[r.process_key] = {
            "key": r.process_key, "definition_id": r.id, "version": r.version,
            "title": (r.title_en if lang == "en" and r.title_en else r.title_vi) or r.process_key,
            "list_fields": {k: title_text(v) for k, v in (descriptor.get("list_fields") or {}).items()},
            "start": descriptor.get("start") or {},
            "title_template": descriptor.get("title_template") or "",
        }
    return out


def case_title(stored: str | None, process: dict | None, business: dict | None) -> str:
    """The case's title from the latest descriptor's template and a task's business fields
    (engine.projections.display_title; the inbox search matches the same title)."""
    from engine.projections import display_title

    return display_title(stored, (process or {}).get("title_template"), business)


def business_lines(business: dict, list_fields: dict) -> list[tuple[str, object]]:
    """The business fields shown in lists, in the descriptor's order, with their labels."""
    if not business:
        return []
    keys = [k for k in list_fields if k in business] or list(business)
    return [(list_fields.get(k, k), business[k]) for k in keys if business.get(k) not in (None, "")]


def members(session: Session, org_code: str | None) -> list[dict]:
    """Active people holding any position in the organisation (for 'Chuyển xử lý')."""
    if not org_code:
        return []
    rows = session.execute(
        select(User.id, User.username, User.full_name, Position.role).join(Position, Position.user_id == User.id)
        .where(Position.org_code == org_code, User.active.is_(True)).order_by(User.full_name)).all()
    seen: dict[int, dict] = {}
    for r in rows:
        entry = seen.setdefault(r.id, {"id": r.id, "username": r.username, "full_name": r.full_name, "roles": []})
        entry["roles"].append(label(ROLES, r.role))
    return list(seen.values())
