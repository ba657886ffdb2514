"""Administration pages: only administrators; users, organisations, substitutes, definitions, mail, timers."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from engine import directory
from engine.models import AuditEvent, Definition, OutboxMessage, Position, Substitute, Timer, User
from tests.webui.views_helpers import text_of
from workflows import WORKFLOWS_DIR

pytest_plugins = ("tests.webui.views_fixtures",)

ADMIN_PAGES = ["/admin/", "/admin/users", "/admin/organisations", "/admin/substitutes", "/admin/definitions",
               "/admin/outbox", "/admin/timers", "/admin/log", "/admin/calendar"]
ADMIN_POSTS = ["/admin/users", "/admin/organisations/merge", "/admin/substitutes", "/admin/definitions",
               "/admin/outbox/retry", "/admin/timers/retry", "/admin/calendar", "/admin/calendar/2026-12-01/delete"]


def test_only_administrators_reach_the_admin_pages(browser_for, people):
    for path in ADMIN_PAGES:
        assert browser_for("admin").get(path).status_code == 200, path
        assert browser_for("nn.ld").get(path).status_code == 403, path
        assert browser_for("ubnd.ld").get(path).status_code == 403, path
        anonymous = browser_for(None).get(path)
        assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"], path
    for path in ADMIN_POSTS:
        assert browser_for("nn.ld").post(path, data={}).status_code == 403, path
    assert browser_for("nn.cv").post(f"/admin/users/{people['nn.cv']}/grant_admin").status_code == 403
    assert "Quản trị" not in text_of(browser_for("nn.cv").get("/")).split("Đăng xuất")[0]


def test_forbidden_page_is_in_the_users_language(browser_for):
    page = browser_for("nn.cv").get("/admin/users")
    assert page.status_code == 403 and "Không có quyền truy cập" in text_of(page)
    browser_for("nn.cv").get("/lang/en")
    assert "Access denied" in text_of(browser_for("nn.cv").get("/admin/users"))


def test_create_a_user_with_a_position(browser_for, engine):
    response = browser_for("admin").post("/admin/users", data={
        "username": "Tc.Cv", "full_name": "Lê Thị Hoa", "email": "tc.cv@dieuphoi.local", "password": "MatKhau@2026",
        "org_code": "SO_TC", "role": "staff"})
    assert response.status_code == 302
    with engine.db.read() as session:
        user = session.scalar(select(User).where(User.username == "tc.cv"))
        assert user.full_name == "Lê Thị Hoa" and user.password_hash
        assert [(p.org_code, p.role) for p in user.positions] == [("SO_TC", "staff")]
    page = text_of(browser_for("admin").get(response.headers["Location"]))
    assert "Lê Thị Hoa" in page and "Sở Tài chính" in page
    duplicate = browser_for("admin").post("/admin/users", data={"username": "tc.cv", "full_name": "X"})
    assert "đã tồn tại" in text_of(browser_for("admin").get(duplicate.headers["Location"]))


def test_positions_password_and_lock(browser_for, engine, people):
    admin = browser_for("admin")
    user_id = people["nn.cv2"]
    assert admin.post(f"/admin/users/{user_id}/positions", data={"org_code": "SO_YT", "role": "supervisor"}
                      ).status_code == 302
    with engine.db.read() as session:
        position = session.scalar(select(Position).where(Position.user_id == user_id, Position.org_code == "SO_YT"))
    assert position.role == "supervisor"
    admin.post(f"/admin/users/{user_id}/positions/{position.id}/delete")
    admin.post(f"/admin/users/{user_id}/password", data={"password": "MoiMoi@2027"})
    admin.post(f"/admin/users/{user_id}/deactivate")
    with engine.db.read() as session:
        user = session.get(User, user_id)
        assert not user.active and user.password_hash
        assert session.get(Position, position.id) is None
    short = admin.post(f"/admin/users/{user_id}/password", data={"password": "ngan"})
    assert "ít nhất 8 ký tự" in text_of(admin.get(short.headers["Location"]))
    admin.post(f"/admin/users/{people['admin']}/deactivate")  # never lock yourself out
    with engine.db.read() as session:
        assert session.get(User, people["admin"]).active


def test_merge_an_organisation_moves_its_open_work(browser_for, engine, people, proposal):
    admin = browser_for("admin")
    response = admin.post("/admin/organisations/merge", data={"source": "SO_NNPTNT", "target": "SO_KHCN"})
    assert response.status_code == 302
    page = text_of(admin.get(response.headers["Location"]))
    assert "Đã sáp nhập SO_NNPTNT vào SO_KHCN" in page and "1 việc đang mở" in page
    assert "Đã sáp nhập vào Sở Khoa học và Công nghệ" in page
    again = admin.post("/admin/organisations/merge", data={"source": "SO_NNPTNT", "target": "SO_KHCN"})
    assert "đã được sáp nhập" in text_of(admin.get(again.headers["Location"]))


def test_substitutes(browser_for, engine, people):
    admin = browser_for("admin")
    response = admin.post("/admin/substitutes", data={
        "user_id": people["nn.ld"], "substitute_id": people["nn.cv"], "starts_on": "30/11/2026",
        "ends_on": "04/12/2026"})
    assert response.status_code == 302
    page = text_of(admin.get("/admin/substitutes"))
    assert "Nn Ld" in page and "30/11/2026" in page and "04/12/2026" in page and "Đang hiệu lực" in page
    bad = admin.post("/admin/substitutes", data={"user_id": people["nn.ld"], "substitute_id": people["nn.cv"],
                                                 "starts_on": "31/02/2026", "ends_on": "04/12/2026"})
    assert "Ngày không hợp lệ" in text_of(admin.get(bad.headers["Location"]))
    with engine.db.read() as session:
        row = session.scalar(select(Substitute))
    admin.post(f"/admin/substitutes/{row.id}/delete")
    with engine.db.read() as session:
        assert session.scalar(select(Substitute)) is None


def _files(folder):
    return [(io.BytesIO(p.read_bytes()), p.name) for p in sorted(folder.iterdir()) if p.is_file()]


def test_deploy_a_process_and_see_its_versions(browser_for, engine, people, amendment):
    admin = browser_for("admin")
    folder = WORKFLOWS_DIR / "du_toan_kinh_phi"
    response = admin.post("/admin/definitions", data={"files": _files(folder)}, content_type="multipart/form-data")
    assert response.status_code == 302
    page = text_of(admin.get("/admin/definitions"))
    assert "Dự toán kinh phí khoa học và công nghệ hằng năm" in page
    assert "Đã triển khai quy trình du_toan_kinh_phi, phiên bản 1." in page
    same = admin.post("/admin/definitions", data={"files": _files(folder)}, content_type="multipart/form-data")
    assert "không có gì thay đổi" in text_of(admin.get(same.headers["Location"]))
    engine.start_instance(people["nn.cv"], "sua_doi_ke_hoach", {})
    with engine.db.read() as session:
        definition_id = session.scalar(select(Definition.id).where(Definition.process_key == "sua_doi_ke_hoach"))
    detail = text_of(admin.get(f"/admin/definitions/{definition_id}"))
    assert "Hồ sơ chạy trên phiên bản này" in detail and "Đang xử lý" in detail


@pytest.mark.parametrize("name, body, expected", [
    ("hong.bpmn", b"<bpmn:definitions", "Không triển khai được"),
    ("bom.bpmn", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', "DOCTYPE"),
])
def test_invalid_models_are_refused_with_the_reason(browser_for, engine, name, body, expected):
    response = browser_for("admin").post("/admin/definitions", data={"files": [(io.BytesIO(body), name)]},
                                         content_type="multipart/form-data")
    assert response.status_code in (400, 422)
    assert expected in text_of(response)
    with engine.db.read() as session:
        assert session.scalar(select(Definition.id)) is None


def test_mail_log_and_retry(browser_for, engine, proposal):
    with engine.db.write() as session:
        first = session.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id))
        session.execute(update(OutboxMessage).where(OutboxMessage.id == first)
                        .values(state="failed", attempts=5, last_error="550 mailbox unavailable"))
    admin = browser_for("admin")
    page = text_of(admin.get("/admin/outbox?state=failed"))
    assert "550 mailbox unavailable" in page and "Gửi lỗi" in page
    assert "Các lần gửi" in text_of(admin.get(f"/admin/outbox/{first}"))
    admin.post("/admin/outbox/retry", data={"ids": [str(first)]})
    with engine.db.read() as session:
        assert session.get(OutboxMessage, first).state == "pending"


def test_failed_timers_and_retry(browser_for, engine, people):
    engine.deploy_path(WORKFLOWS_DIR / "du_toan_kinh_phi")
    engine.start_instance(people["nn.cv"], "du_toan_kinh_phi", {"nam_ngan_sach": 2027})
    with engine.db.write() as session:
        timer = session.scalar(select(Timer.id).order_by(Timer.id))
        session.execute(update(Timer).where(Timer.id == timer).values(state="failed", last_error="boom"))
    admin = browser_for("admin")
    assert "boom" in text_of(admin.get("/admin/timers"))
    admin.post("/admin/timers/retry", data={"ids": [str(timer)]})
    with engine.db.read() as session:
        assert session.get(Timer, timer).state == "pending"
    assert "Không có hẹn giờ nào bị lỗi." in text_of(admin.get("/admin/timers"))


# ------------------------------------------------------------------ administration log
@pytest.fixture
def since(engine, people) -> int:
    """The last audit row before the test acts (creating the fixtures' people is audited too)."""
    with engine.db.read() as session:
        return session.scalar(select(func.max(AuditEvent.id))) or 0


def _admin_events(engine, since: int) -> list[AuditEvent]:
    with engine.db.read() as session:
        return list(session.scalars(select(AuditEvent).where(
            AuditEvent.id > since, AuditEvent.action.in_([a.value for a in directory.ADMIN_ACTIONS]))
            .order_by(AuditEvent.id)))


def test_every_directory_change_from_the_admin_pages_is_audited_with_the_acting_admin(browser_for, engine, people,
                                                                                       clock, since):
    admin = browser_for("admin")
    admin.post("/admin/users", data={"username": "tc.cv", "full_name": "Lê Thị Hoa", "password": "MatKhau@2026",
                                     "org_code": "SO_TC", "role": "staff"})
    with engine.db.read() as session:
        new_id = session.scalar(select(User.id).where(User.username == "tc.cv"))
    clock.advance(minutes=1)
    admin.post(f"/admin/users/{new_id}/positions", data={"org_code": "SO_YT", "role": "supervisor"})
    with engine.db.read() as session:
        position = session.scalar(select(Position.id).where(Position.user_id == new_id, Position.org_code == "SO_YT"))
    admin.post(f"/admin/users/{new_id}/positions/{position}/delete")
    admin.post(f"/admin/users/{new_id}/password", data={"password": "MoiMoi@2027"})
    admin.post(f"/admin/users/{new_id}/deactivate")
    admin.post(f"/admin/users/{new_id}/deactivate")  # no change: nothing to record
    admin.post(f"/admin/users/{new_id}/activate")
    admin.post(f"/admin/users/{new_id}/grant_admin")
    admin.post(f"/admin/users/{new_id}/revoke_admin")
    admin.post("/admin/substitutes", data={"user_id": people["nn.ld"], "substitute_id": people["nn.cv"],
                                           "starts_on": "30/11/2026", "ends_on": "04/12/2026"})
    with engine.db.read() as session:
        row = session.scalar(select(Substitute.id))
    admin.post(f"/admin/substitutes/{row}/delete")
    admin.post("/admin/organisations/merge", data={"source": "SO_NNPTNT", "target": "SO_KHCN"})

    events = _admin_events(engine, since)
    assert [e.action for e in events] == [
        "user_created", "position_added", "position_removed", "password_reset", "user_updated", "user_updated",
        "user_updated", "user_updated", "substitute_added", "substitute_removed", "organisation_merged"]
    assert {e.actor_id for e in events} == {people["admin"]}
    assert all(e.instance_id is None for e in events)
    created, added, removed, reset = events[:4]
    assert created.details["username"] == "tc.cv" and created.details["positions"] == [["SO_TC", "staff"]]
    assert created.at == clock.now() - timedelta(minutes=1)
    assert (added.details["user_id"], added.details["org"], added.details["role"]) == (new_id, "SO_YT", "supervisor")
    assert (removed.details["org"], removed.details["role"]) == ("SO_YT", "supervisor")
    assert reset.details == {"user_id": new_id, "username": "tc.cv"}
    assert [e.details["changes"] for e in events[4:8]] == [
        {"active": False}, {"active": True}, {"is_admin": True}, {"is_admin": False}]
    assert events[8].details["substitute_username"] == "nn.cv" and events[8].details["starts_on"] == "2026-11-30"
    with engine.db.read() as session:
        password_hash = session.get(User, new_id).password_hash
    for e in events:  # never a password nor its hash
        text = json.dumps(e.details, ensure_ascii=False)
        assert "MatKhau" not in text and "MoiMoi" not in text and password_hash not in text and "argon" not in text


def test_refused_changes_leave_no_audit_row(browser_for, engine, people, since):
    admin = browser_for("admin")
    admin.post("/admin/users", data={"username": "nn.cv", "full_name": "trùng"})  # taken
    admin.post(f"/admin/users/{people['nn.cv']}/positions", data={"org_code": "KHONG_CO", "role": "staff"})
    admin.post(f"/admin/users/{people['nn.cv']}/password", data={"password": "ngan"})
    admin.post(f"/admin/users/{people['admin']}/deactivate")
    admin.post("/admin/substitutes", data={"user_id": people["nn.ld"], "substitute_id": people["nn.ld"],
                                           "starts_on": "30/11/2026", "ends_on": "04/12/2026"})
    browser_for("nn.ld").post(f"/admin/users/{people['nn.cv']}/deactivate")
    assert _admin_events(engine, since) == []


def test_own_password_change_is_in_the_log_too(browser_for, engine, people):
    from tests.webui.views_helpers import PASSWORD

    user = people.add("tc.cv", ("SO_TC", "staff"), password=PASSWORD)
    since = _admin_events(engine, 0)[-1].id
    client = browser_for("tc.cv")
    assert client.post("/password", data={"current_password": PASSWORD, "new_password": "MoiMoi@2027",
                                          "confirm_password": "MoiMoi@2027"}).status_code == 302
    [event] = _admin_events(engine, since)
    assert (event.action, event.actor_id, event.details) == ("password_changed", user,
                                                             {"user_id": user, "username": "tc.cv"})


def test_the_admin_log_lists_who_did_what_and_when_newest_first(browser_for, engine, people, clock):
    admin = browser_for("admin")
    admin.post("/admin/users", data={"username": "tc.cv", "full_name": "Lê Thị Hoa", "org_code": "SO_TC",
                                     "role": "staff"})
    clock.advance(hours=5, minutes=7)
    admin.post(f"/admin/users/{people['nn.cv2']}/deactivate")
    with engine.db.write() as session:  # as the command line does: no acting administrator
        directory.add_substitute(session, people["yt.ld"], people["yt.cv"], date(2026, 12, 1), date(2026, 12, 3),
                                 at=clock.now())
    page = browser_for("admin").get("/admin/log")
    assert page.status_code == 200
    text = text_of(page)
    assert "Nhật ký quản trị" in text
    first = text.index("Thêm người xử lý thay")
    second = text.index("Cập nhật tài khoản")
    third = text.index("Tạo người dùng")
    assert first < second < third  # newest first
    assert "30/11/2026 14:07 Admin (admin) Cập nhật tài khoản nn.cv2: khóa tài khoản" in text
    assert "30/11/2026 09:00 Admin (admin) Tạo người dùng tc.cv (Lê Thị Hoa); Chuyên viên — Sở Tài chính" in text
    assert "Hệ thống (dòng lệnh)" in text and "yt.cv xử lý thay yt.ld từ 01/12/2026 đến 03/12/2026" in text
    browser_for("admin").get("/lang/en")
    english = text_of(browser_for("admin").get("/admin/log"))
    assert "Admin log" in english and "Account updated" in english and "account locked" in english


def test_the_admin_log_pages_fifty_at_a_time(browser_for, engine, people, clock):
    with engine.db.write() as session:
        for i in range(53):
            clock.advance(minutes=1)
            directory.update_user(session, people["nn.cv2"], active=i % 2 == 1, actor_id=people["admin"],
                                  at=clock.now())
    first = browser_for("admin").get("/admin/log")
    assert "Trang 1 / 2" in text_of(first)
    assert text_of(first).count("Cập nhật tài khoản") == 50
    second = text_of(browser_for("admin").get("/admin/log?page=2"))
    assert second.count("Cập nhật tài khoản") == 3 and "30/11/2026 09:01" in second
    assert "30/11/2026 09:01" not in text_of(first)
    assert browser_for("admin").get("/admin/log?page=abc").status_code == 200
    assert browser_for("nn.cv").get("/admin/log").status_code == 403
