"""Fixtures of the hostile-input tier: the web app with and without CSRF checks, signed-in
clients per role, Bearer tokens per role, and measuring how fast and how small a refusal is.

The roles: `nn.*` is unit A (Sở Nông nghiệp), `yt.*` unit B (Sở Y tế), `ubnd.ld` the UBND
leader, `admin` the administrator (all from tests/conftest.py `people`).
"""

from __future__ import annotations

import resource
import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from engine import tokens
from engine.definitions import Bundle
from engine.models import Definition
from tests.webui.conftest import api, app, case, client, duyet  # noqa: F401 - fixtures re-exported
from tests.webui.views_fixtures import browser_for, web  # noqa: F401 - fixtures re-exported
from webui import create_app

ROLES = {  # role of the matrix -> user name in `people`
    "anonymous": None,
    "staff_a": "nn.cv",
    "staff_b": "yt.cv",
    "supervisor_a": "nn.ld",
    "leader": "ubnd.ld",
    "admin": "admin",
}


@pytest.fixture
def guarded(engine):
    """The app as production runs it: CSRF checks on."""
    return create_app(engine, {"TESTING": True})


@pytest.fixture
def bearer(engine, people):
    """`bearer("nn.cv")` -> headers with a fresh API token of that user (None -> no header)."""
    cache: dict[str | None, dict] = {}

    def make(name: str | None) -> dict:
        if name not in cache:
            if name is None:
                cache[name] = {}
            else:
                with engine.db.write() as session:
                    _, raw = tokens.issue(session, people[name], engine.now(), "security")
                cache[name] = {"Authorization": f"Bearer {raw}"}
        return cache[name]

    return make


def definition_count(engine) -> int:
    with engine.db.read() as session:
        return session.scalar(select(func.count()).select_from(Definition))


@dataclass
class Cost:
    seconds: float = 0.0
    python_peak_mb: float = 0.0  # tracemalloc: Python objects only
    rss_growth_mb: float = 0.0  # growth of the process's peak RSS (C allocations too, e.g. libxml2)


@contextmanager
def measured():
    """Wall time, peak traced Python memory and peak-RSS growth of the block."""
    cost = Cost()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield cost
    finally:
        cost.seconds = time.perf_counter() - started
        cost.python_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        cost.rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024


# ------------------------------------------------------------------ a world owned by unit A
def payload(tag: str) -> str:
    """A stored-XSS probe: a script element, an HTML event handler, and quote breakouts, labelled."""
    return (f'<script>alert("{tag}")</script><img src=x onerror=alert("{tag}")>'
            f'" onmouseover="alert(\'{tag}\')\' onfocus=\'alert("{tag}")')


def xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


FORM = {
    "type": "object",
    "title": None,  # filled with payloads below
    "required": ["noi_dung"],
    "properties": {
        "noi_dung": {"type": "string", "minLength": 1},
        "loai": {"type": "string", "oneOf": [{"const": "a"}, {"const": "b"}]},
        "ghi_chu": {"type": "string", "format": "textarea"},
        "dong": {"type": "array", "items": {"type": "object", "properties": {"muc": {"type": "string"}}}},
    },
}


def hostile_form() -> dict:
    form = {**FORM, "title": payload("form_title"), "description": payload("form_help")}
    props = {k: dict(v) for k, v in FORM["properties"].items()}
    props["noi_dung"].update(title=payload("label"), description=payload("help"), default=payload("default"))
    props["loai"].update(title=payload("select_label"),
                         oneOf=[{"const": "a", "title": payload("option_a")}, {"const": "b", "title": payload("b")}])
    props["ghi_chu"].update(title=payload("textarea_label"))
    props["dong"] = {"type": "array", "title": payload("rows_label"), "items": {
        "type": "object", "properties": {"muc": {"type": "string", "title": payload("column")}}}}
    form["properties"] = props
    return form


def hostile_bpmn() -> bytes:
    from tests.engine import bpmn_samples as samples

    raw = samples.approval("xss", form="trinh.json").decode()
    raw = raw.replace('name="Trình"', f'name="{xml_escape(payload("task_name"))}"')
    raw = raw.replace('<bpmn:process id="xss"', f'<bpmn:process id="xss" name="{xml_escape(payload("p"))[:200]}"')
    raw = raw.replace("</spiffworkflow:properties>", "</spiffworkflow:properties><spiffworkflow:instructionsForEndUser>"
                      f"{xml_escape(payload('instructions'))}</spiffworkflow:instructionsForEndUser>", 1)
    return raw.encode()


