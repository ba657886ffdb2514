"""Quản trị hệ thống (administrators only): people and positions, organisations, substitutes.

The engine's directory functions do the work; the few reads below are plain listings of the
directory tables for these pages.
"""

from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, or_, select

from engine import directory, queries
from engine.errors import EngineError, InvalidInput, NotFound
from engine.models import HumanTask, Organisation, Position, Substitute, TaskState, Timer, User
from webui import request_db
from webui.views import admin_required, catalogue, engine, formats

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _me() -> int:
    return int(current_user.get_id())


def _done(message: str, endpoint: str, **values):
    flash(message, "success")
    return redirect(url_for(endpoint, **values))


def _failed(exc: EngineError, endpoint: str, **values):
    detail = "; ".join(formats.bilingual(str(v)) for v in exc.details.values() if isinstance(v, str))
    flash(formats.engine_message(exc) + (f" ({detail})" if detail else ""), "error")
    return redirect(url_for(endpoint, **values))


@bp.get("/")
@admin_required
def index():
    from engine import outbox

    eng = engine()
    with request_db.read() as s:
        counts = {
            "users": s.scalar(select(func.count()).select_from(User)),
            "organisations": s.scalar(select(func.count()).select_from(Organisation).where(
                Organisation.active.is_(True))),
            "substitutes": s.scalar(select(func.count()).select_from(Substitute).where(
                Substitute.ends_on >= eng.today())),
            "failed_timers": s.scalar(select(func.count()).select_from(Timer).where(Timer.state == "failed")),
            "open_tasks": s.scalar(select(func.count()).select_from(HumanTask).where(
                HumanTask.state == TaskState.OPEN.value)),
        }
    counts["failed_mail"] = len(outbox.list_messages(eng.db, "failed", limit=1000))
    counts["pending_mail"] = outbox.pending_count(eng.db)
    return render_template("admin/index.html", counts=counts)


# ------------------------------------------------------------------ users
def _organisations(session, active_only: bool = True) -> list[Organisation]:
    query = select(Organisation).order_by(Organisation.name_vi)
    if active_only:
        query = query.where(Organisation.active.is_(True))
    return list(session.scalars(query))


@bp.get("/users")
@admin_required
def users():
    search = (request.args.get("q") or "").strip()[:100]
    with request_db.read() as s:
        query = select(User).order_by(User.username).limit(500)
        if search:
            like = f"%{search.lower()}%"
            query = query.where(or_(func.lower(User.username).like(like), func.lower(User.full_name).like(like)))
        people = list(s.scalars(query))
        positions = s.execute(select(Position.user_id, Position.org_code, Position.role)
                              .where(Position.user_id.in_([u.id for u in people]))).all()
        orgs = {o.code: o for o in _organisations(s, active_only=False)}
        by_user: dict[int, list] = {}
        for p in positions:
            org = orgs.get(p.org_code)
            by_user.setdefault(p.user_id, []).append(
                (formats.org_name({"code": p.org_code, "name_vi": org.name_vi, "name_en": org.name_en})
                 if org else p.org_code, catalogue.label(catalogue.ROLES, p.role)))
        rows = [{"id": u.id, "username": u.username, "full_name": u.full_name, "email": u.email,
                 "is_admin": u.is_admin, "active": u.active, "positions": by_user.get(u.id, [])} for u in people]
        org_list = [{"code": o.code, "name": formats.org_name({"name_vi": o.name_vi, "name_en": o.name_en})}
                    for o in orgs.values() if o.active]
    return render_template("admin/users.html", users=rows, search=search, organisations=org_list,
                           roles=catalogue.ROLES)


@bp.post("/users")
@admin_required
def create_user():
    form = request.form
    position = (form.get("org_code"), form.get("role")) if form.get("org_code") and form.get("role") else None
    try:
        with engine().db.write() as s:
            user = directory.create_user(
                s, form.get("username", ""), (form.get("full_name") or "").strip() or form.get("username", ""),
                email=(form.get("email") or "").strip(), password=form.get("password") or None,
                positions=[position] if position else [], is_admin=form.get("is_admin") == "1",
                actor_id=_me(), at=engine().now())
            user_id = user.id
    except EngineError as exc:
        return _failed(exc, "admin.users")
    return _done(_("Đã tạo người dùng."), "admin.user", user_id=user_id)


