"""Timer start events: a process drawn with a timer start runs as a new case each cycle.

SpiffWorkflow runs a cycle start inside one instance; a government report cycle is a new
case each period ("báo cáo 6 tháng"). So on parse the start event's timer is taken out of
the model (bpmnxml.take_start_timers): every case starts at once, by hand or by schedule,
and the engine keeps one `start` row per process in the timer table that starts a fresh
case whenever it comes due.
"""

from __future__ import annotations

from datetime import datetime

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from engine.errors import InvalidModel


def first_run(start_timer: tuple[str, str], evaluate, now: datetime) -> tuple[datetime, int, float]:
    """(first due time, cycles (-1 = forever), period in seconds) from the start timer's expression."""
    kind, expression = start_timer
    try:
        value = evaluate(expression)
        if kind == "timeCycle":
            cycles, start, period = TimerEventDefinition.parse_iso_recurring_interval(value)
            return start, cycles, period.total_seconds()
        if kind == "timeDuration":
            delta = TimerEventDefinition.get_timedelta_from_start(TimerEventDefinition.parse_iso_duration(value), now)
            return now + delta, 1, 0.0
        return TimerEventDefinition.get_datetime(value), 1, 0.0
    except Exception as exc:  # noqa: BLE001 - a bad expression is the model's error
        raise InvalidModel(f"Biểu thức hẹn giờ khởi tạo không hợp lệ: {expression} ({exc})",
                           f"Invalid timer start expression: {expression} ({exc})") from None
