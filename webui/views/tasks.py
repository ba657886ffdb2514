"""The inbox ("Việc cần xử lý") and one task's page with its form and the actions on it."""

from __future__ import annotations

import unicodedata

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from engine import drafts, forms, queries
from engine.dashboard import InboxCounts, due_soon_before
from engine.errors import Forbidden, InvalidInput, NotFound, TooLarge
from engine.models import HumanTask
from webui import request_db
from webui.views import catalogue, engine, formats, schema_form, set_nav

bp = Blueprint("tasks", __name__)

INBOX_MAX = 1000  # how many tasks the in-memory reference inbox (bench/inbox.py) reads
SEARCH_MAX = 200  # characters of a search
PER_PAGE = 20
TABS = ("all", "mine", "unit", "done")
STATES = ("overdue", "due_soon", "on_time", "none")


def _me() -> int:
    return int(current_user.get_id())


def _int_arg(name: str, default: int = 1) -> int:
    try:
        return max(1, int(request.args.get(name, default)))
    except ValueError:
        return default


# ------------------------------------------------------------------ inbox
def decorate_inbox_items(items: list[dict], catalog: dict, done: bool) -> None:
    """What a row of the inbox shows besides the task: its badge, queue mark, process and case titles."""
    for item in items:
        item["badge"] = formats.deadline_badge(item["due_at"], item["completed_at"] if done else None)
        item["queue"] = item["assignee"] is None and item["candidate"] is None
        proc = catalog.get(item["process"], {})
        item["process_title"] = proc.get("title", item["process"])
        item["fields"] = catalogue.business_lines(item["business"], proc.get("list_fields", {}))
        item["instance_title"] = catalogue.case_title(item.get("instance_title"), proc, item["business"])


def inbox_filters() -> tuple[str, str | None, str | None, str | None, str]:
    """The inbox's query string: (tab, process, organisation, deadline state, search), cleaned; a
    search too long or with control characters is refused (400) with a message."""
    tab = request.args.get("tab") if request.args.get("tab") in TABS else "all"
    process = request.args.get("process") or None
    organisation = request.args.get("organisation") or None
    state = request.args.get("state") if request.args.get("state") in STATES else None
    search = (request.args.get("q") or "").strip()
    if len(search) > SEARCH_MAX:
        raise InvalidInput(f"Nội dung tìm kiếm dài quá {SEARCH_MAX} ký tự, vui lòng rút gọn.",
                           f"The search is longer than {SEARCH_MAX} characters; please shorten it.",
                           {"q": f"Tối đa {SEARCH_MAX} ký tự. / At most {SEARCH_MAX} characters."})
    if any(unicodedata.category(c) == "Cc" and not c.isspace() for c in search):
        raise InvalidInput("Nội dung tìm kiếm có ký tự điều khiển không hợp lệ.",
                           "The search contains control characters.",
                           {"q": "Ký tự không hợp lệ. / Invalid characters."})
    return tab, process, organisation, state, search


@bp.get("/")
@login_required
def inbox():
    """My tasks and my units' queues, overdue first. Counting, filtering, searching, ordering and
    paging happen in SQL on the task indexes (queries.inbox_page); only the page's rows are read in
    full. The page's counts are the navigation bar's too, so they are counted once."""
    eng = engine()
    tab, process, organisation, state, search = inbox_filters()
    done = tab == "done"
    now, today = eng.now(), eng.today()
    with request_db.read() as s:
        catalog = catalogue.processes(s)
        who = queries.reach(s, _me(), today)
        page = queries.inbox_page(s, current_user, today, now, queries.InboxQuery(
            tab=tab, process=process, organisation=organisation, state=None if done else state,
            due_soon_before=due_soon_before(eng.calendar, now), page=_int_arg("page"), per_page=PER_PAGE,
            search=search, process_titles={key: proc["title"] for key, proc in catalog.items()}), who)
        nav = page.nav or queries.inbox_counts(s, _me(), today, now, who)
    set_nav(InboxCounts(*nav), current_user.is_admin or who.supervises)
    decorate_inbox_items(page.items, catalog, done)
    filters = {k: v for k, v in {"tab": tab, "process": process, "organisation": organisation, "state": state,
                                 "q": search}.items() if v}
    return render_template("tasks/inbox.html", items=page.items, total=page.total, page=page.page,
                           pages=page.pages, tab=tab, filters=filters, processes=catalog,
                           organisations=page.organisations, counts=page.counts, state=state, search=search,
                           process=process, organisation=organisation)


# ------------------------------------------------------------------ one task
def _require_visible(task_id: str) -> int:
    """The task's case; a task the user may not see does not exist for them (404, never 403)."""
    eng = engine()
    with request_db.read() as s:
        task = s.get(HumanTask, task_id)
        if task is None or not (queries.may_view_instance(s, current_user, task.instance_id, eng.today())
                                or queries.may_act_now(s, _me(), task_id, eng.today())):
            raise NotFound("Không tìm thấy công việc.", "Task not found.", {"task": task_id})
        return task.instance_id