@dataclass
class World:
    """Real objects owned by unit A (Sở Nông nghiệp), full of stored-XSS probes."""

    definition_id: int
    instance_id: int  # running, an open task in A's staff queue
    task_id: str  # that open task
    done_task_id: str  # a task A's staff already completed
    comment_id: int
    token_id: int  # an API token of A's staff
    substitute_id: int
    position_id: int
    user_id: int  # A's staff
    outbox_id: int | None
    timer_id: int


@pytest.fixture
def world(engine, people, clock) -> World:
    from datetime import timedelta

    from sqlalchemy import update

    from engine import directory
    from engine.models import Comment, Instance, Organisation, OutboxMessage, Position, Timer, User

    with engine.db.write() as session:
        session.execute(update(Organisation).where(Organisation.code == "SO_NNPTNT")
                        .values(name_vi=payload("org"), name_en=payload("org_en")))
        session.execute(update(User).where(User.id == people["nn.cv"]).values(full_name=payload("user")))
        session.execute(update(User).where(User.id == people["nn.ld"]).values(full_name=payload("supervisor")))
    bundle = Bundle(key="xss")
    bundle.xml = {f"{payload('file')[:60]}.bpmn": hostile_bpmn()}
    bundle.forms = {"trinh.json": hostile_form()}
    bundle.descriptor = {
        "key": "xss", "title": {"vi": payload("title"), "en": payload("title_en")},
        "list_fields": {"noi_dung": {"vi": payload("list_field"), "en": payload("list_field_en")}},
        "title_template": "{noi_dung}",
        "lanes": {"Chuyên viên": {"org": "$owner", "role": "staff"},
                  "Lãnh đạo": {"org": "$owner", "role": "supervisor"}},
    }
    definition_id = engine.deploy_bundle(bundle).definition_id
    data = {"noi_dung": payload("data"), "loai": "a", "ghi_chu": payload("note"),
            "dong": [{"muc": payload("cell")}]}
    # A case whose first step was done and sent back with a reason, then done again: history, data.
    first = engine.start_instance(people["nn.cv"], "xss", {})
    [submit] = engine.open_task_ids(first)
    engine.claim(people["nn.cv"], submit)
    engine.complete_task(people["nn.cv"], submit, data)
    [approve] = engine.open_task_ids(first)
    engine.return_task(people["nn.ld"], approve, payload("reason"))
    [again] = engine.open_task_ids(first)
    engine.claim(people["nn.cv"], again)
    engine.complete_task(people["nn.cv"], again, data)
    comment_id = engine.add_comment(people["nn.cv"], first, payload("comment"))
    # The case the matrix acts on: its first step open in A's staff queue.
    instance_id = engine.start_instance(people["nn.cv"], "xss", {})
    [task_id] = engine.open_task_ids(instance_id)
    with engine.db.write() as session:
        from engine import tokens

        token, _ = tokens.issue(session, people["nn.cv"], engine.now(), payload("token"))
        staff = session.get(User, people["nn.cv"])
        substitute = directory.add_substitute(session, people["nn.cv"], people["nn.cv2"], engine.today(),
                                              engine.today() + timedelta(days=3), at=engine.now())
        position_id = session.scalar(select(Position.id).where(Position.user_id == staff.id))
        session.execute(update(Instance).where(Instance.id == first).values(error=payload("case_error")))
        timer = Timer(kind="bpmn", dedupe_key="xss-timer", instance_id=first, due_at=engine.now(), state="failed",
                      attempts=5, last_error=payload("timer_error"), payload={}, created_at=engine.now())
        session.add(timer)
        session.flush()
        outbox_id = session.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id).limit(1))
        ids = (token.id, substitute.id, timer.id)
        assert session.get(Comment, comment_id) is not None
    return World(definition_id=definition_id, instance_id=instance_id, task_id=task_id, done_task_id=submit,
                 comment_id=comment_id, token_id=ids[0], substitute_id=ids[1], position_id=position_id,
                 user_id=people["nn.cv"], outbox_id=outbox_id, timer_id=ids[2])
