"""How values read on a page: dates dd/mm/yyyy, times in the configured zone, VND, deadline badges.

Registered as Jinja filters by `init_views`; the same functions parse what people type.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from babel.numbers import format_decimal
from flask import current_app
from flask_babel import get_locale
from flask_babel import gettext as _

from engine.deadlines import DeadlineState, state


def _tz():
    return current_app.extensions["dieuphoi"].tz


def _as_datetime(value) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def local_datetime(value) -> str:
    """28/11/2026 14:05 in the configured time zone (Asia/Ho_Chi_Minh)."""
    moment = _as_datetime(value)
    if moment is None:
        return "" if value in (None, "") else str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(_tz())
    return moment.strftime("%d/%m/%Y %H:%M")


def local_date(value) -> str:
    """28/11/2026; an ISO date string from form data reads the same way."""
    if isinstance(value, datetime):
        return (value.astimezone(_tz()) if value.tzinfo else value).strftime("%d/%m/%Y")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return f"{value[8:10]}/{value[5:7]}/{value[0:4]}"
    return "" if value is None else str(value)


def parse_date(text: str) -> str | None:
    """dd/mm/yyyy (or yyyy-mm-dd) to an ISO date; None if it is not a real date."""
    text = (text or "").strip()
    match = re.fullmatch(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})", text)
    try:
        if match:
            return date(int(match[3]), int(match[2]), int(match[1])).isoformat()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text).isoformat()
    except ValueError:
        return None
    return None


def locale_code() -> str:
    return str(get_locale() or "vi")


def number(value) -> str:
    """1.500.000 in Vietnamese, 1,500,000 in English."""
    if value is None or value == "":
        return ""
    try:
        return format_decimal(value, locale=locale_code())
    except (TypeError, ValueError, ArithmeticError):
        return str(value)


def money(value) -> str:
    """1.500.000 đ (or 1,500,000 VND in English)."""
    text = number(value)
    if not text:
        return ""
    return f"{text} đ" if locale_code() == "vi" else f"{text} VND"


def parse_money(text: str) -> int | None:
    """What people type for an amount: '1.500.000', '1 500 000 đ', '1,500,000' -> 1500000."""
    cleaned = re.sub(r"[\s.,_]|đ|vnd|₫", "", (text or "").strip().lower())
    if re.fullmatch(r"-?\d{1,18}", cleaned):
        return int(cleaned)
    return None


def percent(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{number(round(value * 100, 1))} %"


def deadline_badge(due_at, completed_at=None) -> dict | None:
    """{"kind": on_time|due_soon|overdue|done, "text": "Còn 2 ngày"} for a task's deadline."""
    if due_at is None:
        return None
    engine = current_app.extensions["dieuphoi"]
    due = _as_datetime(due_at)
    if completed_at is not None:
        late = _as_datetime(completed_at) > due
        return {"kind": "late" if late else "done",
                "text": _("Hoàn thành quá hạn") if late else _("Hoàn thành đúng hạn")}
    result = state(engine.calendar, due, engine.now())
    kind, days = result
    if kind == DeadlineState.OVERDUE:
        text = _("Quá hạn %(n)s ngày", n=days) if days else _("Quá hạn")
    elif kind == DeadlineState.DUE_SOON:
        text = _("Sắp đến hạn") if days <= 0 else _("Sắp đến hạn (còn %(n)s ngày)", n=days)
    else:
        text = _("Còn %(n)s ngày", n=days)
    return {"kind": kind.value, "text": text}


def bilingual(text: str | None) -> str:
    """Engine messages are 'Vietnamese / English': show the half in the reader's language."""
    if not text:
        return ""
    vi, sep, en = str(text).partition(" / ")
    if not sep:
        return text
    return en if locale_code() == "en" and en else vi


def engine_message(exc) -> str:
    if locale_code() == "en" and getattr(exc, "message_en", ""):
        return exc.message_en
    return getattr(exc, "message_vi", "") or str(exc)


def org_name(org: dict | None) -> str:
    if not org:
        return ""
    if locale_code() == "en" and org.get("name_en"):
        return org["name_en"]
    return org.get("name_vi") or org.get("code", "")


def title_text(value) -> str:
    """A descriptor text: a plain string or {"vi": ..., "en": ...}."""
    if isinstance(value, dict):
        return value.get(locale_code()) or value.get("vi") or ""
    return value or ""


FILTERS = {
    "datetime": local_datetime,
    "date": local_date,
    "number": number,
    "money": money,
    "percent": percent,
    "bilingual": bilingual,
    "org_name": org_name,
    "title_text": title_text,
}