def _render(task_id: str, *, data: dict | None = None, errors: dict | None = None, raw: dict | None = None,
            extra_rows: dict | None = None, return_error: str = "", reason: str = "", message: str = "",
            status: int = 200):
    eng = engine()
    with request_db.read() as s:
        detail = queries.task_detail(s, current_user, task_id, eng.today(), eng.now(), eng.definitions)
        try:
            case = queries.instance_detail(s, current_user, detail["instance_id"], eng.today(), eng.now(),
                                           eng.definitions)
        except NotFound:
            case = None
        supervises = current_user.is_admin or (detail["organisation"] is not None and detail["organisation"]["code"]
                                               in queries.org_codes(s, _me(), queries.SUPERVISING_ROLES))
        members = catalogue.members(s, detail["organisation"]["code"]) if supervises and detail["organisation"] \
            else []
        catalog = catalogue.processes(s)
    actions = dict(detail["actions"])
    # The case's first step has nothing before it to return to, however often it comes round again.
    first_step = next((e["details"].get("task") for e in (case or {}).get("history", [])
                       if e["action"] == "task_created"), detail["name"])
    actions["return"] = actions["return"] and detail["name"] != first_step
    actions["reassign"] = detail["state"] == "open" and supervises and bool(members)
    draft = _draft_of(task_id) if actions["complete"] else None
    # After a return the engine resets the step, so its earlier values are gone from the state:
    # the case's business fields (kept by the engine in a projection) fill what they can. A saved
    # draft is the form exactly as it was left, so it replaces them.
    if data is not None:
        prefill = data
    elif draft is not None:
        prefill = draft["data"]
    else:
        prefill = {**(detail["instance"]["business"] or {}), **(detail.get("data") or {})}
    fields = schema_form.bind(detail["form_schema"], prefill, errors, raw, extra_rows)
    other_errors = schema_form.unplaced_errors(fields, errors or {})
    proc = catalog.get(detail["process"], {})
    detail["instance"]["title"] = catalogue.case_title(detail["instance"]["title"], proc,
                                                       detail["instance"]["business"])
    submit_label = _("Trình") if detail["role"] == "staff" else _("Hoàn thành")
    return render_template(
        "tasks/task.html", task=detail, case=case, fields=fields, form_errors=other_errors, actions=actions,
        members=members, return_error=return_error, reason=reason, message=message,
        submit_label=submit_label, process_title=proc.get("title", detail["process"]),
        business=catalogue.business_lines(detail["instance"]["business"], proc.get("list_fields", {})),
        task_titles={t["name"]: t["title"] for t in (case or {}).get("tasks", [])},
        badge=formats.deadline_badge(detail["due_at"], detail["completed_at"]),
        row_placeholder=schema_form.ROW_PLACEHOLDER, draft=draft,
    ), status


def _draft_of(task_id: str) -> dict | None:
    """The task's saved draft with who saved it, for the page's notice; None if there is none."""
    eng = engine()
    try:
        found = drafts.load_draft(eng, _me(), task_id)
    except (Forbidden, NotFound):  # the task changed hands since the page was read
        return None
    if found is None:
        return None
    with request_db.read() as s:
        who = queries.user_refs(s, [found.saved_by]).get(found.saved_by)
    return {"data": found.data, "saved_at": found.saved_at, "saved_by": who}


@bp.get("/tasks/<task_id>")
@login_required
def task(task_id: str):
    return _render(task_id)


def _expected_version() -> int | None:
    value = request.form.get("expected_version", "")
    return int(value) if value.isdigit() else None


@bp.post("/tasks/<task_id>/complete")
@login_required
def complete(task_id: str):
    _require_visible(task_id)
    eng = engine()
    with request_db.read() as s:
        detail = queries.task_detail(s, current_user, task_id, eng.today(), eng.now(), eng.definitions)
    schema = detail["form_schema"]
    parsed = schema_form.parse(schema, request.form)
    extra = schema_form.added_rows(request.form)
    if extra:  # "Thêm dòng" without JavaScript: show the form again with one more row
        return _render(task_id, data=parsed.data, raw=parsed.raw, extra_rows=extra)
    errors = dict(parsed.errors)
    if errors:  # show every message at once; the engine is not called with unreadable values
        try:
            forms.validate(schema, parsed.data)
        except InvalidInput as exc:
            errors = {**exc.details, **errors}
    if not errors:
        try:
            eng.complete_task(_me(), task_id, parsed.data, _expected_version())
        except InvalidInput as exc:
            paths = _field_paths(schema, parsed.data)
            errors = {k: v for k, v in exc.details.items() if k in paths}
            if len(errors) < len(exc.details) or not errors:
                errors["/"] = formats.engine_message(exc)
    if errors:
        errors = {k: formats.bilingual(str(v)) for k, v in errors.items()}
        return _render(task_id, data=parsed.data, errors=errors, raw=parsed.raw,
                       message=_("Biểu mẫu có trường chưa hợp lệ, vui lòng kiểm tra lại."), status=400)
    flash(_("Đã hoàn thành bước “%(title)s”.", title=detail["title"]), "success")
    return redirect(url_for("tasks.inbox"))


