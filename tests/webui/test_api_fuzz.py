"""Fuzzing the API from its own OpenAPI document (schemathesis), over HTTP on 127.0.0.1 only.

Every operation gets its documented examples, schemathesis's coverage cases (boundaries,
missing and wrong-typed fields, undeclared methods) and random valid and invalid inputs,
sent in turn as a staff member and as an administrator. Any 5xx, any answer that breaks the
documented status codes, content types, headers or response schemas, any invalid input
accepted, or any protected operation answering without credentials fails the test. The
examples point at a real case, task and token, so the happy paths run too.

Not checked: schemathesis's "positive data acceptance" (schema-valid input must get 2xx):
a schema-valid request can rightly be refused with 400 by the deeper checks (a process's
own form, an unknown organisation, a NUL character no database column can store).

Bounded: MAX_EXAMPLES random cases per operation, no deadline per example, no example
database, and a time share per operation past which its remaining cases are skipped.
"""

from __future__ import annotations

import collections
import copy
import threading
import time

import pytest
import schemathesis
from argon2 import PasswordHasher
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from werkzeug.serving import WSGIRequestHandler, make_server

from engine import directory, tokens
from tests.webui.conftest import API, GOOD, only_task
from webui.api.spec import openapi_document

MAX_EXAMPLES = 10
# Time spent in requests per operation and database; past it an operation's remaining cases are
# skipped (and counted), so a slow machine shortens the run instead of failing it.
SECONDS_PER_OPERATION = 1.2

schema = schemathesis.pytest.from_fixture("fuzz_schema")


@pytest.fixture(autouse=True)
def _pytest9_node_id(request):
    """schemathesis 4.32's lazy loader renames the test node through `_nodeid`, which pytest 9 dropped."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


@pytest.fixture
def live_server(app):
    """The app served by werkzeug on 127.0.0.1 (an ephemeral port) in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="api-fuzz-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def fast_password_hashing(monkeypatch):
    """Argon2 is slow on purpose; the fuzzer needs its input handling, not its cost."""
    monkeypatch.setattr(directory, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    monkeypatch.setattr(tokens, "_dummy_hash", None)


@pytest.fixture
def fuzz_target(engine, people, duyet, live_server, fast_password_hashing):
    """A running case with an open task, and a token each for a staff member and an administrator."""
    case = engine.start_instance(people["nn.cv"], "duyet", {"ghi_chu": "fuzz"})
    with engine.db.write() as session:
        _, staff = tokens.issue(session, people["nn.cv"], engine.now(), "fuzz")
        row, admin = tokens.issue(session, people["admin"], engine.now(), "fuzz")
        token_id = row.id
    target = {
        "base_url": live_server + API,
        "headers": {"nn.cv": {"Authorization": f"Bearer {staff}"}, "admin": {"Authorization": f"Bearer {admin}"}},
        "examples": {"instance_id": case, "task_id": only_task(engine, case), "token_id": token_id},
        "callers": collections.deque(["nn.cv", "admin"]),
        "spent": collections.Counter(),
        "sent": collections.Counter(),
        "skipped": collections.Counter(),
    }
    yield target
    sent, skipped = sum(target["sent"].values()), sum(target["skipped"].values())
    print(f"fuzz: {sent} requests in {sum(target['spent'].values()):.1f}s, {skipped} cases over budget skipped",
          dict(target["skipped"]) or "")


def documented_with_examples(examples: dict) -> dict:
    """The served document plus examples that reach real rows (schemathesis's explicit phase uses them)."""
    document = copy.deepcopy(openapi_document())
    bodies = {
        ("/instances", "post"): {"process": "duyet", "data": {"ghi_chu": "thử"}},
        ("/tasks/{task_id}/complete", "post"): {"data": GOOD},
        ("/tasks/{task_id}/return", "post"): {"reason": "Bổ sung hồ sơ"},
        ("/tasks/{task_id}/reassign", "post"): {"username": "nn.cv2", "note": "Chuyển"},
        ("/instances/{instance_id}/comments", "post"): {"body": "Ý kiến thử"},
        ("/messages", "post"): {"name": "ket_qua", "correlations": {"ma_ho_so": "HS-1"}, "payload": {"a": 1}},
        ("/auth/token", "post"): {"username": "nn.cv", "password": "khong-dung-dau"},
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in examples:
                    parameter["example"] = examples[parameter["name"]]
            body = bodies.get((path, method))
            if body is not None:
                operation["requestBody"]["content"]["application/json"]["example"] = body
    return document


@pytest.fixture
def fuzz_schema(fuzz_target):
    loaded = schemathesis.openapi.from_dict(documented_with_examples(fuzz_target["examples"]))
    loaded.config.update(base_url=fuzz_target["base_url"])
    return loaded


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_finds_no_server_error_and_no_answer_outside_the_schema(case, fuzz_target):
    spent = fuzz_target["spent"]
    label = case.operation.label
    if spent[label] > SECONDS_PER_OPERATION:
        fuzz_target["skipped"][label] += 1  # over this operation's share of the budget on a slow machine
        return
    callers = fuzz_target["callers"]
    callers.rotate()  # staff and administrator take turns, so each sees every operation
    started = time.monotonic()
    try:
        case.call_and_validate(headers=fuzz_target["headers"][callers[0]], timeout=10,
                               excluded_checks=[positive_data_acceptance])
    finally:
        spent[label] += time.monotonic() - started
        fuzz_target["sent"][label] += 1
