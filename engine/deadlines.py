"""Declarative deadlines from the process descriptor: due time, reminder, escalation ladder.

    "tasks": {"soan_de_xuat": {
        "due": "5wd",                       # or "PT48H", "8wh", "data:han_nop" (a date in the case data)
        "remind_before": "1wd",
        "escalate": [
            {"after": "0wd", "notify": "supervisor"},               # the unit's supervisors, at the deadline
            {"after": "2wd", "notify": "lead", "org": "SO_KHCN"},   # the lead organisation's supervisors
            {"after": "5wd", "notify": "supervisor", "reassign_to": "supervisor"}
        ]}}
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine.errors import InvalidInput, InvalidModel
from engine.workdays import WorkingCalendar, parse_duration

TASK_DEADLINE_SCHEMA = {
    "type": "object",
    "properties": {
        "due": {"type": "string", "minLength": 2},
        "remind_before": {"type": "string", "minLength": 2},
        "escalate": {
            "type": "array",
            "maxItems": 10,
            "items": {
                "type": "object",
                "properties": {
                    "after": {"type": "string", "minLength": 2},
                    "notify": {"enum": ["supervisor", "lead", "assignee"]},
                    "org": {"type": "string"},
                    "reassign_to": {"enum": ["supervisor"]},
                },
                "required": ["after"],
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}


class DeadlineState(str, enum.Enum):
    ON_TIME = "on_time"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"


def check_descriptor_tasks(tasks: dict, task_ids: set[str]) -> None:
    """Deploy-time check: every duration parses and every task named exists in the model."""
    for task_id, spec in (tasks or {}).items():
        if task_id not in task_ids:
            raise InvalidModel(f"Thời hạn khai báo cho bước không có trong mô hình: '{task_id}'.",
                               f"Deadline given for a step that is not in the model: '{task_id}'.",
                               {"task": task_id})
        durations = [spec.get("remind_before")] + [e.get("after") for e in spec.get("escalate", [])]
        if spec.get("due") and not str(spec["due"]).startswith("data:"):
            durations.append(spec["due"])
        for value in filter(None, durations):
            try:
                parse_duration(value)
            except ValueError as exc:
                raise InvalidModel(f"Bước '{task_id}': {exc}", f"Step '{task_id}': {exc}", {"task": task_id}) from None


def shift(cal: WorkingCalendar, moment: datetime, spec: str, sign: int = 1) -> datetime:
    kind, amount = parse_duration(spec)
    if kind == "working_days":
        return cal.add_working_days(moment, int(amount)) if sign > 0 else cal.subtract_working_days(moment, int(amount))
    if kind == "working_hours" and sign > 0:
        return cal.add_working_hours(moment, amount)
    seconds = amount * 3600 if kind == "working_hours" else amount
    return moment + sign * timedelta(seconds=seconds)


def _from_data(value, tz: ZoneInfo) -> datetime | None:
    """A deadline written in the case data: a date means the end of that working day (17:00)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time(17, 0))
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"Hạn xử lý trong dữ liệu không đúng định dạng ngày: '{value}'.",
                               f"The deadline in the case data is not a date: '{value}'.") from None
        if len(value) <= 10:
            moment = datetime.combine(moment.date(), time(17, 0))
    else:
        return None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


@dataclass(frozen=True)
class Schedule:
    due_at: datetime | None
    remind_at: datetime | None
    escalations: list[tuple[int, datetime, dict]]  # (level, when, step)


def schedule(cal: WorkingCalendar, spec: dict | None, created_at: datetime, data: dict, tz: ZoneInfo) -> Schedule:
    """When a new task is due, when to remind, and when each escalation level fires."""
    if not spec or not spec.get("due"):
        return Schedule(None, None, [])
    due_spec = spec["due"]
    if due_spec.startswith("data:"):
        due = _from_data(data.get(due_spec[5:]), tz)
    else:
        due = shift(cal, created_at, due_spec)
    if due is None:
        return Schedule(None, None, [])
    remind = shift(cal, due, spec["remind_before"], -1) if spec.get("remind_before") else None
    if remind is not None and remind <= created_at:
        remind = None
    ladder = [(level, shift(cal, due, step["after"]) if step["after"] not in ("0wd", "PT0S") else due, step)
              for level, step in enumerate(spec.get("escalate", []), start=1)]
    # A task opened after some levels were already due (reopened past a date deadline) gets
    # only the highest of those, now, not every notice at once.
    past = [entry for entry in ladder if entry[1] <= created_at]
    ladder = past[-1:] + [entry for entry in ladder if entry[1] > created_at]
    return Schedule(due, remind, ladder)


def state(cal: WorkingCalendar, due_at: datetime | None, now: datetime) -> tuple[DeadlineState, int] | None:
    """On time / due soon / overdue, with the working days left (or past): the badge on every task."""
    if due_at is None:
        return None
    if now > due_at:
        return DeadlineState.OVERDUE, max(cal.working_days_between(due_at, now), 0)
    left = cal.working_days_between(now, due_at)
    return (DeadlineState.DUE_SOON if left <= 1 else DeadlineState.ON_TIME), left