@bp.get("/users/<int:user_id>")
@admin_required
def user(user_id: int):
    with request_db.read() as s:
        person = s.get(User, user_id)
        if person is None:
            raise NotFound("Không tìm thấy người dùng.", "User not found.")
        orgs = {o.code: o for o in _organisations(s, active_only=False)}
        positions = [{"id": p.id, "org": orgs.get(p.org_code), "org_code": p.org_code,
                      "role": catalogue.label(catalogue.ROLES, p.role)}
                     for p in s.scalars(select(Position).where(Position.user_id == user_id).order_by(Position.id))]
        org_list = [o for o in orgs.values() if o.active]
    return render_template("admin/user.html", person=person, positions=positions, organisations=org_list,
                           roles=catalogue.ROLES)


@bp.post("/users/<int:user_id>/positions")
@admin_required
def add_position(user_id: int):
    try:
        with engine().db.write() as s:
            person = s.get(User, user_id)
            if person is None:
                raise NotFound("Không tìm thấy người dùng.", "User not found.")
            directory.add_position(s, person, request.form.get("org_code", ""), request.form.get("role", ""),
                                   actor_id=_me(), at=engine().now())
    except EngineError as exc:
        return _failed(exc, "admin.user", user_id=user_id)
    return _done(_("Đã thêm chức vụ."), "admin.user", user_id=user_id)


@bp.post("/users/<int:user_id>/positions/<int:position_id>/delete")
@admin_required
def remove_position(user_id: int, position_id: int):
    with engine().db.write() as s:
        directory.remove_position(s, user_id, position_id, actor_id=_me(), at=engine().now())
    return _done(_("Đã bỏ chức vụ."), "admin.user", user_id=user_id)


@bp.post("/users/<int:user_id>/password")
@admin_required
def set_password(user_id: int):
    try:
        new_hash = directory.hash_password(request.form.get("password") or "")
    except InvalidInput as exc:
        return _failed(exc, "admin.user", user_id=user_id)
    with engine().db.write() as s:
        directory.set_password_hash(s, user_id, new_hash, actor_id=_me(), at=engine().now())
    return _done(_("Đã đặt mật khẩu mới."), "admin.user", user_id=user_id)


@bp.post("/users/<int:user_id>/<any(activate, deactivate, grant_admin, revoke_admin):change>")
@admin_required
def change_user(user_id: int, change: str):
    if user_id == _me() and change in ("deactivate", "revoke_admin"):
        flash(_("Không thể tự khóa hoặc tự bỏ quyền quản trị của chính mình."), "error")
        return redirect(url_for("admin.user", user_id=user_id))
    with engine().db.write() as s:
        if change in ("activate", "deactivate"):
            directory.update_user(s, user_id, active=change == "activate", actor_id=_me(), at=engine().now())
        else:
            directory.update_user(s, user_id, is_admin=change == "grant_admin", actor_id=_me(), at=engine().now())
    return _done(_("Đã cập nhật."), "admin.user", user_id=user_id)


# ------------------------------------------------------------------ organisations
@bp.get("/organisations")
@admin_required
def organisations():
    with request_db.read() as s:
        orgs = _organisations(s, active_only=False)
        members = dict(s.execute(select(Position.org_code, func.count(func.distinct(Position.user_id)))
                                 .group_by(Position.org_code)).all())
        open_tasks = dict(s.execute(select(HumanTask.org_code, func.count()).where(
            HumanTask.state == TaskState.OPEN.value).group_by(HumanTask.org_code)).all())
        names = {o.code: o.name_vi for o in orgs}
        rows = [{"code": o.code, "name_vi": o.name_vi, "name_en": o.name_en, "kind": o.kind,
                 "parent": names.get(o.parent_code, o.parent_code), "merged_into": o.merged_into,
                 "merged_name": names.get(o.merged_into), "active": o.active,
                 "members": members.get(o.code, 0), "open_tasks": open_tasks.get(o.code, 0)} for o in orgs]
    return render_template("admin/organisations.html", organisations=rows,
                           active=[r for r in rows if r["active"]])


