"""Timer start events: a process drawn with a timer start runs as a new case each cycle.

SpiffWorkflow runs a cycle start inside one instance; a government report cycle is a new
case each period ("báo cáo 6 tháng"), so the engine keeps one `start` row per process in
the timer table and starts a fresh instance whenever it comes due. A case started by hand
(or by that timer) does not wait on its start timer: it starts now.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.util.task import TaskState as SpiffState

from engine.errors import InvalidModel

if TYPE_CHECKING:
    from engine.definitions import ParsedDefinition


def timer_start(parsed: ParsedDefinition):
    """The timer definition of the process's start event, if it has one."""
    for ts in parsed.spec.task_specs.values():
        definition = getattr(ts, "event_definition", None)
        if isinstance(ts, StartEvent) and isinstance(definition, TimerEventDefinition):
            return definition
    return None


def first_run(definition, evaluate, now: datetime) -> tuple[datetime, int, float]:
    """(first due time, cycles left (-1 = forever), period in seconds) from the start timer's expression."""
    try:
        value = evaluate(definition.expression)
        if isinstance(definition, CycleTimerEventDefinition):
            cycles, start, period = TimerEventDefinition.parse_iso_recurring_interval(value)
            return start, cycles, period.total_seconds()
        if isinstance(definition, DurationTimerEventDefinition):
            delta = TimerEventDefinition.get_timedelta_from_start(TimerEventDefinition.parse_iso_duration(value), now)
            return now + delta, 1, 0.0
        return TimerEventDefinition.get_datetime(value), 1, 0.0
    except Exception as exc:  # noqa: BLE001 - a bad expression is the model's error
        raise InvalidModel(f"Biểu thức hẹn giờ khởi tạo không hợp lệ: {definition.expression} ({exc})",
                           f"Invalid timer start expression: {definition.expression} ({exc})") from None


def release_start(wf, now: datetime) -> None:
    """Let a start event that waits on a timer fire now: the case was started (by hand or by its timer)."""
    past = (now - timedelta(seconds=1)).astimezone(timezone.utc)
    for task in wf.get_tasks(state=SpiffState.WAITING):
        definition = getattr(task.task_spec, "event_definition", None)
        if not isinstance(task.task_spec, StartEvent) or not isinstance(definition, TimerEventDefinition):
            continue
        if isinstance(definition, CycleTimerEventDefinition):
            task.internal_data["event_value"] = {"cycles": 1, "next": past.isoformat(), "duration": 1.0}
        elif isinstance(definition, (DurationTimerEventDefinition, TimeDateEventDefinition)):
            task.internal_data["event_value"] = past.isoformat()
    wf.refresh_timers()
