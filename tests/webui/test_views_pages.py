"""What every page shares: the language switch, formats, error pages without stack traces, phone width."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.webui.views_helpers import only_task, text_of

pytest_plugins = ("tests.webui.views_fixtures",)
TRANSLATIONS = Path(__file__).resolve().parents[2] / "webui" / "translations"


def test_vietnamese_by_default_and_english_on_request(browser_for, proposal):
    staff = browser_for("nn.cv")
    page = staff.get("/")
    assert '<html lang="vi">' in page.get_data(as_text=True)
    assert "Việc cần xử lý" in text_of(page) and "Đăng xuất" in text_of(page)
    switched = staff.get("/lang/en?next=/instances")
    assert switched.status_code == 302 and switched.headers["Location"] == "/instances"
    english = staff.get("/")
    text = text_of(english)
    assert '<html lang="en">' in english.get_data(as_text=True)
    assert "My tasks" in text and "Sign out" in text and "Unclaimed" in text
    assert "Department of Agriculture and Rural Development" in text  # the organisation's English name
    staff.get("/lang/vi")
    assert "Việc cần xử lý" in text_of(staff.get("/"))


def test_language_switch_refuses_foreign_redirects_and_unknown_languages(browser_for):
    staff = browser_for("nn.cv")
    assert staff.get("/lang/en?next=https://evil.example/").headers["Location"] == "/"
    staff.get("/lang/fr")
    with staff.session_transaction() as session:
        assert session["lang"] == "en"


def test_engine_messages_follow_the_language(browser_for, engine, proposal):
    task = only_task(engine, proposal)
    staff = browser_for("nn.cv")
    staff.get("/lang/en")
    response = staff.post(f"/tasks/{task.id}/complete", data={"so_van_ban": "1"})
    assert response.status_code == 400
    text = text_of(response)
    assert "This field is required." in text and "Trường này là bắt buộc." not in text
    assert "Some fields are invalid, please check them." in text


def test_english_catalogue_translates_every_string():
    from babel.messages.pofile import read_po

    with (TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale="en")
    untranslated = [m.id for m in catalog if m.id and not m.string]
    assert untranslated == []
    assert (TRANSLATIONS / "vi" / "LC_MESSAGES" / "messages.po").exists()


def test_not_found_page_is_html_in_the_users_language(browser_for):
    staff = browser_for("nn.cv")
    missing = staff.get("/khong-co-trang-nay")
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert "Không tìm thấy trang" in text_of(missing)
    staff.get("/lang/en")
    assert "Page not found" in text_of(staff.get("/khong-co-trang-nay"))


def test_api_errors_stay_json(browser_for):
    response = browser_for("nn.cv").get("/api/v1/khong-co")
    assert response.status_code == 404 and response.is_json
    assert browser_for(None).get("/api/v1/tasks").is_json


@pytest.fixture
def failing(engine):
    from webui import create_app

    app = create_app(engine, {"WTF_CSRF_ENABLED": False})  # not TESTING: errors are handled as in production

    @app.get("/hong")
    def broken():
        raise RuntimeError("secret detail /etc/passwd")

    return app


def test_unexpected_error_is_a_500_page_without_a_stack_trace(failing):
    response = failing.test_client().get("/hong")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Lỗi hệ thống" in body
    assert "Traceback" not in body and "secret detail" not in body and "RuntimeError" not in body


def test_method_not_allowed_is_a_page(browser_for):
    response = browser_for("nn.cv").get("/tasks/abc/complete")
    assert response.status_code == 405
    assert "Thao tác không được hỗ trợ" in text_of(response)


def test_pages_are_made_for_phones_too(browser_for, proposal):
    body = browser_for("nn.cv").get("/").get_data(as_text=True)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in body
    css = browser_for(None).get("/static/css/app.css")
    assert css.status_code == 200 and b"@media (max-width: 700px)" in css.data


def test_security_headers_on_pages(browser_for):
    response = browser_for("nn.cv").get("/")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_status_page_is_for_signed_in_people_and_health_is_open(browser_for):
    anonymous = browser_for(None).get("/status")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert browser_for("nn.cv").get("/status").status_code == 200
    assert browser_for(None).get("/api/v1/health").get_json()["status"] == "ok"


def test_formats(web):
    from datetime import datetime, timezone

    from webui.views import formats

    with web.test_request_context("/"):
        assert formats.local_datetime(datetime(2026, 11, 28, 17, 5, tzinfo=timezone.utc)) == "29/11/2026 00:05"
        assert formats.local_date("2026-11-28") == "28/11/2026"
        assert formats.money(1500000) == "1.500.000 đ"
        assert formats.parse_money("1.500.000 đ") == 1500000
        assert formats.parse_money("1,500,000") == 1500000
        assert formats.parse_money("abc") is None
        assert formats.parse_date("28/11/2026") == "2026-11-28"
        assert formats.parse_date("31/02/2026") is None
        assert formats.percent(0.1667) == "16,7 %"
