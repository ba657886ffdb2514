"""Thống kê, báo cáo: open / due soon / overdue / done on time / done late per unit and process."""

from __future__ import annotations

import io
from datetime import timedelta

from flask import Blueprint, Response, abort, render_template, request
from flask_babel import gettext as _
from flask_login import current_user, login_required

from engine import dashboard as stats
from engine import queries
from webui import request_db
from webui.views import catalogue, engine, formats

bp = Blueprint("dashboard", __name__)

PERIODS = {"all": None, "year": 365, "quarter": 92, "month": 31}
BUCKETS = ("open", "due_soon", "overdue", "done_on_time", "done_late")


def _scope(session) -> list[str] | None:
    """Every unit for an administrator; otherwise the units the user supervises (403 if none)."""
    if current_user.is_admin:
        return None
    supervised = queries.org_codes(session, int(current_user.get_id()), queries.SUPERVISING_ROLES)
    if not supervised:
        abort(403)
    return supervised


def _filters() -> dict:
    period = request.args.get("period") if request.args.get("period") in PERIODS else "all"
    return {"process": request.args.get("process") or None, "period": period}


def _collect(filters: dict) -> dict:
    eng = engine()
    days = PERIODS[filters["period"]]
    since = eng.now() - timedelta(days=days) if days else None
    with request_db.read() as s:
        scope = _scope(s)
        rows = stats.task_statistics(s, eng.calendar, eng.now(), orgs=scope, process=filters["process"],
                                     since=since)
        names = stats.organisation_names(s, [r.org_code for r in rows] + list(scope or []))
        catalog = catalogue.processes(s)
    en = formats.locale_code() == "en"

    def org_label(code):
        if code is None:
            return _("(Người khởi tạo)")
        vi_name, en_name = names.get(code, (code, code))
        return en_name if en else vi_name

    def proc_label(key):
        return catalog.get(key, {}).get("title", key)

    by_org: dict = {}
    by_process: dict = {}
    total = stats.Stat(None, None)
    for r in rows:
        by_org.setdefault(r.org_code, stats.Stat(r.org_code, None)).add(r)
        by_process.setdefault(r.process_key, stats.Stat(None, r.process_key)).add(r)
        total.add(r)
    return {
        "rows": rows, "by_org": sorted(by_org.values(), key=lambda x: org_label(x.org_code)),
        "by_process": sorted(by_process.values(), key=lambda x: proc_label(x.process_key)), "total": total,
        "org_label": org_label, "proc_label": proc_label, "processes": catalog,
    }


@bp.get("/dashboard")
@login_required
def index():
    filters = _filters()
    data = _collect(filters)
    chart = {
        "labels": [data["org_label"](s.org_code) for s in data["by_org"]],
        "series": [
            {"label": _("Trong hạn"), "data": [s.open - s.due_soon - s.overdue for s in data["by_org"]],
             "color": "#2e7d32"},
            {"label": _("Sắp đến hạn"), "data": [s.due_soon for s in data["by_org"]], "color": "#f9a825"},
            {"label": _("Quá hạn"), "data": [s.overdue for s in data["by_org"]], "color": "#c62828"},
            {"label": _("Hoàn thành đúng hạn"), "data": [s.done_on_time for s in data["by_org"]], "color": "#90caf9"},
            {"label": _("Hoàn thành quá hạn"), "data": [s.done_late for s in data["by_org"]], "color": "#8e24aa"},
        ],
    }
    return render_template("dashboard/index.html", filters=filters, chart=chart, periods=PERIODS, **data)


@bp.get("/dashboard/export.xlsx")
@login_required
def export():
    from openpyxl import Workbook
    from openpyxl.styles import Font

    filters = _filters()
    data = _collect(filters)
    headers = [_("Đang xử lý"), _("Sắp đến hạn"), _("Quá hạn"), _("Hoàn thành đúng hạn"), _("Hoàn thành quá hạn"),
               _("Tổng số"), _("Tỷ lệ trễ hạn (%)")]

    def numbers(s: stats.Stat) -> list:
        rate = round(s.late_rate * 100, 1) if s.late_rate is not None else None
        return [s.open, s.due_soon, s.overdue, s.done_on_time, s.done_late, s.total, rate]

    book = Workbook()
    sheets = [
        (_("Theo đơn vị"), [_("Đơn vị")], [([data["org_label"](s.org_code)], s) for s in data["by_org"]]),
        (_("Theo quy trình"), [_("Quy trình")],
         [([data["proc_label"](s.process_key)], s) for s in data["by_process"]]),
        (_("Chi tiết"), [_("Đơn vị"), _("Quy trình")],
         [([data["org_label"](s.org_code), data["proc_label"](s.process_key)], s) for s in data["rows"]]),
    ]
    for index, (title, keys, lines) in enumerate(sheets):
        sheet = book.active if index == 0 else book.create_sheet()
        sheet.title = title[:31]
        sheet.append(keys + headers)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for key_values, s in lines:
            sheet.append(key_values + numbers(s))
        sheet.append([_("Tổng cộng")] + [""] * (len(keys) - 1) + numbers(data["total"]))
        for cell in sheet[sheet.max_row]:
            cell.font = Font(bold=True)
        sheet.column_dimensions["A"].width = 45
        if len(keys) > 1:
            sheet.column_dimensions["B"].width = 45
        sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    stamp = engine().now().astimezone(engine().tz).strftime("%Y%m%d")
    return Response(out.getvalue(),
                    mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="thong-ke-{stamp}.xlsx"'})


@bp.get("/dashboard/tasks")
@login_required
def drill_down():
    """The tasks behind one number of the table."""
    eng = engine()
    bucket = request.args.get("bucket") if request.args.get("bucket") in BUCKETS else "open"
    organisation = request.args.get("organisation") or None
    process = request.args.get("process") or None
    done = bucket.startswith("done")
    overdue = {"overdue": True, "done_late": True, "done_on_time": False}.get(bucket)
    with request_db.read() as s:
        _scope(s)
        page = queries.task_list(s, current_user, eng.today(), eng.now(), queries.TaskQuery(
            scope="all", status="done" if done else "open", organisation=organisation, process=process,
            overdue=overdue, limit=200, cursor=request.args.get("cursor") or None))
        catalog = catalogue.processes(s)
        org = queries.org_refs(s, [organisation]).get(organisation) if organisation else None
    items = page.items
    if done:
        items = [i for i in items if i["state"] in ("completed", "returned")]
    for item in items:
        item["badge"] = formats.deadline_badge(item["due_at"], item["completed_at"] if done else None)
        proc = catalog.get(item["process"], {})
        item["process_title"] = proc.get("title", item["process"])
        item["instance_title"] = catalogue.case_title(item.get("instance_title"), proc, item["business"])
    if bucket == "due_soon":
        items = [i for i in items if i["badge"] and i["badge"]["kind"] == "due_soon"]
    return render_template("dashboard/tasks.html", items=items, bucket=bucket, org=org,
                           process_title=catalog.get(process, {}).get("title") if process else None,
                           next_cursor=page.next_cursor, organisation=organisation, process=process)
