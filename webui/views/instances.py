"""Cases (hồ sơ): the list, one case with its diagram, history, data and comments."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from engine import queries
from engine.errors import InvalidInput, NotFound
from engine.models import Definition, HumanTask, Instance
from webui import request_db
from webui.views import admin_required, catalogue, diagram, engine, formats, safe_next, schema_form

bp = Blueprint("instances", __name__)
PER_PAGE = 25


def _me() -> int:
    return int(current_user.get_id())


@bp.get("/instances")
@login_required
def index():
    eng = engine()
    status = request.args.get("status") if request.args.get("status") in queries.INSTANCE_STATUSES else None
    process = request.args.get("process") or None
    q = queries.InstanceQuery(process=process, status=status, limit=PER_PAGE,
                              cursor=request.args.get("cursor") or None)
    with request_db.read() as s:
        page = queries.instance_list(s, current_user, eng.now(), q)
        catalog = catalogue.processes(s)
    for item in page.items:
        proc = catalog.get(item["process"], {})
        item["process_title"] = proc.get("title", item["process"])
        item["fields"] = catalogue.business_lines(item["business"], proc.get("list_fields", {}))
        item["title"] = catalogue.case_title(item["title"], proc, item["business"])
    return render_template("instances/index.html", page=page, processes=catalog, status=status, process=process)


def _require_visible(session, instance_id: int) -> Instance:
    eng = engine()
    inst = session.get(Instance, instance_id)
    if inst is None or not queries.may_view_instance(session, current_user, instance_id, eng.today()):
        raise NotFound("Không tìm thấy hồ sơ.", "Case not found.", {"instance": instance_id})
    return inst


def field_catalogue(forms: dict) -> dict[str, dict]:
    """Every field named in the process's forms, by key, with its schema (the first form wins)."""
    out: dict[str, dict] = {}
    for schema in (forms or {}).values():
        for key, prop in ((schema or {}).get("properties") or {}).items():
            if isinstance(prop, dict):
                out.setdefault(key, prop)
    return out


def readable(key: str, prop: dict | None, value):
    """A data value as the page shows it: enum label, money, date, yes/no; lists stay lists."""
    prop = prop or {}
    kind = schema_form.kind_of(key, prop) if prop else None
    if isinstance(value, bool):
        return _("Có") if value else _("Không")
    if kind == "select":
        names = dict(schema_form._options(prop))
        return names.get(str(value), value)
    if kind == "money" and isinstance(value, int):
        return formats.money(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return formats.number(value)
    if kind == "date":
        return formats.local_date(value)
    return value


def data_rows(data: dict | None, fields: dict[str, dict]) -> list[dict]:
    """The case data as label/value rows; a list of objects becomes a small table."""
    rows = []
    for key, value in (data or {}).items():
        if key.startswith("_") or value in (None, "", [], {}):
            continue
        prop = fields.get(key)
        if prop is None:
            continue  # internal variables of the model are not shown
        label = str(prop.get("title") or key)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            item_props = (prop.get("items") or {}).get("properties") or {}
            columns = list(item_props) or sorted({k for v in value for k in v})
            rows.append({"label": label, "table": {
                "columns": [str((item_props.get(c) or {}).get("title") or c) for c in columns],
                "rows": [[readable(c, item_props.get(c), v.get(c)) for c in columns] for v in value]}})
        elif isinstance(value, list):
            item = prop.get("items") if isinstance(prop.get("items"), dict) else {}
            rows.append({"label": label, "value": ", ".join(str(readable(key, item, v)) for v in value)})
        elif isinstance(value, dict):
            rows.append({"label": label, "value": "; ".join(f"{k}: {v}" for k, v in value.items())})
        else:
            rows.append({"label": label, "value": readable(key, prop, value)})
    return rows


@bp.get("/instances/<int:instance_id>")
@login_required
def detail(instance_id: int):
    eng = engine()
    with request_db.read() as s:
        case = queries.instance_detail(s, current_user, instance_id, eng.today(), eng.now(), eng.definitions)
        inst = s.get(Instance, instance_id)
        definition = s.get(Definition, inst.definition_id)
        fields = field_catalogue(definition.forms)
        marks = diagram.markers(eng, s, inst)
        catalog = catalogue.processes(s)
        version_info = {"version": definition.version, "latest": catalog.get(inst.process_key, {}).get("version")}
    proc = catalog.get(case["process"], {})
    case["title"] = catalogue.case_title(case["title"], proc, case["business"])
    task_titles = {t["id"]: t["title"] for t in case["tasks"]}
    task_titles.update({t["name"]: t["title"] for t in case["tasks"]})
    return render_template(
        "instances/detail.html", case=case, data_rows=data_rows(case["data"], fields), marks=marks,
        process_title=proc.get("title", case["process_title"]), task_titles=task_titles, version_info=version_info,
        business=catalogue.business_lines(case["business"], proc.get("list_fields", {})),
    )


@bp.get("/instances/<int:instance_id>/diagram.bpmn")
@login_required
def diagram_file(instance_id: int):
    with request_db.read() as s:
        inst = _require_visible(s, instance_id)
        xml = diagram.diagram_xml(s.get(Definition, inst.definition_id))
    if xml is None:
        abort(404)
    return Response(xml, mimetype="application/xml", headers={"Cache-Control": "private, max-age=3600"})


@bp.post("/instances/<int:instance_id>/comments")
@login_required
def comment(instance_id: int):
    eng = engine()
    task_id = request.form.get("task_id") or None
    with request_db.read() as s:
        _require_visible(s, instance_id)
        task = s.get(HumanTask, task_id) if task_id else None
        if task is None or task.instance_id != instance_id:
            task_id = None  # a comment about another case's task is a comment on this case
    back = safe_next(request.form.get("next"), url_for("instances.detail", instance_id=instance_id))
    try:
        eng.add_comment(_me(), instance_id, request.form.get("body", ""), task_id)
    except InvalidInput as exc:
        flash(formats.engine_message(exc), "error")
        return redirect(back)
    flash(_("Đã gửi ý kiến."), "success")
    return redirect(back)


@bp.post("/instances/<int:instance_id>/<any(cancel, suspend, resume):action>")
@admin_required
def admin_action(instance_id: int, action: str):
    eng = engine()
    reason = (request.form.get("reason") or "").strip()
    if action == "resume":
        eng.resume(_me(), instance_id)
    else:
        getattr(eng, action)(_me(), instance_id, reason)
    flash({"cancel": _("Đã hủy hồ sơ."), "suspend": _("Đã tạm dừng hồ sơ."),
           "resume": _("Đã tiếp tục hồ sơ.")}[action], "success")
    return redirect(url_for("instances.detail", instance_id=instance_id))
