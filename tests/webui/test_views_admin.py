"""Administration pages: only administrators; users, organisations, substitutes, definitions, mail, timers."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select, update

from engine.models import Definition, OutboxMessage, Position, Substitute, Timer, User
from tests.webui.views_helpers import text_of
from workflows import WORKFLOWS_DIR

pytest_plugins = ("tests.webui.views_fixtures",)

ADMIN_PAGES = ["/admin/", "/admin/users", "/admin/organisations", "/admin/substitutes", "/admin/definitions",
               "/admin/outbox", "/admin/timers"]
ADMIN_POSTS = ["/admin/users", "/admin/organisations/merge", "/admin/substitutes", "/admin/definitions",
               "/admin/outbox/retry", "/admin/timers/retry"]


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
