"""Injected time: the engine and SpiffWorkflow's timers read the same clock, so tests never sleep."""

from __future__ import annotations

import contextvars
import os
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


class FileClock(Clock):
    """Test-only: the time written in a file, so a test can move the clock of server and worker subprocesses.

    The file holds an aware ISO 8601 instant (the clock stands still there) or `offset <seconds>`
    (real time shifted, like libfaketime). It is read at every call (a few microseconds: tests
    only); write it with `write_clock_file` (atomic replace). A missing file means real time.
    """

    def __init__(self, path: str):
        self.path = path
        self._key: str | None = None
        self._fixed: datetime | None = None
        self._offset = timedelta(0)

    def _reload(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                value = f.read().strip()
        except OSError:
            self._key, self._fixed, self._offset = None, None, timedelta(0)
            return
        if value == self._key:
            return
        key = value
        if value.startswith("offset"):
            self._fixed, self._offset = None, timedelta(seconds=float(value.split()[1]))
        else:
            fixed = datetime.fromisoformat(value)
            if fixed.tzinfo is None:
                raise ValueError(f"{CLOCK_FILE_ENV}: the time needs a UTC offset, not {value!r}")
            self._fixed, self._offset = fixed.astimezone(timezone.utc), timedelta(0)
        self._key = key

    def now(self) -> datetime:
        self._reload()
        if self._fixed is not None:
            return self._fixed
        return datetime.now(timezone.utc) + self._offset


def write_clock_file(path, value: datetime | float) -> None:
    """Set a FileClock atomically: an aware datetime (stands still) or an offset in seconds from real time."""
    text = f"offset {value}" if isinstance(value, (int, float)) else value.astimezone(timezone.utc).isoformat()
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# Tests only: DIEUPHOI_TEST_CLOCK_FILE makes the default clock of every engine in this process a FileClock.
CLOCK_FILE_ENV = "DIEUPHOI_TEST_CLOCK_FILE"
SYSTEM_CLOCK = FileClock(os.environ[CLOCK_FILE_ENV]) if os.environ.get(CLOCK_FILE_ENV) else Clock()
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
        if type(current) is Clock:  # real time
            return _real_datetime.now(tz)
        value = current.now()
        return value.astimezone(tz) if tz is not None else value.astimezone().replace(tzinfo=None)

    @classmethod
    def utcnow(cls):
        return cls.now(timezone.utc).replace(tzinfo=None)


# Scripts in models see this `datetime`, so `datetime.now()` there follows the engine's clock too.
ClockDatetime = _ClockDatetime


_spiff_timer.datetime = _ClockDatetime
