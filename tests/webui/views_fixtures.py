"""Fixtures for the web page tests, loaded with `pytest_plugins` (never imported): the app with
CSRF off (one test turns it on), signed-in clients, and the plan amendment process."""

from __future__ import annotations

import pytest

from webui import create_app
from workflows import WORKFLOWS_DIR


@pytest.fixture
def web(engine):
    """The Flask app with CSRF checks off, so tests post forms directly."""
    return create_app(engine, {"TESTING": True, "WTF_CSRF_ENABLED": False})


@pytest.fixture
def browser_for(web, people):
    """`browser_for("nn.cv")`: a test client signed in as that user (session set directly: no argon2)."""
    clients = {}

    def make(name: str | None):
        if name not in clients:
            client = web.test_client()
            if name is not None:
                with client.session_transaction() as session:
                    session["_user_id"] = str(people[name])
                    session["_fresh"] = True
            clients[name] = client
        return clients[name]

    return make


@pytest.fixture
def amendment(engine, people):
    engine.deploy_path(WORKFLOWS_DIR / "sua_doi_ke_hoach")
    return "sua_doi_ke_hoach"


@pytest.fixture
def proposal(engine, people, amendment):
    """A plan amendment started by Nông nghiệp staff: the draft waits in the unit's staff queue."""
    return engine.start_instance(people["nn.cv"], amendment, {})
