"""Authentication: tokens for a password, hashed storage, listing and revoking, the session cookie."""

from __future__ import annotations

import pytest
from flask_login.utils import _create_identifier
from sqlalchemy import select, update

from engine.models import ApiToken, AuditEvent, User
from tests.webui.conftest import API, Caller, error_of

PASSWORD = "Mat-khau-2026"


@pytest.fixture
def member(people):
    return people.add("nn.moi", ("SO_NNPTNT", "staff"), password=PASSWORD)


def sign_in(client, user_id: int) -> None:
    """What the web sign-in leaves in the session (Flask-Login, with "strong" session protection)."""
    with client.application.test_request_context(environ_base=client.environ_base):
        identifier = _create_identifier()  # from the address and user agent the client will send
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
        session["_id"] = identifier


def login(client, username, password=PASSWORD, **extra):
    return client.post(f"{API}/auth/token", json={"username": username, "password": password, **extra})


def test_a_password_buys_a_token_shown_once_and_stored_hashed(client, engine, member):
    response = login(client, "nn.moi", name="Máy chủ báo cáo")
    assert response.status_code == 201
    body = response.get_json()
    token = body["token"]
    assert token.startswith("dp_") and len(token) > 40 and body["prefix"] == token[:10]
    assert body["owner"]["username"] == "nn.moi" and body["name"] == "Máy chủ báo cáo" and body["active"]
    assert response.headers["Cache-Control"] == "no-store"
    with engine.db.read() as session:
        row = session.scalars(select(ApiToken)).one()
        assert token not in (row.token_hash, row.prefix) and len(row.token_hash) == 64
        assert session.scalar(select(AuditEvent.action).where(AuditEvent.action == "api_token_created"))
    me = Caller(client, token).get("/me").get_json()
    assert me["username"] == "nn.moi" and me["auth"] == "token"
    assert me["positions"] == [{"organisation": me["positions"][0]["organisation"], "role": "staff"}]
    listed = Caller(client, token).get("/auth/tokens").get_json()["items"]
    assert "token" not in listed[0] and listed[0]["prefix"] == body["prefix"]


def test_unknown_user_and_wrong_password_get_the_same_401(client, member):
    wrong = login(client, "nn.moi", "sai-mat-khau")
    unknown = login(client, "khong.ton.tai")
    assert wrong.status_code == unknown.status_code == 401
    assert error_of(wrong) == error_of(unknown)
    assert login(client, "NN.MOI").status_code == 201  # usernames are case-insensitive


def test_a_disabled_account_gets_no_token_and_its_tokens_stop_working(client, engine, member):
    token = login(client, "nn.moi").get_json()["token"]
    with engine.db.write() as session:
        session.execute(update(User).where(User.id == member).values(active=False))
    assert login(client, "nn.moi").status_code == 401
    assert Caller(client, token).get("/tasks").status_code == 401


def test_token_request_validation(client, member):
    assert client.post(f"{API}/auth/token", json={"username": "nn.moi"}).status_code == 400
    assert client.post(f"{API}/auth/token", data="username=nn.moi", content_type="text/plain").status_code == 415
    too_long = login(client, "nn.moi", expires_in_days=99999)
    assert "expires_in_days" in error_of(too_long)["details"]


def test_revoked_expired_and_malformed_tokens_are_401(client, engine, clock, member):
    token = login(client, "nn.moi").get_json()["token"]
    caller = Caller(client, token)
    assert caller.get("/tasks").status_code == 200
    token_id = caller.get("/auth/tokens").get_json()["items"][0]["id"]
    revoked = caller.delete(f"/auth/tokens/{token_id}")
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"] and not revoked.get_json()["active"]
    response = caller.get("/tasks")
    assert response.status_code == 401 and error_of(response)["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")

    short = login(client, "nn.moi", expires_in_days=1).get_json()["token"]
    assert Caller(client, short).get("/tasks").status_code == 200
    clock.advance(days=1, seconds=1)
    assert Caller(client, short).get("/tasks").status_code == 401

    for header in ("Bearer", "Bearer dp_khongphaima", "Basic bm4ubW9pOng=", "Token " + token, "dp_abc"):
        assert client.get(f"{API}/tasks", headers={"Authorization": header}).status_code == 401, header
    assert client.get(f"{API}/tasks").status_code == 401


