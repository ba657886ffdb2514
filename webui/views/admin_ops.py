"""Quản trị hệ thống, operations: process definitions (upload, versions), the mail log, failed timers and the
working calendar (public holidays, announced days off and make-up working days)."""

from __future__ import annotations

from datetime import date
from pathlib import PurePosixPath

import holidays
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from engine import outbox, queries, workdays
from engine.definitions import MAX_FILES, Bundle
from engine.errors import EngineError, InvalidInput, NotFound
from engine.models import CalendarDay, Definition, Instance, OutboxMessage, Timer
from engine.store import TimerStore
from webui import request_db
from webui.views import admin_required, catalogue, engine, formats

bp = Blueprint("admin_ops", __name__, url_prefix="/admin")


def _me() -> int:
    return int(current_user.get_id())


# ------------------------------------------------------------------ definitions
def _definitions_page(error: EngineError | None = None, status: int = 200):
    with request_db.read() as s:
        items = queries.definition_list(s)
        cases = s.execute(select(Instance.definition_id, Instance.status, func.count())
                          .group_by(Instance.definition_id, Instance.status)).all()
    per_definition: dict[int, dict[str, int]] = {}
    for definition_id, status_name, count in cases:
        per_definition.setdefault(definition_id, {})[status_name] = count
    for item in items:
        item["cases"] = per_definition.get(item["id"], {})
        item["title"] = item["title_en"] if formats.locale_code() == "en" and item["title_en"] else item["title_vi"]
    details = []
    if error is not None:
        details = [f"{k}: {formats.bilingual(str(v))}" for k, v in error.details.items() if v not in (None, "")]
    return render_template("admin/definitions.html", items=items, statuses=catalogue.STATUSES,
                           error=formats.engine_message(error) if error else None, error_details=details), status


@bp.get("/definitions")
@admin_required
def definitions():
    return _definitions_page()


@bp.post("/definitions")
@admin_required
def deploy():
    eng = engine()
    max_bytes = eng.settings.max_upload_bytes
    uploads = [f for f in request.files.getlist("files") if f and f.filename]
    try:
        if not uploads:
            raise InvalidInput("Vui lòng chọn ít nhất một tệp (.bpmn, .json).", "Choose at least one file.")
        if len(uploads) > MAX_FILES:
            raise InvalidInput(f"Quá nhiều tệp (tối đa {MAX_FILES}).", f"Too many files (at most {MAX_FILES}).")
        names = [PurePosixPath(u.filename.replace("\\", "/")).name for u in uploads]
        bpmn = [n for n in names if n.lower().endswith((".bpmn", ".bpmn20.xml"))]
        key = (request.form.get("key") or "").strip() or PurePosixPath(bpmn[0] if bpmn else names[0]).stem
        bundle = Bundle(key=key.split(".")[0])
        for name, upload in zip(names, uploads, strict=True):
            bundle.add_file(name, upload.read(max_bytes + 1), max_bytes)
        result = eng.deploy_bundle(bundle, _me())
    except EngineError as exc:
        return _definitions_page(exc, exc.status if exc.status in (400, 413, 422) else 400)
    if result.created:
        flash(_("Đã triển khai quy trình %(key)s, phiên bản %(version)s.", key=result.process_key,
                version=result.version), "success")
    else:
        flash(_("Nội dung trùng với phiên bản %(version)s đã có: không có gì thay đổi.", version=result.version),
              "info")
    return redirect(url_for("admin_ops.definitions"))


@bp.get("/definitions/<int:definition_id>")
@admin_required
def definition(definition_id: int):
    with request_db.read() as s:
        row = s.get(Definition, definition_id)
        if row is None:
            raise NotFound("Không tìm thấy phiên bản quy trình.", "Process version not found.")
        cases = s.execute(select(Instance.id, Instance.title, Instance.status, Instance.created_at)
                          .where(Instance.definition_id == definition_id)
                          .order_by(Instance.created_at.desc()).limit(500)).all()
        info = {"id": row.id, "process": row.process_key, "version": row.version, "title": row.title_vi,
                "title_en": row.title_en, "deployed_at": row.deployed_at, "dialect": row.dialect,
                "files": sorted(row.files or {}), "forms": sorted(row.forms or {}), "hash": row.content_hash}
    return render_template("admin/definition.html", info=info, cases=cases, statuses=catalogue.STATUSES)


# ------------------------------------------------------------------ mail log
@bp.get("/outbox")
@admin_required
def mail_log():
    state = request.args.get("state") if request.args.get("state") in outbox.STATES else None
    messages = outbox.list_messages(engine().db, state, limit=200)
    return render_template("admin/outbox.html", messages=messages, state=state, states=outbox.STATES)


@bp.get("/outbox/<int:outbox_id>")
@admin_required
def mail(outbox_id: int):
    eng = engine()
    with request_db.read() as s:
        row = s.get(OutboxMessage, outbox_id)
        if row is None:
            raise NotFound("Không tìm thấy thư.", "Email not found.")
        message = {"id": row.id, "kind": row.kind, "state": row.state, "recipients": list(row.recipients),
                   "subject": row.subject, "message_id": row.message_id, "instance_id": row.instance_id,
                   "next_attempt_at": row.next_attempt_at, "body_text": row.body_text}
    return render_template("admin/mail.html", message=message, attempts=outbox.attempt_log(eng.db, outbox_id))


@bp.post("/outbox/retry")
@admin_required
def retry_mail():
    ids = [int(i) for i in request.form.getlist("ids") if i.isdigit()]
    count = outbox.retry(engine().db, ids, engine().clock)
    flash(_("Đã đưa %(n)s thư vào hàng đợi gửi lại.", n=count), "success")
    return redirect(url_for("admin_ops.mail_log", state="failed"))


