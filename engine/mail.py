"""Email texts: one Jinja2 template per kind and format in `mail_templates/`, Vietnamese first, English second.

Each `<kind>.txt` sets the subject (`{% set subject %}`) and renders the plain-text body;
`<kind>.html` renders the HTML body with autoescaping, so a task title can never inject
markup. Callers pass raw facts (titles, ids, an aware deadline, names); links, dates in
Asia/Ho_Chi_Minh and the "Nguyễn Văn A (xử lý thay Trần Thị B)" label are made here.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES_DIR = Path(__file__).resolve().parent / "mail_templates"
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
KINDS = ("task_assigned", "task_assigned_unit", "reminder", "escalation", "returned", "decision", "digest")

_TASK_KINDS = {"task_assigned", "task_assigned_unit", "reminder", "escalation", "returned"}
_REQUIRED = {
    "escalation": ("overdue_days", "level"),
    "returned": ("reason",),
    "decision": ("outcome",),
}
# Every name a template may read: absent ones are empty, so StrictUndefined only catches typos in templates.
_OPTIONAL = (
    "task_id", "task_title", "instance_id", "case_title", "case_code", "process_title", "unit_name", "reason",
    "actor_name", "acting_for_name", "assignee_name", "recipient_name", "level", "overdue_days", "outcome",
)
_OUTCOMES = {  # the decision values the bundled workflows use, and their English equivalents
    "approved": ("Đồng ý", "approved"),
    "dong_y": ("Đồng ý", "approved"),
    "phe_duyet": ("Phê duyệt", "approved"),
    "rejected": ("Từ chối", "rejected"),
    "tu_choi": ("Từ chối", "rejected"),
    "khong_dong_y": ("Không đồng ý", "not approved"),
    "khong_phe_duyet": ("Không phê duyệt", "not approved"),
    "returned": ("Trả lại", "returned"),
    "tra_lai": ("Trả lại", "returned"),
    "completed": ("Hoàn thành", "completed"),
    "cancelled": ("Đã hủy", "cancelled"),
}

_env = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def format_deadline(value: datetime, tz: str = DEFAULT_TIMEZONE) -> str:
    """dd/mm/yyyy HH:MM in the province's time zone; a naive value is taken as UTC (how we store time)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(ZoneInfo(tz)).strftime("%d/%m/%Y %H:%M")


def format_date(value: date | datetime, tz: str = DEFAULT_TIMEZONE) -> str:
    if isinstance(value, datetime):
        value = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(ZoneInfo(tz)).date()
    return value.strftime("%d/%m/%Y")


def acting_label(name: str | None, acting_for: str | None = None) -> str:
    """'Nguyễn Văn A (xử lý thay Trần Thị B)' when a substitute acted, else the name."""
    if not name:
        return ""
    return f"{name} (xử lý thay {acting_for})" if acting_for else name


def _one_line(text: str, limit: int = 250) -> str:
    """Subjects are header values: no line breaks (header injection), and a sane length."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _prepare(kind: str, context: dict) -> dict:
    if kind not in KINDS:
        raise ValueError(f"unknown email kind {kind!r}; expected one of {', '.join(KINDS)}")
    missing = [k for k in _REQUIRED.get(kind, ()) if context.get(k) in (None, "")]
    if kind in _TASK_KINDS and not context.get("task_title"):
        missing.append("task_title")
    if missing:
        raise ValueError(f"email {kind!r} needs {', '.join(missing)}")

    tz = context.get("timezone") or DEFAULT_TIMEZONE
    base_url = (context.get("base_url") or "").rstrip("/")
    ctx = {name: None for name in _OPTIONAL}
    ctx.update(context)
    task_id, instance_id = context.get("task_id"), context.get("instance_id")
    deadline = context.get("due_at") or context.get("deadline")
    recipients = context.get("recipients") or []
    case_code = context.get("case_code") or (f"#{instance_id}" if instance_id else "")
    case_title = context.get("case_title") or ""
    ctx.update(
        base_url=base_url,
        inbox_url=f"{base_url}/" if base_url else "",
        task_url=context.get("task_url") or (f"{base_url}/tasks/{task_id}" if base_url and task_id else ""),
        case_url=context.get("case_url") or context.get("instance_url")
        or (f"{base_url}/instances/{instance_id}" if base_url and instance_id else ""),
        case_code=case_code,
        case_label=" – ".join(part for part in (case_code, case_title) if part),
        deadline_text=format_deadline(deadline, tz) if isinstance(deadline, datetime) else (deadline or ""),
        actor=acting_label(context.get("actor_name"), context.get("acting_for_name")),
        greeting_name=context.get("recipient_name")
        or (recipients[0].get("full_name") if len(recipients) == 1 and isinstance(recipients[0], dict) else ""),
    )
    if kind == "decision":
        raw = str(context["outcome"])
        vi, en = _OUTCOMES.get(raw.strip().lower(), (raw, raw))
        ctx.update(outcome_vi=context.get("outcome_vi") or vi, outcome_en=context.get("outcome_en") or en)
    if kind == "digest":
        day = context.get("date")
        ctx.update(
            date_text=format_date(day, tz) if day else "",
            due_today=[_digest_item(i, base_url, tz) for i in context.get("due_today") or ()],
            overdue=[_digest_item(i, base_url, tz) for i in context.get("overdue") or ()],
        )
    return ctx


def _digest_item(item: dict, base_url: str, tz: str) -> dict:
    deadline = item.get("due_at") or item.get("deadline")
    task_id, instance_id = item.get("task_id"), item.get("instance_id")
    return {
        "title": item.get("task_title") or item.get("title") or "",
        "case_title": item.get("case_title") or "",
        "case_code": item.get("case_code") or (f"#{instance_id}" if instance_id else ""),
        "deadline_text": format_deadline(deadline, tz) if isinstance(deadline, datetime) else (deadline or ""),
        "overdue_days": item.get("overdue_days"),
        "url": item.get("task_url") or (f"{base_url}/tasks/{task_id}" if base_url and task_id else ""),
    }


def render(kind: str, context: dict) -> tuple[str, str, str]:
    """(subject, text, html) of one email kind; raises ValueError for an unknown kind or a missing fact."""
    ctx = _prepare(kind, context)
    module = _env.get_template(f"{kind}.txt").make_module(ctx)
    subject = _one_line(module.subject)
    text = str(module).strip() + "\n"
    html = _env.get_template(f"{kind}.html").render(ctx, subject=subject)
    return subject, text, html
