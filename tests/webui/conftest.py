"""Fixtures for the API tests: the Flask app over the test engine, and callers holding a token each."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import tokens
from engine.definitions import Bundle
from engine.models import HumanTask, TaskState
from tests.engine import bpmn_samples as samples
from webui import create_app

API = "/api/v1"
FORM = {
    "type": "object",
    "required": ["noi_dung", "so_tien"],
    "properties": {
        "noi_dung": {"type": "string", "title": "Nội dung", "minLength": 3},
        "so_tien": {"type": "integer", "title": "Số tiền", "minimum": 0},
    },
}
INSTRUCTIONS = "Nhập nội dung đề xuất và số tiền (đồng)."
GOOD = {"noi_dung": "Mua thiết bị", "so_tien": 1500000}


@pytest.fixture
def app(engine):
    return create_app(engine, {"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


class Caller:
    """The API as one user sees it, through a Bearer token issued for them."""

    def __init__(self, client, token: str | None):
        self.client = client
        self.token = token

    def _headers(self, headers):
        out = dict(headers or {})
        if self.token is not None:
            out.setdefault("Authorization", f"Bearer {self.token}")
        return out

    def get(self, path, **kw):
        return self.client.get(API + path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path, **kw):
        return self.client.post(API + path, headers=self._headers(kw.pop("headers", None)), **kw)

    def delete(self, path, **kw):
        return self.client.delete(API + path, headers=self._headers(kw.pop("headers", None)), **kw)


@pytest.fixture
def api(client, engine, people):
    """`api("nn.cv")` calls as that user; `api(None)` calls anonymously."""
    cache: dict[str | None, Caller] = {}

    def caller(name: str | None) -> Caller:
        if name not in cache:
            token = None
            if name is not None:
                with engine.db.write() as session:
                    _, token = tokens.issue(session, people[name], engine.now(), "test")
            cache[name] = Caller(client, token)
        return cache[name]

    return caller


def approval_bpmn() -> bytes:
    return samples.approval(form="trinh.json").replace(
        b"</spiffworkflow:properties>",
        f"</spiffworkflow:properties><spiffworkflow:instructionsForEndUser>{INSTRUCTIONS}"
        "</spiffworkflow:instructionsForEndUser>".encode(), 1)


@pytest.fixture
def duyet(engine, people):
    """The small approval process deployed: staff submit (with a form), the unit's supervisor approves."""
    bundle = Bundle(key="duyet")
    bundle.xml = {"duyet.bpmn": approval_bpmn()}
    bundle.forms = {"trinh.json": FORM}
    engine.deploy_bundle(bundle)
    return "duyet"


@pytest.fixture
def case(engine, people, duyet):
    """A case started by Nông nghiệp staff: its first task waits in the unit's staff queue."""
    return engine.start_instance(people["nn.cv"], "duyet")


def open_task_ids(engine, instance_id: int) -> list[str]:
    with engine.db.read() as session:
        return list(session.scalars(select(HumanTask.id).where(
            HumanTask.instance_id == instance_id, HumanTask.state == TaskState.OPEN.value
        ).order_by(HumanTask.created_at, HumanTask.id)))


def only_task(engine, instance_id: int) -> str:
    ids = open_task_ids(engine, instance_id)
    assert len(ids) == 1, ids
    return ids[0]


def error_of(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]
