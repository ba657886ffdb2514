"""Working-day calendar: deadlines in Hanoi local time, skipping weekends, VN public holidays and announced swaps."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays
import pytest

from engine.errors import InvalidInput
from engine.workdays import WorkingCalendar, WorkingHours, parse_duration

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - the deterministic sweep below still checks the invariants
    given = None

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
UTC = timezone.utc
CAL = WorkingCalendar()


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=HANOI)


def close_of(y: int, mo: int, d: int) -> datetime:
    """17:00 in Hanoi as the aware UTC datetime the API returns."""
    return datetime(y, mo, d, 10, 0, tzinfo=UTC)


# --- what the holidays package gives us -------------------------------------------------------------------------


def test_tet_2027_from_package_and_five_days_from_the_friday_before():
    vn = holidays.country_holidays("VN", years=2027, language="vi")
    lunar_new_year = [d for d, name in vn.items() if name == "Tết Nguyên Đán"]
    assert len(lunar_new_year) == 1
    first_day = lunar_new_year[0]
    assert date(2027, 1, 20) <= first_day <= date(2027, 2, 20)
    tet = sorted(d for d, name in vn.items() if "Tết" in name and "Dương lịch" not in name)
    assert all(date(2027, 1, 20) <= d <= date(2027, 2, 28) for d in tet)
    # The package grants five weekdays off around Mùng 1 (Sat 6/2/2027): Thu 4, Fri 5, Mon 8, Tue 9, Wed 10 Feb.
    assert [d for d in tet if d.weekday() < 5] == [date(2027, 2, d) for d in (4, 5, 8, 9, 10)]
    assert not any(CAL.is_working_day(d) for d in tet)

    # Submitted Friday 29/1/2027 16:00 (the last Friday before Tết), n=5; the Friday itself does not count:
    # Mon 1/2 (1), Tue 2/2 (2), Wed 3/2 (3), [Thu 4 – Wed 10 Tết], Thu 11/2 (4), Fri 12/2 (5) -> 12/2 17:00.
    friday = local(2027, 1, 29, 16)
    assert friday.weekday() == 4 and CAL.is_working_day(friday.date())
    assert CAL.add_working_days(friday, 5) == close_of(2027, 2, 12)
    # Cross-check against the package's own dates: the 5th weekday after the Friday that is not a Tết day.
    d, left = friday.date(), 5
    while left:
        d += timedelta(days=1)
        left -= d.weekday() < 5 and d not in tet
    assert d == date(2027, 2, 12)


def test_friday_13th_before_tet_2026():
    # Tết Bính Ngọ: Mon 16 – Fri 20/2/2026 off. Fri 13/2 16:00, n=5: Mon 23 (1) … Fri 27/2 (5).
    assert CAL.add_working_days(local(2026, 2, 13, 16), 5) == close_of(2026, 2, 27)


def test_package_days_2025_to_2027():
    off = {y: {d for d in holidays.country_holidays("VN", years=y) if d.weekday() < 5} for y in (2025, 2026, 2027)}
    assert {date(2025, 4, 7), date(2025, 4, 30), date(2025, 5, 1), date(2025, 5, 2)} <= off[2025]  # Hùng Kings, swap
    assert {date(2025, 9, 1), date(2025, 9, 2)} <= off[2025]  # 2/9 plus the extra day from 2025
    assert {date(2026, 4, 27), date(2026, 8, 31), date(2026, 9, 1), date(2026, 9, 2), date(2026, 11, 24)} <= off[2026]
    assert {date(2027, 9, 2), date(2027, 9, 3), date(2027, 5, 3)} <= off[2027]


def test_calendar_agrees_with_package_except_announced_2026_new_year_swap():
    d = date(2025, 1, 1)
    vn = holidays.country_holidays("VN", years=range(2025, 2029))
    differences = []
    while d < date(2029, 1, 1):
        if CAL.is_working_day(d) != vn.is_working_day(d):
            differences.append(d)
        d += timedelta(days=1)
    assert differences == [date(2026, 1, 2), date(2026, 1, 10)]
    assert not CAL.is_working_day(date(2026, 1, 2)) and CAL.is_working_day(date(2026, 1, 10))


def test_holiday_names_in_vietnamese():
    assert CAL.holiday_name(date(2025, 9, 2)) == "Quốc khánh"
    assert CAL.holiday_name(date(2027, 2, 6)) == "Tết Nguyên Đán"
    assert "Hùng Vương" in CAL.holiday_name(date(2025, 4, 7))
    assert CAL.holiday_name(date(2026, 12, 1)) is None
    assert CAL.holiday_name(date(2025, 4, 26)) is None  # make-up Saturday is a working day


# --- add_working_days --------------------------------------------------------------------------------------------


def test_30_4_and_1_5_skipped():
    # 2026: Mon 27/4 (Hùng Kings observed), Thu 30/4, Fri 1/5 off. Fri 24/4 10:00, n=3: Tue 28, Wed 29, Mon 4/5.
    assert CAL.add_working_days(local(2026, 4, 24, 10), 3) == close_of(2026, 5, 4)


def test_2_9_skipped_with_extra_day():
    # 2026: Mon 31/8 (swap), Tue 1/9, Wed 2/9 off. Fri 28/8 09:00, n=2: Thu 3/9 (1), Fri 4/9 (2).
    assert CAL.add_working_days(local(2026, 8, 28, 9), 2) == close_of(2026, 9, 4)
    # 2025: Mon 1/9 and Tue 2/9 off. Fri 29/8, n=1 -> Wed 3/9.
    assert CAL.add_working_days(local(2025, 8, 29, 9), 1) == close_of(2025, 9, 3)


def test_weekend_skipped():
    # Thu 3/12/2026 10:00, n=2: Fri 4/12 (1), Mon 7/12 (2).
    assert CAL.add_working_days(local(2026, 12, 3, 10), 2) == close_of(2026, 12, 7)


def test_package_makeup_saturday_counts():
    # 2025: Sat 26/4 worked in exchange for Fri 2/5. Fri 25/4 n=1 -> Sat 26/4; n=4 -> Mon 5/5.
    assert CAL.add_working_days(local(2025, 4, 25, 16), 1) == close_of(2025, 4, 26)
    assert CAL.add_working_days(local(2025, 4, 25, 16), 4) == close_of(2025, 5, 5)
    # 2026: Sat 22/8 worked in exchange for Mon 31/8.
    assert CAL.add_working_days(local(2026, 8, 21, 9), 1) == close_of(2026, 8, 22)


def test_configured_makeup_saturday_and_extra_day_off():
    cal = WorkingCalendar(extra_days_off=[date(2026, 12, 4)], makeup_workdays=[date(2026, 12, 12)])
    assert not cal.is_working_day(date(2026, 12, 4))
    assert cal.holiday_name(date(2026, 12, 4)) == "Ngày nghỉ bù"
    # Thu 3/12 n=1: Fri 4/12 is off -> Mon 7/12.
    assert cal.add_working_days(local(2026, 12, 3, 10), 1) == close_of(2026, 12, 7)
    assert CAL.add_working_days(local(2026, 12, 3, 10), 1) == close_of(2026, 12, 4)
    # Fri 11/12 n=1: Sat 12/12 is a make-up working day.
    assert cal.is_working_day(date(2026, 12, 12))
    assert cal.add_working_days(local(2026, 12, 11, 16), 1) == close_of(2026, 12, 12)
    assert CAL.add_working_days(local(2026, 12, 11, 16), 1) == close_of(2026, 12, 14)


def test_configuration_overrides_package_and_rejects_contradictions():
    # A make-up day overrides a package holiday (e.g. a wrong estimate for a future Tết).
    cal = WorkingCalendar(makeup_workdays=[date(2027, 2, 10)], years=[2027])
    assert cal.is_working_day(date(2027, 2, 10)) and cal.holiday_name(date(2027, 2, 10)) is None
    with pytest.raises(ValueError):
        WorkingCalendar(extra_days_off=[date(2026, 12, 4)], makeup_workdays=[date(2026, 12, 4)])
    with pytest.raises(ValueError):
        WorkingHours(start=time(17), end=time(8))


def test_announced_2026_new_year_swap():
    # Off Fri 2/1/2026, worked Sat 10/1/2026. Wed 31/12/2025 n=1 -> Mon 5/1; Fri 9/1 n=1 -> Sat 10/1.
    assert CAL.add_working_days(local(2025, 12, 31, 9), 1) == close_of(2026, 1, 5)
    assert CAL.add_working_days(local(2026, 1, 9, 9), 1) == close_of(2026, 1, 10)


def test_utc_evening_is_already_next_day_in_hanoi():
    start = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)  # Tue 1/12 01:00 local: counting starts Wed 2/12.
    assert CAL.add_working_days(start, 1) == close_of(2026, 12, 2)
    assert CAL.add_working_days(start, 1).tzinfo == UTC


def test_hour_of_receipt_does_not_matter_on_the_day():
    # Before office hours, during, and after: all received on Mon 7/12, so day 1 is Tue 8/12.
    for hour in (6, 10, 19):
        assert CAL.add_working_days(local(2026, 12, 7, hour), 1) == close_of(2026, 12, 8)
    # Received on a Saturday: day 1 is Monday.
    assert CAL.add_working_days(local(2026, 12, 5, 10), 1) == close_of(2026, 12, 7)


def test_zero_days_is_close_of_the_same_working_day():
    assert CAL.add_working_days(local(2026, 12, 7, 10), 0) == close_of(2026, 12, 7)
    assert CAL.add_working_days(local(2026, 12, 7, 18), 0) == close_of(2026, 12, 8)
    assert CAL.add_working_days(local(2026, 12, 5, 10), 0) == close_of(2026, 12, 7)


def test_bad_arguments():
    with pytest.raises(ValueError):
        CAL.add_working_days(datetime(2026, 12, 7, 10), 1)  # naive
    with pytest.raises(ValueError):
        CAL.add_working_days(local(2026, 12, 7, 10), -1)
    with pytest.raises(ValueError):
        CAL.add_working_days(local(2026, 12, 7, 10), 1.5)
    assert CAL.add_working_days(local(2026, 12, 7, 10), 2.0) == close_of(2026, 12, 9)
    with pytest.raises(ValueError):
        CAL.add_working_hours(local(2026, 12, 7, 10), -1)


# --- add_working_hours -------------------------------------------------------------------------------------------


def as_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def test_working_hours_across_weekend():
    # Fri 4/12 15:00 + 8h: 2h Friday, then Mon 7/12 07:30 + 6h = 13:30.
    result = CAL.add_working_hours(local(2026, 12, 4, 15), 8)
    assert result == as_utc(local(2026, 12, 7, 13, 30)) and result.tzinfo == UTC


def test_working_hours_across_holiday():
    # Wed 29/4/2026 16:00 + 8h: 1h Wednesday, Thu 30/4 – Sun 3/5 off, Mon 4/5 07:30 + 7h = 14:30.
    assert CAL.add_working_hours(local(2026, 4, 29, 16), 8) == as_utc(local(2026, 5, 4, 14, 30))


def test_working_hours_edges():
    assert CAL.add_working_hours(local(2026, 12, 7, 6), 1) == as_utc(local(2026, 12, 7, 8, 30))  # before opening
    assert CAL.add_working_hours(local(2026, 12, 7, 18), 0.5) == as_utc(local(2026, 12, 8, 8))  # after closing
    assert CAL.add_working_hours(local(2026, 12, 7, 7, 30), 9.5) == as_utc(local(2026, 12, 7, 17))  # whole day
    assert CAL.add_working_hours(local(2026, 12, 5, 10), 0) == as_utc(local(2026, 12, 5, 10))
    short = WorkingCalendar(hours=WorkingHours(start=time(8), end=time(12)))
    assert short.add_working_hours(local(2026, 12, 7, 11), 2) == as_utc(local(2026, 12, 8, 9))


# --- working_days_between / subtract_working_days ----------------------------------------------------------------


def test_working_days_between():
    monday = local(2026, 11, 30, 9)
    assert CAL.working_days_between(monday, local(2026, 12, 2, 17)) == 2
    assert CAL.working_days_between(monday, local(2026, 11, 30, 23)) == 0
    assert CAL.working_days_between(local(2026, 12, 2, 17), monday) == -2
    # Across the weekend and Vietnam Cultural Day (Tue 24/11/2026).
    assert CAL.working_days_between(local(2026, 11, 20, 9), local(2026, 11, 25, 9)) == 2
    # Compares local dates: 23:00Z Monday is Tuesday in Hanoi.
    assert CAL.working_days_between(monday, datetime(2026, 11, 30, 23, tzinfo=UTC)) == 1


def test_subtract_working_days():
    deadline = close_of(2026, 12, 7)  # Mon 17:00
    assert CAL.subtract_working_days(deadline, 1) == close_of(2026, 12, 4)
    assert CAL.subtract_working_days(deadline, 0) == deadline
    # Mon 23/2/2026 10:00 one working day back skips Tết: Fri 13/2 10:00.
    assert CAL.subtract_working_days(local(2026, 2, 23, 10), 1) == as_utc(local(2026, 2, 13, 10))
    assert CAL.working_days_between(CAL.subtract_working_days(deadline, 3), deadline) == 3


# --- parse_duration ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("5wd", ("working_days", 5)),
        ("5 working days", ("working_days", 5)),
        ("1 working day", ("working_days", 1)),
        ("05 ngày làm việc", ("working_days", 5)),
        ("5 NGÀY LÀM VIỆC", ("working_days", 5)),
        ("8wh", ("working_hours", 8)),
        ("1,5 giờ làm việc", ("working_hours", 1.5)),
        ("P3D", ("calendar", 3 * 86400)),
        ("PT48H", ("calendar", 48 * 3600)),
        ("P1W", ("calendar", 7 * 86400)),
        ("P1DT2H30M", ("calendar", 86400 + 2 * 3600 + 1800)),
        ("PT0.5H", ("calendar", 1800)),
    ],
)
def test_parse_duration_good(spec, expected):
    assert parse_duration(spec) == expected


def test_parse_duration_decomposed_unicode():
    import unicodedata

    assert parse_duration(unicodedata.normalize("NFD", "3 ngày làm việc")) == ("working_days", 3)


@pytest.mark.parametrize(
    "spec", ["abc", "", "5", "5 ngày", "-5wd", "1.5wd", "P", "PT", "P3DT", "P1M", "P1Y", "3D", None]
)
def test_parse_duration_bad(spec):
    with pytest.raises(ValueError) as caught:
        parse_duration(spec)
    assert "không hợp lệ" in str(caught.value) and "Invalid deadline" in str(caught.value)
    assert isinstance(caught.value, InvalidInput)


def test_parse_duration_message_format():
    with pytest.raises(ValueError, match=r"^Thời hạn không hợp lệ: 'abc' / Invalid deadline: 'abc'$"):
        parse_duration("abc")


# --- invariants --------------------------------------------------------------------------------------------------


def check_deadline(start: datetime, n: int) -> None:
    """n >= 1: a working day at 17:00 local, later than start, exactly n working days after start's local date.

    n == 0: the first 17:00 of a working day at or after start (0 or 1 working days away).
    """
    result = CAL.add_working_days(start, n)
    assert result.tzinfo == UTC
    in_hanoi = result.astimezone(HANOI)
    assert in_hanoi.time() == time(17) and CAL.is_working_day(in_hanoi.date())
    gap = CAL.working_days_between(start, result)
    if n:
        assert result > start and gap == n
        assert CAL.subtract_working_days(result, n).astimezone(HANOI).date() <= start.astimezone(HANOI).date()
    else:
        assert result >= start
        start_day = start.astimezone(HANOI).date()
        same_day = CAL.is_working_day(start_day) and start.astimezone(HANOI).time() <= time(17)
        assert gap == (0 if same_day else 1)


def test_invariants_every_day_2025_to_2028():
    start = local(2025, 1, 1, 5)
    i = 0
    while start.year < 2029:
        check_deadline(start, i % 31)
        start += timedelta(hours=7)  # walks through every hour of the day over the years
        i += 1


if given is not None:

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(
        start=st.datetimes(
            min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31, 23, 59), timezones=st.just(UTC)
        ),
        n=st.integers(min_value=0, max_value=30),
    )
    def test_add_working_days_property(start, n):
        check_deadline(start, n)

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(
        start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)),
        hours=st.floats(min_value=0.01, max_value=80, allow_nan=False),
    )
    def test_add_working_hours_property(start, hours):
        result = CAL.add_working_hours(start, hours)
        assert result > start
        in_hanoi = result.astimezone(HANOI)
        assert CAL.is_working_day(in_hanoi.date()) and time(7, 30) < in_hanoi.time() <= time(17)
