"""Sign-in pages: passwords, lockout, a new session at every sign-in, CSRF on every form."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.webui.views_helpers import PASSWORD, csrf_token_of, text_of
from webui import create_app

pytest_plugins = ("tests.webui.views_fixtures",)


@pytest.fixture
def staff(people):
    return people.add("tc.cv", ("SO_TC", "staff"), password=PASSWORD)


def _login(client, username="tc.cv", password=PASSWORD, **extra):
    return client.post("/login", data={"username": username, "password": password, **extra})


def test_visitor_is_sent_to_the_sign_in_page(web):
    response = web.test_client().get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    page = web.test_client().get("/login")
    assert page.status_code == 200
    assert "Đăng nhập" in text_of(page) and "Mật khẩu" in text_of(page)


def test_correct_password_signs_in_and_lands_on_the_inbox(web, staff):
    client = web.test_client()
    response = _login(client)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    inbox = client.get("/")
    assert inbox.status_code == 200
    assert "Việc cần xử lý" in text_of(inbox)
    assert "Tc Cv" in text_of(inbox)


def test_wrong_password_is_refused_with_a_message(web, staff):
    client = web.test_client()
    response = _login(client, password="sai-mat-khau")
    assert response.status_code == 401
    assert "Tên đăng nhập hoặc mật khẩu không đúng." in text_of(response)
    assert client.get("/").status_code == 302
    unknown = _login(client, username="khong.ton.tai")
    assert unknown.status_code == 401
    assert "Tên đăng nhập hoặc mật khẩu không đúng." in text_of(unknown)


def test_five_failures_lock_the_username_for_fifteen_minutes(web, staff, clock):
    client = web.test_client()
    for _ in range(5):
        assert _login(client, password="sai-mat-khau").status_code == 401
    locked = _login(client)  # even the right password is refused while locked
    assert locked.status_code == 401
    assert "tạm khóa" in text_of(locked)
    assert client.get("/").status_code == 302
    other = web.test_client()  # the lock is per username, not per browser
    assert _login(other).status_code == 401
    clock.advance(minutes=14)
    assert _login(client).status_code == 401
    clock.advance(minutes=2)
    assert _login(client).status_code == 302


def test_success_clears_the_failure_count(web, staff, clock):
    client = web.test_client()
    for _ in range(4):
        _login(client, password="sai-mat-khau")
    assert _login(client).status_code == 302
    client.post("/logout")
    for _ in range(4):
        _login(client, password="sai-mat-khau")
    assert _login(client).status_code == 302


def test_sign_in_starts_a_new_session(web, staff):
    client = web.test_client()
    with client.session_transaction() as session:
        session["planted"] = "by-an-attacker"
        session["sid"] = "fixed-session-id"
    _login(client)
    with client.session_transaction() as session:
        assert "planted" not in session
        first_sid = session["sid"]
        assert first_sid != "fixed-session-id"
        assert session["_user_id"]
    client.post("/logout")
    _login(client)
    with client.session_transaction() as session:
        assert session["sid"] != first_sid


def test_sign_in_keeps_the_chosen_language(web, staff):
    client = web.test_client()
    client.get("/lang/en")
    _login(client)
    with client.session_transaction() as session:
        assert session["lang"] == "en"


def test_logout_ends_the_session(web, staff):
    client = web.test_client()
    _login(client)
    response = client.post("/logout")
    assert response.status_code == 302
    assert client.get("/").status_code == 302
    with client.session_transaction() as session:
        assert "_user_id" not in session


def test_logout_is_not_a_get(web, staff):
    client = web.test_client()
    _login(client)
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200


def test_next_parameter_never_leaves_the_site(web, staff):
    client = web.test_client()
    assert _login(client, next="https://evil.example/").headers["Location"] == "/"
    client.post("/logout")
    assert _login(client, next="//evil.example/x").headers["Location"] == "/"
    client.post("/logout")
    assert _login(client, next="/instances").headers["Location"] == "/instances"


def test_disabled_account_cannot_sign_in(web, staff, engine):
    from engine.models import User

    with engine.db.write() as session:
        session.get(User, staff).active = False
    assert _login(web.test_client()).status_code == 401


def test_password_change_requires_the_current_password(web, staff):
    client = web.test_client()
    _login(client)
    wrong = client.post("/password", data={"current_password": "sai", "new_password": "MoiMoi@2027",
                                           "confirm_password": "MoiMoi@2027"})
    assert wrong.status_code == 400
    assert "Mật khẩu hiện tại không đúng." in text_of(wrong)
    mismatch = client.post("/password", data={"current_password": PASSWORD, "new_password": "MoiMoi@2027",
                                              "confirm_password": "KhacNhau@2027"})
    assert "Mật khẩu nhập lại không khớp." in text_of(mismatch)
    short = client.post("/password", data={"current_password": PASSWORD, "new_password": "ngan",
                                           "confirm_password": "ngan"})
    assert "ít nhất 8 ký tự" in text_of(short)
    done = client.post("/password", data={"current_password": PASSWORD, "new_password": "MoiMoi@2027",
                                          "confirm_password": "MoiMoi@2027"})
    assert done.status_code == 302
    client.post("/logout")
    assert _login(client).status_code == 401
    assert _login(client, password="MoiMoi@2027").status_code == 302


def test_a_user_turns_the_daily_digest_off_and_on(web, staff, engine):
    from engine.models import User

    def wants() -> bool:
        with engine.db.read() as s:
            return s.get(User, staff).daily_digest

    client = web.test_client()
    _login(client)
    page = client.get("/password")
    assert "Nhận thư tổng hợp hằng ngày" in text_of(page) and "lúc 07:00" in text_of(page)
    assert wants() is True
    off = client.post("/preferences", data={}, follow_redirects=True)
    assert "Sẽ không gửi thư tổng hợp hằng ngày nữa." in text_of(off) and wants() is False
    client.post("/preferences", data={"daily_digest": "1"})
    assert wants() is True


@pytest.fixture
def guarded(engine):
    """The app as it runs in production: CSRF checks on."""
    return create_app(engine, {"TESTING": True})


def test_csrf_token_is_required_on_every_form_post(guarded, staff):
    client = guarded.test_client()
    refused = _login(client)
    assert refused.status_code == 400
    assert "Phiên làm việc đã hết hạn" in text_of(refused)
    token = csrf_token_of(client.get("/login"))
    assert _login(client, csrf_token=token).status_code == 302
    assert client.post("/logout").status_code == 400  # signed in, but still no token: refused
    assert client.get("/").status_code == 200
    token = csrf_token_of(client.get("/"))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302


def test_csrf_protection_leaves_the_token_api_alone(guarded, staff, engine):
    from engine import tokens

    with engine.db.write() as session:
        _, raw = tokens.issue(session, staff, engine.now(), "test")
    response = guarded.test_client().post("/api/v1/auth/token", json={"username": "tc.cv", "password": PASSWORD})
    assert response.status_code == 201
    me = guarded.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"})
    assert me.status_code == 200


def test_lockout_window_is_fifteen_minutes():
    from webui.views.auth import LOCK_FOR, MAX_FAILURES

    assert MAX_FAILURES == 5 and LOCK_FOR == timedelta(minutes=15)


# ------------------------------------------------------------------ lockout shared by every web process
@pytest.fixture
def second_web(settings, clock):
    """Another web process: its own engine (connection pool) and app over the same database."""
    from engine.db import Database
    from engine.runtime import Engine

    other = Engine(Database.from_settings(settings), settings, clock)
    yield create_app(other, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    other.db.dispose()


def _failures(engine, username):
    from engine.models import SignInFailure

    with engine.db.read() as session:
        row = session.get(SignInFailure, username)
        return None if row is None else (row.failures, row.locked_until)


def test_two_web_processes_share_the_failure_count(web, second_web, staff, engine, clock):
    one, two = web.test_client(), second_web.test_client()
    for client in (one, two, one, two):
        assert _login(client, password="sai-mat-khau").status_code == 401
    assert _failures(engine, "tc.cv")[0] == 4
    clock.advance(minutes=1)
    assert _login(one, password="sai-mat-khau").status_code == 401  # the fifth, wherever it lands
    assert _failures(engine, "tc.cv") == (5, clock.now() + timedelta(minutes=15))
    for client in (one, two, second_web.test_client()):  # locked everywhere, even with the right password
        locked = _login(client)
        assert locked.status_code == 401 and "tạm khóa" in text_of(locked)
        assert "09:16" in text_of(locked)  # until 15 minutes after the last failure, local time
    clock.advance(minutes=15)
    assert _login(two).status_code == 302
    assert _failures(engine, "tc.cv") is None  # success clears it for every process
    for _ in range(4):
        _login(one, password="sai-mat-khau")
    assert _login(two).status_code == 302


def test_concurrent_failures_are_all_counted(web, second_web, engine):
    import threading

    apps = [web, second_web] * 2
    barrier = threading.Barrier(len(apps))
    statuses = []

    def fail(app):
        client = app.test_client()
        barrier.wait()
        statuses.append(_login(client, username="khong.ton.tai", password="sai").status_code)

    threads = [threading.Thread(target=fail, args=(a,)) for a in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [401] * 4
    assert _failures(engine, "khong.ton.tai") == (4, None)  # no lost update
    _login(second_web.test_client(), username="khong.ton.tai", password="sai")
    assert _failures(engine, "khong.ton.tai")[1] is not None


def test_the_count_restarts_after_the_window_and_old_rows_are_cleared(web, staff, engine, clock):
    client = web.test_client()
    for _ in range(4):
        _login(client, password="sai-mat-khau")
    _login(client, username="ai.do", password="sai")
    clock.advance(minutes=16)  # the window is over: these four no longer count
    _login(client, password="sai-mat-khau")
    assert _failures(engine, "tc.cv")[0] == 1
    assert _failures(engine, "ai.do") is None  # a stale row goes when anyone fails again
    for _ in range(3):
        _login(client, password="sai-mat-khau")
    assert _login(client).status_code == 302
