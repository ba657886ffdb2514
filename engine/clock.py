"""Injected time: the engine and SpiffWorkflow's timers read the same clock, so tests never sleep."""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator

import SpiffWorkflow.bpmn.specs.event_definitions.timer as _spiff_timer


class Clock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock(Clock):
    """A clock that only moves when told to (tests, replays)."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(timezone.utc)

    def advance(self, **delta) -> datetime:
        self._now += timedelta(**delta)
        return self._now


class NudgedClock(Clock):
    """Another clock, one microsecond later: SpiffWorkflow fires a timer only once it is strictly past
    due, and a tick at exactly the due time must fire it (never early, never a tick late)."""

    def __init__(self, base: Clock):
        self.base = base

    def now(self) -> datetime:
        return self.base.now() + timedelta(microseconds=1)


SYSTEM_CLOCK = Clock()
_current: contextvars.ContextVar[Clock] = contextvars.ContextVar("dieuphoi_clock", default=SYSTEM_CLOCK)


@contextmanager
def using(clock: Clock) -> Iterator[Clock]:
    """Make SpiffWorkflow's timer code see `clock` for the duration of one engine call."""
    token = _current.set(clock)
    try:
        yield clock
    finally:
        _current.reset(token)


_real_datetime = _spiff_timer.datetime


class _DatetimeMeta(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, _real_datetime)


class _ClockDatetime(_real_datetime, metaclass=_DatetimeMeta):
    """Spiff's timer module calls `datetime.now(timezone.utc)`; route that to the current clock."""

    @classmethod
    def now(cls, tz=None):
        current = _current.get()
        if current is SYSTEM_CLOCK:
            return _real_datetime.now(tz)
        value = current.now()
        return value.astimezone(tz) if tz is not None else value.astimezone().replace(tzinfo=None)

    @classmethod
    def utcnow(cls):
        return cls.now(timezone.utc).replace(tzinfo=None)


# Scripts in models see this `datetime`, so `datetime.now()` there follows the engine's clock too.
ClockDatetime = _ClockDatetime


_spiff_timer.datetime = _ClockDatetime
