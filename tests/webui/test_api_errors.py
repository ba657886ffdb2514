"""Bad input never reaches the database and never becomes a 500; every refusal is the same JSON shape."""

from __future__ import annotations

import json

import pytest

from tests.webui.conftest import API, error_of, only_task

ASCII = {"Content-Type": "application/json"}


@pytest.mark.parametrize("raw", [
    b"{", b'{"process": }', b"[1,", b'{"process": "duyet", "data": {"x": NaN}}',
    b'{"process": "duyet", "data": {"x": Infinity}}', b'{"process": "duyet", "data": {"x": 1e999}}',
    b"\xff\xfe{}", b'{"process": "duyet", "data": {"x": ' + b"9" * 5000 + b"}}",
    b"[" * 100000 + b"]" * 100000,
])
def test_malformed_json_is_400(api, duyet, raw):
    response = api("nn.cv").post("/instances", data=raw, headers=ASCII)
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_input"


@pytest.mark.parametrize("value", ["a\x00b", "\ud800", {"k\x00": 1}])
def test_text_no_column_can_store_is_400(api, engine, case, value):
    raw = json.dumps({"data": {"noi_dung": value, "so_tien": 1}}).encode()
    task_id = only_task(engine, case)
    response = api("nn.cv").post(f"/tasks/{task_id}/complete", data=raw, headers=ASCII)
    assert response.status_code == 400
    assert list(error_of(response)["details"]) == ["data/noi_dung"]
    assert only_task(engine, case) == task_id
    assert api("nn.cv").get("/tasks?process=a%00b").status_code == 400
    assert api("nn.cv").post(f"/instances/{case}/comments", data=json.dumps({"body": "x\x00"}),
                             headers=ASCII).status_code == 400


def test_nesting_past_the_limit_is_400(api, duyet):
    data: dict = {}
    node = data
    for _ in range(40):
        node["a"] = {}
        node = node["a"]
    response = api("nn.cv").post("/instances", json={"process": "duyet", "data": data})
    assert response.status_code == 400 and "quá sâu" in error_of(response)["message"]


def test_a_body_that_is_not_an_object_is_400(api, duyet):
    for body in ([], "chuỗi", 3, None):
        response = api("nn.cv").post("/instances", data=json.dumps(body), headers=ASCII)
        assert response.status_code == 400, body


def test_a_non_json_content_type_is_415(api, duyet):
    response = api("nn.cv").post("/instances", data="process=duyet", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and error_of(response)["code"] == "unsupported_media_type"


def test_unknown_api_paths_and_methods_answer_in_json(client, api):
    response = client.get(f"{API}/khong-co")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert client.get("/api/v2/tasks").is_json and client.get("/api").status_code == 404
    wrong = api("nn.cv").delete("/tasks")
    assert wrong.status_code == 405 and error_of(wrong)["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"]
    assert client.put(f"{API}/instances/1").status_code == 405
    assert not client.get("/trang-khong-co").is_json  # the web UI keeps its own pages


def test_an_unexpected_exception_is_a_json_500_without_internals(app, api, monkeypatch):
    from webui.api import tasks

    def boom(*args, **kwargs):
        raise RuntimeError("bí mật nội bộ")

    monkeypatch.setattr(tasks.queries, "task_list", boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = api("nn.cv").get("/tasks")
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error" and "bí mật" not in response.get_data(as_text=True)


def test_vietnamese_comes_first_and_is_not_escaped(api):
    response = api(None).get("/tasks")
    text = response.get_data(as_text=True)
    assert "Vui lòng đăng nhập" in text and "\\u" not in text
    vi, en = error_of(response)["message"].split(" / ")
    assert vi.startswith("Vui lòng") and en.startswith("Sign in")


def _lost_connection(*args, **kwargs):
    import psycopg
    from sqlalchemy.exc import OperationalError

    raise OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed the connection unexpectedly"))


def test_a_lost_database_is_a_503_to_retry_not_a_500(app, api, monkeypatch):
    from webui.api import tasks

    monkeypatch.setattr(tasks.queries, "task_list", _lost_connection)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = api("nn.cv").get("/tasks")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    error = error_of(response)
    assert error["code"] == "database_unavailable"
    assert error["message"].startswith("Cơ sở dữ liệu tạm thời không truy cập được")
    assert "server closed" not in response.get_data(as_text=True)


def test_a_lost_database_is_a_503_page_in_vietnamese(engine, people, monkeypatch):
    from webui import create_app
    from webui.views import tasks as task_views

    app = create_app(engine, {"TESTING": True, "WTF_CSRF_ENABLED": False, "PROPAGATE_EXCEPTIONS": False})
    monkeypatch.setattr(task_views.queries, "inbox_page", _lost_connection)
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(people["nn.cv"])
        session["_fresh"] = True
    page = client.get("/")
    assert page.status_code == 503 and page.headers["Retry-After"] == "5"
    assert "Cơ sở dữ liệu tạm thời không truy cập được" in page.get_data(as_text=True)


def test_a_sqlite_schema_error_stays_a_500(app, api, monkeypatch):
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from webui.api import tasks

    def no_table(*args, **kwargs):
        raise OperationalError("SELECT x", {}, sqlite3.OperationalError("no such table: x"))

    monkeypatch.setattr(tasks.queries, "task_list", no_table)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    assert api("nn.cv").get("/tasks").status_code == 500