@bp.post("/organisations/merge")
@admin_required
def merge():
    eng = engine()
    source, target = request.form.get("source", ""), request.form.get("target", "")
    try:
        with eng.db.write() as s:
            summary = directory.merge_organisation(s, source, target, actor_id=_me(), at=eng.now())
    except EngineError as exc:
        return _failed(exc, "admin.organisations")
    return _done(_("Đã sáp nhập %(source)s vào %(target)s: %(positions)s chức vụ, %(tasks)s việc đang mở, "
                   "%(cases)s hồ sơ được chuyển.", source=source, target=target, positions=summary["positions"],
                   tasks=summary["open_tasks"], cases=summary["cases"]), "admin.organisations")


# ------------------------------------------------------------------ substitutes
def _parse_day(name: str) -> date:
    value = formats.parse_date(request.form.get(name, ""))
    if value is None:
        raise InvalidInput("Ngày không hợp lệ, nhập theo dạng dd/mm/yyyy.", "Invalid date, use dd/mm/yyyy.",
                           {name: "invalid"})
    return date.fromisoformat(value)


@bp.get("/substitutes")
@admin_required
def substitutes():
    eng = engine()
    show_all = request.args.get("all") == "1"
    with request_db.read() as s:
        query = select(Substitute).order_by(Substitute.starts_on.desc()).limit(500)
        if not show_all:
            query = query.where(Substitute.ends_on >= eng.today())
        rows = list(s.scalars(query))
        people = {u.id: u for u in s.scalars(select(User).where(User.active.is_(True)).order_by(User.full_name))}
        named = {u.id: u.full_name for u in s.scalars(select(User).where(User.id.in_(
            [r.user_id for r in rows] + [r.substitute_id for r in rows])))}
        items = [{"id": r.id, "user": named.get(r.user_id, r.user_id), "substitute": named.get(r.substitute_id),
                  "starts_on": r.starts_on, "ends_on": r.ends_on, "current": r.starts_on <= eng.today() <= r.ends_on}
                 for r in rows]
        choices = [{"id": u.id, "label": f"{u.full_name} ({u.username})"} for u in people.values()]
    return render_template("admin/substitutes.html", items=items, people=choices, show_all=show_all)


@bp.post("/substitutes")
@admin_required
def add_substitute():
    try:
        user_id = int(request.form.get("user_id", "0") or 0)
        substitute_id = int(request.form.get("substitute_id", "0") or 0)
        starts, ends = _parse_day("starts_on"), _parse_day("ends_on")
        with engine().db.write() as s:
            if s.get(User, user_id) is None or s.get(User, substitute_id) is None:
                raise InvalidInput("Vui lòng chọn người vắng mặt và người xử lý thay.",
                                   "Choose the absent person and the substitute.")
            directory.add_substitute(s, user_id, substitute_id, starts, ends, actor_id=_me(), at=engine().now())
    except ValueError:
        flash(_("Vui lòng chọn người vắng mặt và người xử lý thay."), "error")
        return redirect(url_for("admin.substitutes"))
    except EngineError as exc:
        return _failed(exc, "admin.substitutes")
    return _done(_("Đã thêm người xử lý thay."), "admin.substitutes")


@bp.post("/substitutes/<int:substitute_row>/delete")
@admin_required
def remove_substitute(substitute_row: int):
    with engine().db.write() as s:
        directory.remove_substitute(s, substitute_row, actor_id=_me(), at=engine().now())
    return _done(_("Đã xóa."), "admin.substitutes")


