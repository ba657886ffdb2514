"""Khởi tạo hồ sơ: the processes this user may start, and each one's start form."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from engine import forms, queries
from engine.errors import InvalidInput, NotFound
from engine.models import Definition, HumanTask, Position, TaskState
from webui import request_db
from webui.views import catalogue, engine, formats, schema_form

bp = Blueprint("start", __name__)


def _me() -> int:
    return int(current_user.get_id())


def _fitting_orgs(positions: list[tuple[str, str]], rule: dict) -> list[str]:
    """The user's organisations from which the descriptor's `start` rule lets them start the process."""
    fitting = [org for org, role in positions
               if (not rule.get("roles") or role in rule["roles"]) and (not rule.get("orgs") or org in rule["orgs"])]
    return sorted(set(fitting))


def _startable(session) -> tuple[list[dict], dict[str, dict]]:
    positions = [tuple(p) for p in session.execute(
        select(Position.org_code, Position.role).where(Position.user_id == _me())).all()]
    orgs = queries.org_refs(session, [p[0] for p in positions])
    out = []
    for proc in catalogue.processes(session).values():
        rule = proc["start"]
        fitting = _fitting_orgs(positions, rule) if rule else sorted({p[0] for p in positions})
        if fitting or current_user.is_admin:
            out.append({**proc, "orgs": [orgs[c] for c in fitting if c in orgs]})
    return out, orgs


def _start_form(session, proc: dict) -> dict | None:
    form_name = (proc["start"] or {}).get("form")
    if not form_name:
        return None
    definition = session.get(Definition, proc["definition_id"])
    return (definition.forms or {}).get(form_name)


@bp.get("/start")
@login_required
def index():
    with request_db.read() as s:
        startable, _orgs = _startable(s)
    return render_template("start/index.html", processes=startable)


def _render(key: str, *, data=None, errors=None, raw=None, extra_rows=None, message="", status=200):
    with request_db.read() as s:
        startable, _orgs = _startable(s)
        proc = next((p for p in startable if p["key"] == key), None)
        if proc is None:
            raise NotFound(f"Không có quy trình '{key}' mà bạn được khởi tạo.",
                           f"No process '{key}' that you may start.", {"process": key})
        schema = _start_form(s, proc)
    fields = schema_form.bind(schema, data or {}, errors, raw, extra_rows)
    return render_template("start/form.html", proc=proc, fields=fields, schema=schema,
                           form_errors=schema_form.unplaced_errors(fields, errors or {}), message=message,
                           row_placeholder=schema_form.ROW_PLACEHOLDER), status


@bp.get("/start/<key>")
@login_required
def form(key: str):
    return _render(key)


@bp.post("/start/<key>")
@login_required
def submit(key: str):
    eng = engine()
    with request_db.read() as s:
        startable, _orgs = _startable(s)
        proc = next((p for p in startable if p["key"] == key), None)
        if proc is None:
            raise NotFound(f"Không có quy trình '{key}' mà bạn được khởi tạo.",
                           f"No process '{key}' that you may start.", {"process": key})
        schema = _start_form(s, proc)
    parsed = schema_form.parse(schema, request.form)
    extra = schema_form.added_rows(request.form)
    if extra:
        return _render(key, data=parsed.data, raw=parsed.raw, extra_rows=extra)
    errors = dict(parsed.errors)
    if errors:
        try:
            forms.validate(schema, parsed.data)
        except InvalidInput as exc:
            errors = {**exc.details, **errors}
    owner = request.form.get("owner_org") or None
    if owner and owner not in {o["code"] for o in proc["orgs"]} and not current_user.is_admin:
        errors["owner_org"] = _("Bạn không thuộc đơn vị này.")
    instance_id = None
    if not errors:
        try:
            instance_id = eng.start_instance(_me(), key, parsed.data, owner_org=owner)
        except InvalidInput as exc:
            errors = dict(exc.details) if exc.details else {"/": formats.engine_message(exc)}
    if errors:
        errors = {k: formats.bilingual(str(v)) for k, v in errors.items()}
        return _render(key, data=parsed.data, errors=errors, raw=parsed.raw,
                       message=_("Biểu mẫu có trường chưa hợp lệ, vui lòng kiểm tra lại."), status=400)
    flash(_("Đã khởi tạo hồ sơ số %(id)s.", id=instance_id), "success")
    with request_db.read() as s:  # straight to the first step if it is this user's to do
        first = s.scalar(select(HumanTask.id).where(
            HumanTask.instance_id == instance_id, HumanTask.state == TaskState.OPEN.value)
            .order_by(HumanTask.created_at, HumanTask.id).limit(1))
        if first and queries.may_act_now(s, _me(), first, eng.today()):
            return redirect(url_for("tasks.task", task_id=first))
    return redirect(url_for("instances.detail", instance_id=instance_id))
