"""Authorization matrix: EVERY route of the app (`app.url_map`: pages and /api/v1) x every role.

Each route is classified below; a route added without a classification fails the test, so
the matrix stays exhaustive. Ids in the URLs are real objects owned by unit A (a case, its
open task, a comment, an API token, a definition, a user...). Outcomes:

- "login": anonymous is sent to the sign-in page (pages) or gets 401 (API);
- "deny": 403 or 404 (404 where existence itself is private);
- "ok": the authorization let the request through: 2xx/3xx for a GET, and for a POST anything
  but 401/403/404 (the action may still refuse for a business reason, e.g. an empty form).

State-changing routes that an allowed role may run get a fresh case for that role, so one
role's action cannot hide another's permission. Then IDOR: unit B's staff tries every
id-taking route on A's objects and nothing changes.
"""

from __future__ import annotations

import io
import os

import pytest
from flask import url_for
from sqlalchemy import select

from engine.models import Comment, HumanTask, Instance
from tests.engine import bpmn_samples as samples
from tests.security.conftest import ROLES
from tests.security.test_web import snapshot

ORDER = ["anonymous", "staff_b", "leader", "supervisor_a", "staff_a", "admin"]  # the refused go first

LOGIN, DENY, OK = "login", "deny", "ok"
PUBLIC = dict.fromkeys(ORDER, OK)
SIGNED_IN = {**dict.fromkeys(ORDER, OK), "anonymous": LOGIN}
SUPERVISORS = {"anonymous": LOGIN, "staff_b": DENY, "leader": OK, "supervisor_a": OK, "staff_a": DENY, "admin": OK}
ADMIN = {**dict.fromkeys(ORDER, DENY), "anonymous": LOGIN, "admin": OK}
CASE_A = {"anonymous": LOGIN, "staff_b": DENY, "leader": DENY, "supervisor_a": OK, "staff_a": OK, "admin": OK}
OWN_TOKEN = {"anonymous": LOGIN, "staff_b": DENY, "leader": DENY, "supervisor_a": DENY, "staff_a": OK, "admin": OK}
WRONG_PASSWORD = dict.fromkeys(ORDER, LOGIN)  # POST /auth/token with a wrong password: 401 for anyone
SIGNS_OUT = dict.fromkeys(ORDER, LOGIN)  # POST /logout: everyone lands on the sign-in page
# A step in A's staff queue is done by A's staff only: the supervisor reassigns it rather than
# doing it, and the administrator manages cases, not other units' work.
QUEUE_A = {**dict.fromkeys(ORDER, DENY), "anonymous": LOGIN, "staff_a": OK}
UNCLAIM_A = {**QUEUE_A, "supervisor_a": OK}  # its holder, or a supervisor of the unit
REASSIGN_A = {**dict.fromkeys(ORDER, DENY), "anonymous": LOGIN, "supervisor_a": OK, "admin": OK}

FORM = {"body": "ý kiến", "reason": "lý do", "username": "moi.cv", "full_name": "Người Mới", "note": "ghi chú",
        "password": "MatKhau@2026", "role": "staff", "org": "SO_NNPTNT", "to_user": "<peer>"}


def _json(body: dict):
    return {"json": body}