# ------------------------------------------------------------------ administration log
LOG_PER_PAGE = 50
LOG_ACTIONS = {
    "user_created": _l("Tạo người dùng"),
    "user_updated": _l("Cập nhật tài khoản"),
    "position_added": _l("Thêm chức vụ"),
    "position_removed": _l("Bỏ chức vụ"),
    "substitute_added": _l("Thêm người xử lý thay"),
    "substitute_removed": _l("Xóa người xử lý thay"),
    "password_reset": _l("Đặt lại mật khẩu"),
    "password_changed": _l("Tự đổi mật khẩu"),
    "organisation_merged": _l("Sáp nhập đơn vị"),
    "calendar_changed": _l("Thay đổi lịch làm việc"),
    "definition_deployed": _l("Triển khai quy trình"),
}
_CHANGES = {
    ("active", True): _l("mở khóa tài khoản"),
    ("active", False): _l("khóa tài khoản"),
    ("is_admin", True): _l("cấp quyền quản trị"),
    ("is_admin", False): _l("bỏ quyền quản trị"),
}
_DAY_KINDS = {"off": _l("ngày nghỉ"), "work": _l("ngày làm bù"), None: _l("bỏ ngày đã đặt")}


def _org_label(orgs: dict, code) -> str:
    org = orgs.get(code)
    return formats.org_name({"code": code, "name_vi": org.name_vi, "name_en": org.name_en}) if org else str(code or "")


def _describe(action: str, d: dict, orgs: dict) -> str:
    """What an administration event changed, in one line of the reader's language."""
    role = catalogue.label(catalogue.ROLES, d.get("role"))
    if action == "user_created":
        text = f"{d.get('username', '')} ({d.get('full_name', '')})"
        held = [f"{catalogue.label(catalogue.ROLES, r)} — {_org_label(orgs, o)}" for o, r in d.get("positions") or []]
        if held:
            text += "; " + ", ".join(held)
        if d.get("is_admin"):
            text += "; " + _("quản trị hệ thống")
        return text
    if action == "user_updated":
        changes = [str(_CHANGES.get((k, v), f"{k}: {v}")) for k, v in (d.get("changes") or {}).items()]
        return f"{d.get('username', '')}: {', '.join(changes)}"
    if action in ("position_added", "position_removed"):
        return f"{d.get('username', '')}: {role} — {_org_label(orgs, d.get('org'))}"
    if action in ("substitute_added", "substitute_removed"):
        return _("%(sub)s xử lý thay %(user)s từ %(start)s đến %(end)s", sub=d.get("substitute_username") or "",
                 user=d.get("username") or "", start=formats.local_date(d.get("starts_on")),
                 end=formats.local_date(d.get("ends_on")))
    if action in ("password_reset", "password_changed"):
        return str(d.get("username", ""))
    if action == "organisation_merged":
        return f"{_org_label(orgs, d.get('source'))} → {_org_label(orgs, d.get('target'))}"
    if action == "calendar_changed":
        text = f"{formats.local_date(d.get('day'))}: {_DAY_KINDS.get(d.get('kind'), d.get('kind'))}"
        return text + (f" ({d['note']})" if d.get("note") else "")
    if action == "definition_deployed":
        return _("%(key)s, phiên bản %(version)s", key=d.get("process_key", ""), version=d.get("version", ""))
    return ", ".join(f"{k}: {v}" for k, v in d.items())


@bp.get("/log")
@admin_required
def log():
    """Nhật ký quản trị: every change to people, positions, substitutes, organisations and the calendar."""
    page = request.args.get("page", "1")
    page = max(1, int(page)) if page.isdigit() and len(page) < 7 else 1
    with request_db.read() as s:
        events, total = directory.admin_events(s, offset=(page - 1) * LOG_PER_PAGE, limit=LOG_PER_PAGE)
        people = queries.user_refs(s, [e.actor_id for e in events])
        orgs = {o.code: o for o in _organisations(s, active_only=False)}
        items = [{"at": e.at, "action": catalogue.label(LOG_ACTIONS, e.action), "kind": e.action,
                  "actor": people.get(e.actor_id), "what": _describe(e.action, e.details or {}, orgs)}
                 for e in events]
    pages = max(1, (total + LOG_PER_PAGE - 1) // LOG_PER_PAGE)
    return render_template("admin/log.html", items=items, page=min(page, pages), pages=pages, total=total)

