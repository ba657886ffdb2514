"""Working-day calendar: Vietnamese office deadlines count Monday–Friday, skipping holidays and announced swaps.

Counting rule (Bộ luật Dân sự 2015, Điều 147, as used by administrative procedures): a deadline of n working days
starts on the working day after the local calendar date of receipt, whatever the hour (before 07:30, after
17:00, or on a day off), and ends at the close of office hours (17:00 local) of the n-th working day.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Iterable
from zoneinfo import ZoneInfo

import holidays

from engine.errors import InvalidInput

EXTRA_DAY_OFF_NAME = "Ngày nghỉ bù"
_DAY = timedelta(days=1)

# Swaps the government announced that the pinned `holidays` release does not carry (it knows 2025's and 2026's
# 2/9 swaps). Công văn 12729/VPCP-KGVX (25/12/2025): Friday 2/1/2026 off, Saturday 10/1/2026 worked instead.
ANNOUNCED_DAYS_OFF: dict[date, str] = {date(2026, 1, 2): "Ngày nghỉ (thay cho ngày 10/01/2026)"}
ANNOUNCED_MAKEUP_WORKDAYS: frozenset[date] = frozenset({date(2026, 1, 10)})


class InvalidDeadline(InvalidInput, ValueError):
    """A deadline descriptor that cannot be read; a ValueError and an engine 400 at once."""


@dataclass(frozen=True)
class WorkingHours:
    """Office hours in local time; the lunch break is ignored, as offices count the whole span."""

    start: time = time(7, 30)
    end: time = time(17, 0)

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError("Giờ làm việc không hợp lệ / Office hours must start before they end")


@lru_cache(maxsize=None)
def _vn_holidays(year: int) -> holidays.HolidayBase:
    """Package holidays around one year, shared by every calendar (swaps may cross a year boundary)."""
    years = range(year - 1, year + 2)
    try:
        return holidays.country_holidays("VN", years=years, language="vi")
    except (NotImplementedError, ValueError, KeyError):  # a release without the Vietnamese locale
        return holidays.country_holidays("VN", years=years)


class WorkingCalendar:
    """Working days and office hours in one time zone; takes aware datetimes, returns aware UTC."""

    def __init__(
        self,
        tz: str = "Asia/Ho_Chi_Minh",
        extra_days_off: Iterable[date] = (),
        makeup_workdays: Iterable[date] = (),
        hours: WorkingHours = WorkingHours(),
        years: Iterable[int] | None = None,
    ) -> None:
        self.tz = ZoneInfo(tz)
        self.hours = hours
        self._extra_off = frozenset(extra_days_off)
        self._makeup = frozenset(makeup_workdays)
        if clash := self._extra_off & self._makeup:
            listed = ", ".join(sorted(d.isoformat() for d in clash))
            raise ValueError(f"Ngày vừa nghỉ vừa làm bù: {listed} / Dates both off and make-up workdays: {listed}")
        self._years: dict[int, tuple[dict[date, str], frozenset[date]]] = {}
        for year in years or ():
            self._year(year)

    def _year(self, year: int) -> tuple[dict[date, str], frozenset[date]]:
        """(named days off, forced working days) of one year, computed once: explicit settings win."""
        cached = self._years.get(year)
        if cached is None:
            pkg = _vn_holidays(year)
            work = (set(pkg.weekend_workdays) | ANNOUNCED_MAKEUP_WORKDAYS) - self._extra_off | self._makeup
            work = {d for d in work if d.year == year}
            off = {d: str(name) for d, name in pkg.items() if d.year == year}
            off.update((d, name) for d, name in ANNOUNCED_DAYS_OFF.items() if d.year == year)
            for d in self._extra_off:
                if d.year == year:
                    off.setdefault(d, EXTRA_DAY_OFF_NAME)
            for d in work:
                off.pop(d, None)
            cached = self._years[year] = (off, frozenset(work))
        return cached

    def _local(self, moment: datetime) -> datetime:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("Thời điểm phải có múi giờ / An aware datetime is required")
        return moment.astimezone(self.tz)

    def _day(self, d: date | datetime) -> date:
        return self._local(d).date() if isinstance(d, datetime) else d

    def _at(self, d: date, t: time) -> datetime:
        """A local wall-clock moment as aware UTC."""
        return datetime.combine(d, t, tzinfo=self.tz).astimezone(timezone.utc)

    def _step(self, d: date, direction: int = 1) -> date:
        """The nearest working day strictly after (or before) d."""
        delta = _DAY * direction
        d += delta
        while not self.is_working_day(d):
            d += delta
        return d

    def is_working_day(self, d: date) -> bool:
        """Make-up days work even at weekends; public holidays, extra days off and weekends do not."""
        d = self._day(d)
        off, work = self._year(d.year)
        return d in work or (d.weekday() < 5 and d not in off)

    def holiday_name(self, d: date) -> str | None:
        """The day's holiday name in Vietnamese (package name, or "Ngày nghỉ bù" for announced extra days)."""
        d = self._day(d)
        return self._year(d.year)[0].get(d)

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """17:00 local of the n-th working day after start's local date; n=0 is the close of start's day.

        n=0 ("trả trong ngày") gives the first close of business at or after start: today's if start is on a
        working day no later than 17:00, else the next working day's.
        """
        n = _count(n)
        local = self._local(start)
        d = local.date()
        if n == 0:
            today = self._at(d, self.hours.end)
            return today if self.is_working_day(d) and today >= start else self._at(self._step(d), self.hours.end)
        for _ in range(n):
            d = self._step(d)
        return self._at(d, self.hours.end)

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The earliest moment by which `hours` of office time on working days have elapsed since start."""
        if not hours >= 0:
            raise ValueError(f"Số giờ không hợp lệ: {hours!r} / Invalid number of hours: {hours!r}")
        cursor = self._local(start).astimezone(timezone.utc)
        remaining = timedelta(hours=hours)
        if not remaining:
            return cursor
        d = self._local(start).date()
        while True:
            if self.is_working_day(d):
                begin = max(cursor, self._at(d, self.hours.start))
                close = self._at(d, self.hours.end)
                if begin < close:
                    if begin + remaining <= close:
                        return begin + remaining
                    remaining -= close - begin
            d += _DAY

    def working_days_between(self, a: datetime, b: datetime) -> int:
        """Working days in (a's local date, b's local date]; negative when b is earlier ("quá hạn n ngày")."""
        da, db = self._local(a).date(), self._local(b).date()
        sign = 1
        if db < da:
            da, db, sign = db, da, -1
        count = 0
        while da < db:
            da += _DAY
            count += self.is_working_day(da)
        return sign * count

    def subtract_working_days(self, deadline: datetime, n: int) -> datetime:
        """Same local time on the n-th working day before the deadline's local date (reminders); n=0 is the deadline.

        For a deadline on a working day, working_days_between(result, deadline) == n.
        """
        n = _count(n)
        local = self._local(deadline)
        d = local.date()
        for _ in range(n):
            d = self._step(d, -1)
        return datetime.combine(d, local.time(), tzinfo=self.tz).astimezone(timezone.utc)


def _count(n: int | float) -> int:
    """A non-negative whole number of days (parse_duration hands out floats such as 5.0)."""
    if isinstance(n, bool) or not isinstance(n, (int, float)) or n < 0 or n != int(n):
        raise ValueError(f"Số ngày không hợp lệ: {n!r} / Invalid number of days: {n!r}")
    return int(n)


_NUM = r"([0-9]+(?:[.,][0-9]+)?)"
_WORKING_DAYS = re.compile(r"([0-9]+)\s*(?:wd|working\s+days?|ngày\s+làm\s+việc)", re.IGNORECASE)
_WORKING_HOURS = re.compile(_NUM + r"\s*(?:wh|working\s+hours?|giờ\s+làm\s+việc)", re.IGNORECASE)
_ISO = re.compile(rf"P(?:([0-9]+)W)?(?:([0-9]+)D)?(?:T(?=[0-9])(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?", re.IGNORECASE)


def parse_duration(spec: str) -> tuple[str, float]:
    """Read a deadline descriptor: "5wd"/"5 ngày làm việc", "8wh", or ISO 8601 "P3D"/"PT48H" (no years/months)."""
    text = unicodedata.normalize("NFC", spec).strip() if isinstance(spec, str) else ""
    if m := _WORKING_DAYS.fullmatch(text):
        return "working_days", float(m.group(1))
    if m := _WORKING_HOURS.fullmatch(text):
        return "working_hours", float(m.group(1).replace(",", "."))
    m = _ISO.fullmatch(text)
    if m and any(m.groups()):
        weeks, days, h, mins, secs = (float(g.replace(",", ".")) if g else 0.0 for g in m.groups())
        return "calendar", timedelta(weeks=weeks, days=days, hours=h, minutes=mins, seconds=secs).total_seconds()
    raise InvalidDeadline(f"Thời hạn không hợp lệ: {spec!r}", f"Invalid deadline: {spec!r}")