# endpoint -> (expected outcome per role, method, request kwargs, needs a fresh case per allowed role)
MATRIX = {
    # public
    "static": (PUBLIC, "GET", {"filename": "css/app.css"}, None, False),
    "set_language": (PUBLIC, "GET", {"code": "en"}, None, False),
    "auth.login": (PUBLIC, "GET", {}, None, False),
    "api.openapi": (PUBLIC, "GET", {}, None, False),
    "status.health": (PUBLIC, "GET", {}, None, False),
    "api.create_token": (WRONG_PASSWORD, "POST", {}, _json({"username": "nn.cv", "password": "sai"}), False),
    # any signed-in user
    "auth.password": (SIGNED_IN, "GET", {}, None, False),
    "status.index": (SIGNED_IN, "GET", {}, None, False),  # process titles and counts: not for the public
    "auth.preferences": (SIGNED_IN, "POST", {}, {"data": {"daily_digest": "1"}}, False),
    "tasks.inbox": (SIGNED_IN, "GET", {}, None, False),
    "instances.index": (SIGNED_IN, "GET", {}, None, False),
    "start.index": (SIGNED_IN, "GET", {}, None, False),
    "start.form": (SIGNED_IN, "GET", {"key": "xss"}, None, False),
    "start.submit": (SIGNED_IN, "POST", {"key": "xss"}, {"data": {}}, False),
    "api.me": (SIGNED_IN, "GET", {}, None, False),
    "api.list_tasks": (SIGNED_IN, "GET", {}, None, False),
    "api.list_instances": (SIGNED_IN, "GET", {}, None, False),
    "api.list_definitions": (SIGNED_IN, "GET", {}, None, False),
    "api.list_tokens": (SIGNED_IN, "GET", {}, None, False),
    "api.start_instance": (SIGNED_IN, "POST", {}, _json({"process": "xss", "data": {}}), False),
    # supervisors and leaders (their units), administrators (all)
    "dashboard.index": (SUPERVISORS, "GET", {}, None, False),
    "dashboard.export": (SUPERVISORS, "GET", {}, None, False),
    "dashboard.drill_down": (SUPERVISORS, "GET", {}, None, False),
    # a case of unit A
    "instances.detail": (CASE_A, "GET", {"instance_id": "instance"}, None, False),
    "instances.diagram_file": (CASE_A, "GET", {"instance_id": "instance"}, None, False),
    "instances.comment": (CASE_A, "POST", {"instance_id": "instance"}, {"data": FORM}, False),
    "api.get_instance": (CASE_A, "GET", {"instance_id": "instance"}, None, False),
    "api.add_comment": (CASE_A, "POST", {"instance_id": "instance"}, _json({"body": "ý kiến"}), False),
    # a task of unit A (staff queue): its unit's staff act, its supervisor may act for them
    "tasks.task": (CASE_A, "GET", {"task_id": "task"}, None, False),
    "api.get_task": (CASE_A, "GET", {"task_id": "task"}, None, False),
    "tasks.claim": (QUEUE_A, "POST", {"task_id": "task"}, None, True),
    "tasks.unclaim": (UNCLAIM_A, "POST", {"task_id": "task"}, None, True),
    "tasks.complete": (QUEUE_A, "POST", {"task_id": "task"}, {"data": {"noi_dung": "x"}}, True),
    "tasks.return_task": (QUEUE_A, "POST", {"task_id": "task"}, {"data": FORM}, True),
    "tasks.reassign": (REASSIGN_A, "POST", {"task_id": "task"}, {"data": FORM}, True),
    "api.claim_task": (QUEUE_A, "POST", {"task_id": "task"}, None, True),
    "api.unclaim_task": (UNCLAIM_A, "POST", {"task_id": "task"}, None, True),
    "api.complete_task": (QUEUE_A, "POST", {"task_id": "task"}, _json({"data": {"noi_dung": "x"}}), True),
    "api.return_task": (QUEUE_A, "POST", {"task_id": "task"}, _json({"reason": "lý do"}), True),
    "api.signal_task": (QUEUE_A, "POST", {"task_id": "task"}, _json({"name": "khong_co"}), True),  # 400 for A
    "api.reassign_task": (REASSIGN_A, "POST", {"task_id": "task"}, _json({"username": "nn.cv2"}), True),
    "tasks.save_draft": (QUEUE_A, "POST", {"task_id": "task"}, {"data": {"noi_dung": "nháp"}}, True),
    "tasks.discard_draft": (QUEUE_A, "POST", {"task_id": "task"}, {"data": {}}, True),
    "tasks.signal": (QUEUE_A, "POST", {"task_id": "task"}, {"data": {"signal": "khong_co"}}, True),  # 400 for A
    "api.get_task_draft": (QUEUE_A, "GET", {"task_id": "task"}, None, True),
    "api.save_task_draft": (QUEUE_A, "PUT", {"task_id": "task"}, _json({"data": {"noi_dung": "nháp"}}), True),
    "api.discard_task_draft": (QUEUE_A, "DELETE", {"task_id": "task"}, None, True),
    # an API token of A's staff
    "api.revoke_token": (OWN_TOKEN, "DELETE", {"token_id": "token"}, None, True),
    # administrators only
    "instances.admin_action": (ADMIN, "POST", {"instance_id": "instance", "action": "suspend"}, {"data": FORM},
                               True),
    "api.cancel_instance": (ADMIN, "POST", {"instance_id": "instance"}, _json({"reason": "lý do"}), True),
    "api.suspend_instance": (ADMIN, "POST", {"instance_id": "instance"}, _json({"reason": "lý do"}), True),
    "api.resume_instance": (ADMIN, "POST", {"instance_id": "instance"}, _json({}), True),
    "api.deliver_message": ({**ADMIN, "admin": 404}, "POST", {}, _json({"name": "khong_co"}), False),  # no waiter
    "api.send_signal": ({**ADMIN, "admin": 404}, "POST", {}, _json({"name": "khong_co"}), False),  # no waiter
    "api.deploy_definition": (ADMIN, "POST", {}, None, False),  # body built below (multipart)
    "admin.index": (ADMIN, "GET", {}, None, False),
    "admin.users": (ADMIN, "GET", {}, None, False),
    "admin.user": (ADMIN, "GET", {"user_id": "user"}, None, False),
    "admin.organisations": (ADMIN, "GET", {}, None, False),
    "admin.substitutes": (ADMIN, "GET", {}, None, False),
    "admin_ops.definitions": (ADMIN, "GET", {}, None, False),
    "admin_ops.definition": (ADMIN, "GET", {"definition_id": "definition"}, None, False),
    "admin_ops.mail_log": (ADMIN, "GET", {}, None, False),
    "admin_ops.mail": (ADMIN, "GET", {"outbox_id": "outbox"}, None, False),
    "admin_ops.timers": (ADMIN, "GET", {}, None, False),
    "admin_ops.calendar": (ADMIN, "GET", {}, None, False),
    "admin_ops.deploy": (ADMIN, "POST", {}, {"data": {}}, False),
    "admin_ops.retry_mail": (ADMIN, "POST", {}, {"data": {"ids": ["0"]}}, False),
    "admin_ops.retry_timers": (ADMIN, "POST", {}, {"data": {"ids": ["0"]}}, False),
    "admin_ops.add_calendar_day": (ADMIN, "POST", {}, {"data": {"day": "", "kind": "off"}}, False),
    "admin.log": (ADMIN, "GET", {}, None, False),
    "admin_ops.remove_calendar_day": ({**ADMIN, "admin": 404}, "POST", {"day": "2026-12-24"}, {"data": {}},
                                      False),  # a day that was never set
    "admin.create_user": (ADMIN, "POST", {}, {"data": {"username": ""}}, False),
    "admin.add_substitute": (ADMIN, "POST", {}, {"data": {}}, False),
    "admin.merge": (ADMIN, "POST", {}, {"data": {}}, False),
    # last: these change A's staff member or their substitute
    "admin.remove_substitute": (ADMIN, "POST", {"substitute_row": "substitute"}, {"data": {}}, False),
    "admin.set_password": (ADMIN, "POST", {"user_id": "user"}, {"data": {"password": "MatKhau@2027"}}, False),
    "admin.add_position": (ADMIN, "POST", {"user_id": "user"}, {"data": {"org": "SO_YT", "role": "staff"}}, False),
    "admin.remove_position": (ADMIN, "POST", {"user_id": "user", "position_id": "position"}, {"data": {}}, False),
    "admin.change_user": (ADMIN, "POST", {"user_id": "user", "change": "revoke_admin"}, {"data": {}}, False),
    "auth.logout": (SIGNS_OUT, "POST", {}, None, False),  # the very last: it ends the sessions
}