@bp.post("/tasks/<task_id>/signal")
@login_required
def signal(task_id: str):
    """A step's signal button (a signal boundary event on it, e.g. "Sửa lại")."""
    _require_visible(task_id)
    eng = engine()
    name = (request.form.get("signal") or "")[:255]
    with request_db.read() as s:
        detail = queries.task_detail(s, current_user, task_id, eng.today(), eng.now(), eng.definitions)
    label = next((b["label"] for b in detail.get("signals", []) if b["name"] == name), name)
    try:
        opened = eng.signal_task(_me(), task_id, name)
    except InvalidInput as exc:
        return _render(task_id, message=formats.engine_message(exc), status=400)
    flash(_("Đã thực hiện “%(label)s”.", label=label), "success")
    with request_db.read() as s:  # go on to the step it opened, if it is this person's
        mine = [i for i in opened if queries.may_act_now(s, _me(), i, eng.today())]
    return redirect(url_for("tasks.task", task_id=mine[0]) if mine else url_for("tasks.inbox"))


@bp.post("/tasks/<task_id>/draft")
@login_required
def save_draft(task_id: str):
    """Lưu nháp: keep the form as it is, unvalidated and unsubmitted, to finish later."""
    _require_visible(task_id)
    eng = engine()
    with request_db.read() as s:
        detail = queries.task_detail(s, current_user, task_id, eng.today(), eng.now(), eng.definitions)
    parsed = schema_form.parse(detail["form_schema"], request.form)  # unreadable values are kept as typed
    try:
        drafts.save_draft(eng, _me(), task_id, parsed.data)
    except (InvalidInput, TooLarge) as exc:
        return _render(task_id, data=parsed.data, raw=parsed.raw, message=formats.engine_message(exc), status=400)
    flash(_("Đã lưu nháp. Bạn có thể quay lại hoàn thiện và trình sau."), "success")
    return redirect(url_for("tasks.task", task_id=task_id))


@bp.post("/tasks/<task_id>/draft/delete")
@login_required
def discard_draft(task_id: str):
    _require_visible(task_id)
    drafts.discard_draft(engine(), _me(), task_id)
    flash(_("Đã xóa bản nháp."), "success")
    return redirect(url_for("tasks.task", task_id=task_id))


def _field_paths(schema: dict | None, data: dict) -> set[str]:
    """The paths the form shows for this data, to tell a field's message from a general one."""
    return schema_form.field_paths(schema_form.bind(schema, data)) | {"/"}


@bp.post("/tasks/<task_id>/return")
@login_required
def return_task(task_id: str):
    _require_visible(task_id)
    reason = (request.form.get("reason") or "").strip()
    try:
        engine().return_task(_me(), task_id, reason, _expected_version())
    except InvalidInput as exc:
        return _render(task_id, return_error=formats.bilingual(str(exc.details.get("reason", ""))) or
                       formats.engine_message(exc), reason=reason, status=400)
    flash(_("Đã trả lại hồ sơ kèm lý do."), "success")
    return redirect(url_for("tasks.inbox"))


@bp.post("/tasks/<task_id>/claim")
@login_required
def claim(task_id: str):
    _require_visible(task_id)
    engine().claim(_me(), task_id)
    flash(_("Bạn đã nhận xử lý công việc này."), "success")
    return redirect(url_for("tasks.task", task_id=task_id))


@bp.post("/tasks/<task_id>/unclaim")
@login_required
def unclaim(task_id: str):
    _require_visible(task_id)
    engine().unclaim(_me(), task_id)
    flash(_("Đã trả công việc về đơn vị."), "success")
    return redirect(url_for("tasks.task", task_id=task_id))


@bp.post("/tasks/<task_id>/reassign")
@login_required
def reassign(task_id: str):
    _require_visible(task_id)
    target = request.form.get("to_user", "")
    if not target.isdigit():
        flash(_("Vui lòng chọn người nhận."), "error")
        return redirect(url_for("tasks.task", task_id=task_id))
    try:
        engine().reassign(_me(), task_id, int(target), request.form.get("note", "")[:2000])
    except InvalidInput as exc:
        flash(formats.engine_message(exc), "error")
        return redirect(url_for("tasks.task", task_id=task_id))
    flash(_("Đã chuyển xử lý."), "success")
    return redirect(url_for("tasks.task", task_id=task_id))
