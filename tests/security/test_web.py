"""The web layer under attack: CSRF on every form, session fixation and cookie flags, password
guessing, oversize bodies, and the security headers of pages and API answers."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from engine.models import Base
from tests.webui.views_helpers import csrf_token_of, text_of
from webui import create_app

PASSWORD = "MatKhau@2026"


def snapshot(engine) -> dict:
    """Row counts of every table: "changes nothing" means this is equal before and after."""
    with engine.db.read() as session:
        return {t.name: session.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def signed_in(app, people, name: str):
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(people[name])
        session["_fresh"] = True
    return client


# ------------------------------------------------------------------ CSRF
def form_posts(app, world) -> list[str]:
    """Every state-changing web form (POST outside /api/), with real ids from the world."""
    values = {"definition_id": world.definition_id, "instance_id": world.instance_id, "task_id": world.task_id,
              "user_id": world.user_id, "position_id": world.position_id, "substitute_row": world.substitute_id,
              "outbox_id": world.outbox_id or 1, "key": "xss", "code": "en"}
    urls = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.rule.startswith("/api/"):
            continue
        args = {name: values.get(name, "1") for name in rule.arguments}  # "1": a route added since
        args.update({k: v for k, v in (("action", "cancel"), ("change", "deactivate")) if k in rule.arguments})
        with app.test_request_context():
            from flask import url_for

            urls.append(url_for(rule.endpoint, **args))
    return sorted(urls)


def test_every_form_post_without_a_csrf_token_is_refused_and_changes_nothing(guarded, engine, people, world):
    urls = form_posts(guarded, world)
    assert len(urls) >= 20  # the enumeration found the forms
    before = snapshot(engine)
    for name in ("admin", "nn.cv"):
        client = signed_in(guarded, people, name)
        for url in urls:
            response = client.post(url, data={"body": "x", "reason": "x", "username": "moi.cv", "full_name": "x",
                                              "password": PASSWORD, "new_password": PASSWORD + "1",
                                              "confirm_password": PASSWORD + "1", "current_password": PASSWORD})
            assert response.status_code in (400, 403), (name, url, response.status_code)
            if response.status_code == 400:
                assert "Phiên làm việc đã hết hạn" in text_of(response), url
        with signed_in(guarded, people, name) as fresh:
            assert fresh.get("/").status_code == 200  # still signed in: logout was refused too
    assert snapshot(engine) == before


def test_a_token_from_another_session_is_refused(guarded, engine, people, world):
    other = signed_in(guarded, people, "yt.cv")
    stolen = csrf_token_of(other.get("/"))
    victim = signed_in(guarded, people, "nn.cv")
    before = snapshot(engine)
    response = victim.post(f"/instances/{world.instance_id}/comments", data={"body": "giả mạo", "csrf_token": stolen})
    assert response.status_code == 400
    assert snapshot(engine) == before


def test_session_cookie_writes_to_the_api_need_same_origin(web, engine, people, world):
    """The API skips CSRF tokens, so a cookie-authenticated write must prove it comes from our pages."""
    client = signed_in(web, people, "nn.cv")
    before = snapshot(engine)
    forged = client.post(f"/api/v1/instances/{world.instance_id}/comments", json={"body": "giả mạo"},
                         headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403 and forged.get_json()["error"]["code"] == "forbidden"
    bare = client.post(f"/api/v1/instances/{world.instance_id}/comments", json={"body": "giả mạo"})
    assert bare.status_code == 403
    assert snapshot(engine) == before
    same = client.post(f"/api/v1/instances/{world.instance_id}/comments", json={"body": "thật"},
                       headers={"Origin": "http://localhost"})
    assert same.status_code == 201


# ------------------------------------------------------------------ sessions
@pytest.fixture
def member(people):
    return people.add("mk.cv", ("SO_NNPTNT", "staff"), password=PASSWORD)


def _cookie(client) -> str | None:
    cookie = client.get_cookie("session")
    return cookie.value if cookie else None


def test_sign_in_replaces_the_session_and_a_planted_one_gains_nothing(guarded, member):
    client = guarded.test_client()
    token = csrf_token_of(client.get("/login"))
    with client.session_transaction() as session:
        session["planted"] = "attacker"
    before = _cookie(client)
    attacker = guarded.test_client()
    attacker.set_cookie("session", before)
    response = client.post("/login", data={"username": "mk.cv", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    after = _cookie(client)
    assert after and after != before
    with client.session_transaction() as session:
        assert "planted" not in session and session.get("sid")
    refused = attacker.get("/")  # the cookie the attacker planted is still anonymous
    assert refused.status_code == 302 and "/login" in refused.headers["Location"]


def test_session_cookie_flags(guarded, engine, member):
    client = guarded.test_client()
    token = csrf_token_of(client.get("/login"))
    response = client.post("/login", data={"username": "mk.cv", "password": PASSWORD, "csrf_token": token})
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in header and "SameSite=Lax" in header
    assert "Secure" not in header  # plain http in development; see the next check for https
    https = dataclasses.replace(engine.settings, base_url="https://dieuphoi.gialai.gov.vn")
    engine.settings = https
    secure = create_app(engine, {"TESTING": True})
    assert secure.config["SESSION_COOKIE_SECURE"] is True


def test_five_wrong_passwords_lock_the_sign_in(web, member):
    client = web.test_client()
    for _ in range(5):
        assert client.post("/login", data={"username": "mk.cv", "password": "sai-mat-khau"}).status_code == 401
    locked = client.post("/login", data={"username": "mk.cv", "password": PASSWORD})
    assert locked.status_code == 401 and "tạm khóa" in text_of(locked)
    other = web.test_client()  # a fresh cookie changes nothing: the count is on the server
    assert other.post("/login", data={"username": "mk.cv", "password": PASSWORD}).status_code == 401


def test_five_wrong_passwords_lock_the_token_endpoint_too(client, member):
    for _ in range(5):
        wrong = client.post("/api/v1/auth/token", json={"username": "mk.cv", "password": "sai-mat-khau"})
        assert wrong.status_code == 401
    right = client.post("/api/v1/auth/token", json={"username": "mk.cv", "password": PASSWORD})
    assert right.status_code == 429
    assert right.get_json()["error"]["message"].startswith("Tài khoản tạm khóa do nhập sai mật khẩu nhiều lần")


# ------------------------------------------------------------------ oversize bodies
def test_oversize_form_and_json_bodies_are_413_with_a_message(web, engine, people, world, bearer):
    limit = engine.settings.max_upload_bytes
    client = signed_in(web, people, "nn.cv")
    token = bearer("nn.cv")
    before = snapshot(engine)
    page = client.post(f"/instances/{world.instance_id}/comments", data={"body": "x" * (limit + 1)})
    assert page.status_code == 413 and "quá lớn" in text_of(page)
    field = client.post(f"/instances/{world.instance_id}/comments", data={"body": "x" * 600_000},
                        content_type="multipart/form-data")
    assert field.status_code == 413 and "quá lớn" in text_of(field)  # one multipart field over 500 kB
    api = client.post(f"/api/v1/instances/{world.instance_id}/comments", headers=token,
                      data=b'{"body": "' + b"x" * limit + b'"}', content_type="application/json")
    assert api.status_code == 413
    assert api.get_json()["error"]["message"].startswith("Dữ liệu gửi lên quá lớn")
    assert snapshot(engine) == before


# ------------------------------------------------------------------ headers
def test_pages_carry_the_security_headers(web, people, world):
    client = signed_in(web, people, "nn.cv")
    for path in ("/", "/login", f"/instances/{world.instance_id}", "/khong-co-trang-nay", "/admin/users"):
        response = client.get(path)
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["Referrer-Policy"] == "same-origin", path
        policy = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, path
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0], path
    api = client.get("/api/v1/me")
    assert api.headers["X-Content-Type-Options"] == "nosniff" and api.headers["Cache-Control"] == "no-store"