def test_every_route_is_classified(web):
    endpoints = {rule.endpoint for rule in web.url_map.iter_rules()}
    unclassified = sorted(endpoints - set(MATRIX))
    assert not unclassified, f"routes without an authorization rule in this matrix: {unclassified}"
    stale = sorted(set(MATRIX) - endpoints)
    assert not stale, f"classified routes that no longer exist: {stale}"


def _outcome(response, api: bool) -> str:
    status = response.status_code
    if status in (401, 429) and api:  # 429: the same username locked after five wrong passwords
        return LOGIN
    if status in (302, 303) and "/login" in response.headers.get("Location", ""):
        return LOGIN
    if status in (403, 404):
        return DENY
    return OK


class Actors:
    """A signed-in page client and an API token per role."""

    def __init__(self, web, people, bearer):
        self.pages, self.headers = {}, {}
        for role, name in ROLES.items():
            client = web.test_client()
            if name is not None:
                with client.session_transaction() as session:
                    session["_user_id"] = str(people[name])
                    session["_fresh"] = True
            self.pages[role] = client
            self.headers[role] = bearer(name)


def _fresh(engine, people, role: str, world, endpoint: str) -> dict:
    """New objects for one allowed role's state-changing request."""
    if endpoint == "api.revoke_token":
        from engine import tokens

        with engine.db.write() as session:
            token, _ = tokens.issue(session, people["nn.cv"], engine.now(), "matrix")
            return {"token": token.id}
    instance_id = engine.start_instance(people["nn.cv"], "xss", {})
    [task_id] = engine.open_task_ids(instance_id)
    if endpoint in ("tasks.unclaim", "api.unclaim_task"):
        engine.claim(people["nn.cv"], task_id)
    if endpoint == "api.resume_instance":
        engine.suspend(people["admin"], instance_id, "tạm dừng")
    return {"instance": instance_id, "task": task_id}