# ------------------------------------------------------------------ timers
@bp.get("/timers")
@admin_required
def timers():
    with request_db.read() as s:
        rows = list(s.scalars(select(Timer).where(Timer.state == "failed").order_by(Timer.due_at.desc()).limit(500)))
        items = [{"id": t.id, "kind": t.kind, "instance_id": t.instance_id, "task_id": t.task_id, "level": t.level,
                  "due_at": t.due_at, "attempts": t.attempts, "last_error": t.last_error} for t in rows]
    return render_template("admin/timers.html", items=items)


@bp.post("/timers/retry")
@admin_required
def retry_timers():
    eng = engine()
    ids = [int(i) for i in request.form.getlist("ids") if i.isdigit()]
    with eng.db.write() as s:
        count = TimerStore(s).retry(ids, eng.now())
    flash(_("Đã đưa %(n)s hẹn giờ vào hàng đợi chạy lại.", n=count), "success")
    return redirect(url_for("admin_ops.timers"))


# ------------------------------------------------------------------ working calendar
FIRST_YEAR, LAST_YEAR = 2000, 2100
MAX_NOTE = 255
DAY_KINDS = ("off", "work")


def _public_holidays(year: int) -> list[dict]:
    """The year's public holidays and the swaps the `holidays` package and the engine already know (read-only)."""
    language = "en_US" if formats.locale_code() == "en" else "vi"
    try:
        pkg = holidays.country_holidays("VN", years=year, language=language)
    except (NotImplementedError, ValueError, KeyError):  # a release without that language
        pkg = holidays.country_holidays("VN", years=year)
    rows = [{"day": d, "name": str(name), "kind": "off"} for d, name in pkg.items() if d.year == year]
    rows += [{"day": d, "name": name if language == "vi" else _("Ngày nghỉ bù theo thông báo của Chính phủ"),
              "kind": "off"} for d, name in workdays.ANNOUNCED_DAYS_OFF.items() if d.year == year]
    makeup = {d for d in pkg.weekend_workdays if d.year == year} | {
        d for d in workdays.ANNOUNCED_MAKEUP_WORKDAYS if d.year == year}
    rows += [{"day": d, "name": _("Ngày làm bù"), "kind": "work"} for d in makeup]
    return sorted(rows, key=lambda r: r["day"])


def _calendar_page(year: int, errors: dict | None = None, form: dict | None = None, status: int = 200):
    with request_db.read() as s:
        rows = list(s.scalars(select(CalendarDay).where(CalendarDay.day >= date(year, 1, 1),
                                                        CalendarDay.day <= date(year, 12, 31))
                              .order_by(CalendarDay.day)))
        people = queries.user_refs(s, [r.updated_by for r in rows])
        configured = [{"day": r.day, "iso": r.day.isoformat(), "kind": r.kind, "note": r.note,
                       "updated_at": r.updated_at, "updated_by": people.get(r.updated_by)} for r in rows]
    return render_template("admin/calendar.html", year=year, public=_public_holidays(year), configured=configured,
                           errors=errors or {}, form=form or {}, first_year=FIRST_YEAR, last_year=LAST_YEAR), status


@bp.get("/calendar")
@admin_required
def calendar():
    """Lịch làm việc: the year's holidays, and the days off and make-up working days the administrator set."""
    raw = request.args.get("year", "")
    year = int(raw) if raw.isdigit() and FIRST_YEAR <= int(raw) <= LAST_YEAR else engine().today().year
    return _calendar_page(year)


@bp.post("/calendar")
@admin_required
def add_calendar_day():
    eng = engine()
    form = {"day": (request.form.get("day") or "").strip()[:20], "kind": request.form.get("kind") or "",
            "note": (request.form.get("note") or "").strip()}
    errors = {}
    parsed = formats.parse_date(form["day"]) if form["day"] else None
    if not form["day"]:
        errors["day"] = _("Vui lòng nhập ngày.")
    elif parsed is None:
        errors["day"] = _("Ngày không hợp lệ, nhập theo dạng dd/mm/yyyy.")
    elif not FIRST_YEAR <= int(parsed[:4]) <= LAST_YEAR:
        errors["day"] = _("Năm phải từ %(first)s đến %(last)s.", first=FIRST_YEAR, last=LAST_YEAR)
    if form["kind"] not in DAY_KINDS:
        errors["kind"] = _("Vui lòng chọn loại ngày: nghỉ bù hoặc làm bù.")
    if len(form["note"]) > MAX_NOTE:
        errors["note"] = _("Ghi chú tối đa %(n)s ký tự.", n=MAX_NOTE)
    if errors:
        year = int(parsed[:4]) if parsed and "day" not in errors else eng.today().year
        return _calendar_page(year, errors, form, 400)
    day = date.fromisoformat(parsed)
    eng.set_calendar_day(_me(), day, form["kind"], form["note"])
    flash(_("Đã lưu ngày %(day)s.", day=formats.local_date(day)), "success")
    return redirect(url_for("admin_ops.calendar", year=day.year))


@bp.post("/calendar/<day>/delete")
@admin_required
def remove_calendar_day(day: str):
    eng = engine()
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise NotFound("Không tìm thấy ngày này trong lịch.", "This day is not in the calendar.") from None
    with request_db.read() as s:
        if s.get(CalendarDay, parsed) is None:
            raise NotFound("Không tìm thấy ngày này trong lịch.", "This day is not in the calendar.")
    eng.set_calendar_day(_me(), parsed, None)
    flash(_("Đã bỏ ngày %(day)s khỏi lịch.", day=formats.local_date(parsed)), "success")
    return redirect(url_for("admin_ops.calendar", year=parsed.year))