def test_the_last_use_is_recorded_without_a_write_on_every_call(client, engine, clock, member):
    token = login(client, "nn.moi").get_json()["token"]
    caller = Caller(client, token)
    caller.get("/tasks")
    first = caller.get("/auth/tokens").get_json()["items"][0]["last_used_at"]
    assert first is not None
    clock.advance(minutes=1)
    caller.get("/tasks")
    assert caller.get("/auth/tokens").get_json()["items"][0]["last_used_at"] == first
    clock.advance(minutes=10)
    caller.get("/tasks")
    assert caller.get("/auth/tokens").get_json()["items"][0]["last_used_at"] != first


def test_owners_and_administrators_list_and_revoke_others_do_not(api, client, engine, member):
    token = login(client, "nn.moi").get_json()["token"]
    mine = Caller(client, token)
    token_id = mine.get("/auth/tokens").get_json()["items"][0]["id"]
    other = api("nn.cv")
    assert other.get("/auth/tokens?owner=nn.moi").status_code == 403
    assert other.get("/auth/tokens?all=true").status_code == 403
    assert token_id not in [t["id"] for t in other.get("/auth/tokens").get_json()["items"]]
    guess = other.delete(f"/auth/tokens/{token_id}")
    assert guess.status_code == 404
    assert mine.get("/tasks").status_code == 200
    admin = api("admin")
    assert [t["id"] for t in admin.get("/auth/tokens?owner=nn.moi").get_json()["items"]] == [token_id]
    assert token_id in [t["id"] for t in admin.get("/auth/tokens?all=true").get_json()["items"]]
    assert admin.get("/auth/tokens?owner=khong.co").get_json()["items"] == []
    assert admin.delete(f"/auth/tokens/{token_id}").status_code == 200
    assert admin.delete(f"/auth/tokens/{token_id}").status_code == 200  # again: harmless
    assert mine.get("/tasks").status_code == 401
    assert admin.delete("/auth/tokens/999999").status_code == 404


def test_a_token_carries_its_owners_permissions_and_nothing_more(api, duyet):
    assert api("nn.cv").post("/definitions", data=b"<x/>", content_type="application/xml").status_code == 403
    assert api("nn.cv").get("/tasks?scope=all").status_code == 403
    assert api("nn.cv").post("/messages", json={"name": "x"}).status_code == 403


def test_the_web_session_cookie_authenticates_and_writes_need_our_origin(client, engine, people, duyet):
    sign_in(client, people["nn.cv"])
    me = client.get(f"{API}/me")
    assert me.status_code == 200 and me.get_json()["auth"] == "session"
    cross_site = client.post(f"{API}/instances", json={"process": "duyet"},
                             headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    bare = client.post(f"{API}/instances", json={"process": "duyet"})
    assert bare.status_code == 403
    same_origin = client.post(f"{API}/instances", json={"process": "duyet"}, headers={"Origin": "http://localhost"})
    assert same_origin.status_code == 201
    ajax = client.post(f"{API}/instances", json={"process": "duyet"}, headers={"X-Requested-With": "fetch"})
    assert ajax.status_code == 201


def test_a_session_of_a_disabled_user_is_anonymous(client, engine, people):
    sign_in(client, people["nn.cv"])
    assert client.get(f"{API}/me").status_code == 200
    with engine.db.write() as session:
        session.execute(update(User).where(User.id == people["nn.cv"]).values(active=False))
    assert client.get(f"{API}/me").status_code == 401


def test_revoking_is_audited(api, engine, people):
    caller = api("nn.cv")
    token_id = caller.get("/auth/tokens").get_json()["items"][0]["id"]
    caller.delete(f"/auth/tokens/{token_id}")
    with engine.db.read() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "api_token_revoked")).one()
    assert event.actor_id == people["nn.cv"] and event.details["token"] == token_id


def test_tokens_expire_after_the_default_lifetime(client, clock, member):
    body = login(client, "nn.moi").get_json()
    assert body["expires_at"] is not None
    clock.advance(days=91)
    assert Caller(client, body["token"]).get("/me").status_code == 401


@pytest.mark.parametrize("path", ["/me", "/tasks", "/instances", "/definitions", "/auth/tokens"])
def test_every_protected_read_needs_authentication(client, path):
    response = client.get(API + path)
    assert response.status_code == 401
    assert error_of(response)["message"].startswith("Vui lòng đăng nhập")