def _request(app, actors, role, endpoint, spec, ids):
    method, path_args, body = spec[1], spec[2], spec[3]
    args = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in path_args.items()}
    with app.test_request_context():
        url = url_for(endpoint, **args)
    api = url.startswith("/api/")
    kwargs = dict(body or {})
    if isinstance(kwargs.get("data"), dict):
        kwargs["data"] = {k: str(ids["peer"]) if v == "<peer>" else v for k, v in kwargs["data"].items()}
    if endpoint == "api.deploy_definition":
        kwargs = {"content_type": "multipart/form-data",
                  "data": {"files": [(io.BytesIO(samples.approval("ma_tran")), "ma_tran.bpmn")]}}
    if api:
        client = actors.pages["anonymous"]
        kwargs["headers"] = actors.headers[role]
    else:
        client = actors.pages[role]
    response = client.open(url, method=method, **kwargs)
    got = _outcome(response, api)
    if got == OK and method == "GET":
        assert response.status_code < 400, (endpoint, role, response.status_code)
    return got, response


def test_authorization_matrix(web, engine, people, world, bearer):
    actors = Actors(web, people, bearer)
    base_ids = {"instance": world.instance_id, "task": world.task_id, "token": world.token_id,
                "user": world.user_id, "definition": world.definition_id, "outbox": world.outbox_id or 1,
                "substitute": world.substitute_id, "position": world.position_id, "peer": people["nn.cv2"]}
    wrong = []
    for endpoint, spec in MATRIX.items():  # in order: the routes that change A's staff member come last
        expected = spec[0]
        for role in ORDER:
            ids = dict(base_ids)
            # unclaim: always on a claimed task (unclaiming an unclaimed one is a harmless no-op)
            if spec[4] and (expected[role] == OK or "unclaim" in endpoint):
                ids.update(_fresh(engine, people, role, world, endpoint))
            got, response = _request(web, actors, role, endpoint, spec, ids)
            if os.environ.get("DIEUPHOI_MATRIX_PROBE"):
                print(f"{endpoint:32} {role:13} {response.status_code} {got}")
            if isinstance(expected[role], int):
                got = response.status_code
            if got != expected[role]:
                wrong.append((endpoint, role, expected[role], got, response.status_code))
    assert not wrong, "\n".join(map(str, wrong))


ID_ROUTES = [e for e, spec in MATRIX.items() if any(v in ("instance", "task", "token") for v in spec[2].values())]


def _state_of_a(engine, world) -> tuple:
    with engine.db.read() as session:
        inst = session.get(Instance, world.instance_id)
        task = session.get(HumanTask, world.task_id)
        comments = session.scalars(select(Comment.id).where(Comment.instance_id == world.instance_id)).all()
        return inst.status, inst.version, task.state, task.assignee_id, tuple(comments)


@pytest.mark.parametrize("victim", ["open", "done"])
def test_unit_b_guessing_unit_a_ids_gets_nothing_and_changes_nothing(web, engine, people, world, bearer, victim):
    """IDOR: every id-taking route, with A's real ids (an open task and a finished one), as B's staff."""
    actors = Actors(web, people, bearer)
    ids = {"instance": world.instance_id, "task": world.task_id if victim == "open" else world.done_task_id,
           "token": world.token_id, "peer": people["nn.cv2"]}
    before, rows = _state_of_a(engine, world), snapshot(engine)
    for endpoint in ID_ROUTES:
        got, response = _request(web, actors, "staff_b", endpoint, MATRIX[endpoint], ids)
        assert got == DENY, (endpoint, response.status_code, response.get_data(as_text=True)[:200])
    assert _state_of_a(engine, world) == before
    assert snapshot(engine) == rows
