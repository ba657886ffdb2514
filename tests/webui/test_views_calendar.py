"""Lịch làm việc (admin): public holidays read-only, announced days off and make-up working days added and removed."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from engine.models import AuditEvent, CalendarDay
from tests.webui.views_helpers import csrf_token_of, text_of
from webui import create_app

pytest_plugins = ("tests.webui.views_fixtures",)


def _days(engine) -> dict[date, tuple[str, str]]:
    with engine.db.read() as session:
        return {r.day: (r.kind, r.note) for r in session.scalars(select(CalendarDay))}


def _calendar_events(engine) -> list[AuditEvent]:
    with engine.db.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == "calendar_changed")
                                    .order_by(AuditEvent.id)))


def test_the_page_lists_the_years_public_holidays_and_is_linked_from_the_admin_menu(browser_for):
    page = browser_for("admin").get("/admin/calendar")
    assert page.status_code == 200
    text = text_of(page)
    assert "Lịch làm việc" in text and "Năm 2026" in text
    assert "02/09/2026 Quốc khánh" in text and "26/04/2026 Ngày Giỗ Tổ Hùng Vương" in text
    assert "17/02/2026 Tết Nguyên Đán" in text
    assert "22/08/2026 Ngày làm bù Làm bù" in text  # a swap the holidays package knows
    assert "Chưa nhập ngày nào trong năm này." in text
    assert 'href="/admin/calendar"' in browser_for("admin").get("/admin/users").get_data(as_text=True)
    assert "Tết Nguyên Đán" in text_of(browser_for("admin").get("/admin/calendar?year=2027"))
    assert "Năm 2026" in text_of(browser_for("admin").get("/admin/calendar?year=abc"))


def test_add_a_day_off_and_a_make_up_working_day(browser_for, engine, people, clock):
    admin = browser_for("admin")
    assert engine.calendar.is_working_day(date(2026, 12, 31))
    response = admin.post("/admin/calendar", data={"day": "31/12/2026", "kind": "off", "note": "CV 123/VPCP"})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/calendar?year=2026"
    admin.post("/admin/calendar", data={"day": "05/12/2026", "kind": "work", "note": ""})
    assert _days(engine) == {date(2026, 12, 31): ("off", "CV 123/VPCP"), date(2026, 12, 5): ("work", "")}
    assert not engine.calendar.is_working_day(date(2026, 12, 31))  # deadlines follow at once
    assert engine.calendar.is_working_day(date(2026, 12, 5))  # a Saturday worked
    events = _calendar_events(engine)
    assert [(e.actor_id, e.details["day"], e.details["kind"]) for e in events] == [
        (people["admin"], "2026-12-31", "off"), (people["admin"], "2026-12-05", "work")]
    text = text_of(admin.get("/admin/calendar"))
    assert "Đã lưu ngày 05/12/2026." in text
    assert "31/12/2026 Nghỉ bù CV 123/VPCP 30/11/2026 09:00 Admin" in text
    assert "05/12/2026 Làm bù" in text
    log = text_of(admin.get("/admin/log"))
    assert "Thay đổi lịch làm việc 31/12/2026: ngày nghỉ (CV 123/VPCP)" in log


def test_adding_the_same_day_again_changes_its_kind(browser_for, engine):
    admin = browser_for("admin")
    admin.post("/admin/calendar", data={"day": "31/12/2026", "kind": "off"})
    admin.post("/admin/calendar", data={"day": "2026-12-31", "kind": "work", "note": "đổi"})
    assert _days(engine) == {date(2026, 12, 31): ("work", "đổi")}


@pytest.mark.parametrize("form, field, message", [
    ({"day": "31/02/2026", "kind": "off"}, "day", "Ngày không hợp lệ, nhập theo dạng dd/mm/yyyy."),
    ({"day": "abc", "kind": "off"}, "day", "Ngày không hợp lệ, nhập theo dạng dd/mm/yyyy."),
    ({"day": "12/31/2026", "kind": "off"}, "day", "Ngày không hợp lệ, nhập theo dạng dd/mm/yyyy."),
    ({"day": "", "kind": "off"}, "day", "Vui lòng nhập ngày."),
    ({"day": "01/01/1999", "kind": "off"}, "day", "Năm phải từ 2000 đến 2100."),
    ({"day": "31/12/2026", "kind": "holiday"}, "kind", "Vui lòng chọn loại ngày: nghỉ bù hoặc làm bù."),
    ({"day": "31/12/2026"}, "kind", "Vui lòng chọn loại ngày: nghỉ bù hoặc làm bù."),
    ({"day": "31/12/2026", "kind": "off", "note": "x" * 256}, "note", "Ghi chú tối đa 255 ký tự."),
])
def test_bad_input_is_refused_with_a_message_next_to_the_field_and_changes_nothing(browser_for, engine, form, field,
                                                                                   message):
    response = browser_for("admin").post("/admin/calendar", data=form)
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert f'id="{field}-err" role="alert">{message}</p>' in body
    if form.get("day"):
        assert f'value="{form["day"]}"' in body  # what was typed is kept
    assert _days(engine) == {} and _calendar_events(engine) == []


def test_remove_a_day(browser_for, engine):
    admin = browser_for("admin")
    admin.post("/admin/calendar", data={"day": "31/12/2026", "kind": "off"})
    assert not engine.calendar.is_working_day(date(2026, 12, 31))
    response = admin.post("/admin/calendar/2026-12-31/delete")
    assert response.status_code == 302
    assert _days(engine) == {}
    assert engine.calendar.is_working_day(date(2026, 12, 31))
    assert [e.details["kind"] for e in _calendar_events(engine)] == ["off", None]
    assert "Đã bỏ ngày 31/12/2026 khỏi lịch." in text_of(admin.get(response.headers["Location"]))
    assert admin.post("/admin/calendar/2026-12-31/delete").status_code == 404  # already gone
    assert admin.post("/admin/calendar/31-12-2026/delete").status_code == 404
    assert len(_calendar_events(engine)) == 2


def test_staff_and_supervisors_cannot_reach_the_calendar(browser_for, engine):
    browser_for("admin").post("/admin/calendar", data={"day": "31/12/2026", "kind": "off"})
    for name in ("nn.cv", "nn.ld", "ubnd.ld"):
        assert browser_for(name).get("/admin/calendar").status_code == 403
        assert browser_for(name).post("/admin/calendar", data={"day": "01/12/2026", "kind": "off"}).status_code == 403
        assert browser_for(name).post("/admin/calendar/2026-12-31/delete").status_code == 403
    anonymous = browser_for(None).post("/admin/calendar", data={"day": "01/12/2026", "kind": "off"})
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert _days(engine) == {date(2026, 12, 31): ("off", "")}
    assert len(_calendar_events(engine)) == 1


def test_the_calendar_forms_need_the_csrf_token(engine, people, browser_for):
    guarded = create_app(engine, {"TESTING": True})
    client = guarded.test_client()
    with client.session_transaction() as session:
        session["_user_id"], session["_fresh"] = str(people["admin"]), True
    assert client.post("/admin/calendar", data={"day": "31/12/2026", "kind": "off"}).status_code == 400
    assert _days(engine) == {}
    token = csrf_token_of(client.get("/admin/calendar"))
    assert client.post("/admin/calendar", data={"day": "31/12/2026", "kind": "off", "csrf_token": token}
                       ).status_code == 302
    assert client.post("/admin/calendar/2026-12-31/delete").status_code == 400
    assert client.post("/admin/calendar/2026-12-31/delete", data={"csrf_token": token}).status_code == 302
    with engine.db.read() as session:
        assert session.scalar(select(func.count()).select_from(CalendarDay)) == 0


def test_the_calendar_in_english(browser_for):
    client = browser_for("admin")
    client.get("/lang/en")
    text = text_of(client.get("/admin/calendar"))
    assert "Working calendar" in text and "Public holidays" in text and "National Day" in text
    refused = text_of(client.post("/admin/calendar", data={"day": "31/02/2026", "kind": "off"}))
    assert "Invalid date, use dd/mm/yyyy." in refused and "Ngày không hợp lệ" not in refused
