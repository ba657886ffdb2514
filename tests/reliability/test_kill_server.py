"""kill -9 of `dieuphoi serve` while clients complete tasks over the REST API.

Each trial: start cases, let two client threads submit and approve them over HTTP (every
request logged with whether a 2xx came back), SIGKILL the server after a random number of
acknowledgements while requests are in flight, restart it, then check that every acknowledged
completion is in the database with its data, that nothing is half-applied (invariants), that
the requests left without an answer are either fully applied or not at all (a retry answers
409 or 200 accordingly), and on SQLite that `PRAGMA integrity_check` is ok.
"""

from __future__ import annotations

import random
import threading
from uuid import UUID, uuid4

from engine import serialization
from engine.definitions import DefinitionCache
from engine.models import Instance
from tests.engine.helpers import only_open_task
from tests.reliability.conftest import deploy_approval
from tests.reliability.harness import Client, History, issue_tokens, rows, scalar, trials, wait_until
from tests.reliability.invariants import sqlite_integrity, violations

CASES_PER_TRIAL = 12
CLIENTS = 2


def step_data(engine, task_id: str) -> dict:
    """The data the stored workflow holds for the step behind a task row (fresh parse, no cache)."""
    [(iid, spiff_id)] = rows(engine, "SELECT instance_id, spiff_task_id FROM human_tasks WHERE id = :id", id=task_id)
    with engine.db.read() as session:
        inst = session.get(Instance, iid)
        parsed = DefinitionCache(10 * 1024 * 1024).get(session, inst.definition_id)
        wf = serialization.loads(inst.state, parsed.dialect, inst.definition_id, parsed.spec_pair)
    return dict(wf.get_task_from_id(UUID(spiff_id)).data)


def _drive(clients: dict, base_url: str, queue: list[int], engine_tasks: dict, stop: threading.Event,
           lock: threading.Lock, trial: int):
    """Submit then approve each case until the queue is empty or the server stops answering."""
    staff, boss = clients["nn.cv"], clients["nn.ld"]
    while not stop.is_set():
        with lock:
            if not queue:
                return
            iid = queue.pop()
        op = staff.act(base_url, "complete", engine_tasks[iid], {"trial": trial, "case": iid, "nonce": uuid4().hex})
        if not op.acked:
            return
        nxt = op.body["next_tasks"][0]["id"]
        op = boss.act(base_url, "complete", nxt, {"duyet": True, "nonce": uuid4().hex})
        if not op.acked:
            return


def test_kill9_server_during_completions_loses_nothing_acknowledged(engine, people, cluster, db_url):
    deploy_approval(engine, ladder=None)
    tokens = issue_tokens(engine, people, ["nn.cv", "nn.ld"])
    rng = random.Random(7)
    n_trials = trials(4)
    server = None
    summary = []
    for trial in range(n_trials):
        ids = [engine.start_instance(people["nn.cv"], "duyet") for _ in range(CASES_PER_TRIAL)]
        submit = {iid: only_open_task(engine, iid).id for iid in ids}
        if server is None:
            server = cluster.serve()
        history = History()
        clients = [{n: Client(f"{n}#{k}", t, history) for n, t in tokens.items()} for k in range(CLIENTS)]
        stop, lock, queue = threading.Event(), threading.Lock(), list(ids)
        threads = [threading.Thread(target=_drive, args=(c, server.url, queue, submit, stop, lock, trial))
                   for c in clients]
        for t in threads:
            t.start()
        target = rng.randint(2, 2 * CASES_PER_TRIAL - 4)  # kill after this many acknowledgements
        wait_until(lambda h=history, n=target, ts=threads: sum(op.acked for op in h.ops) >= n
                   or not any(t.is_alive() for t in ts), 60, "acknowledged completions", interval=0.005)
        server.kill9()
        stop.set()
        for t in threads:
            t.join(30)
        for c in clients:
            for client in c.values():
                client.close()
        if db_url.startswith("sqlite"):
            assert sqlite_integrity(db_url) == "ok"
        server = cluster.serve()

        acked = [op for op in history.ops if op.acked]
        lost = [op for op in history.ops if not op.acked]
        assert all(op.status is None for op in lost), [(op.status, op.body) for op in lost]  # no 4xx/5xx before kill
        for op in acked:
            state = scalar(engine, "SELECT state FROM human_tasks WHERE id = :id", id=op.task_id)
            assert state == "completed", (op, state)
            assert step_data(engine, op.task_id)["nonce"] == op.data["nonce"], op
        assert violations(db_url) == [], cluster.tails()
        # An unanswered request was applied entirely or not at all: sending it again says which.
        retry_history = History()
        applied = 0
        for op in lost:
            before = scalar(engine, "SELECT state FROM human_tasks WHERE id = :id", id=op.task_id)
            user = "nn.cv" if "trial" in op.data else "nn.ld"
            again = Client("retry", tokens[user], retry_history).act(server.url, "complete", op.task_id, op.data)
            expected = 409 if before == "completed" else 200
            applied += before == "completed"
            assert again.status == expected, (op, before, again.status, again.body)
            if again.status == 409:
                assert "đã được xử lý" in again.body["error"]["message"]
        assert violations(db_url) == []
        summary.append((len(history.ops), len(acked), len(lost), applied))
    print(f"kill -9 server, {db_url.split(':')[0]}: {n_trials} trials, (requests, acked, unanswered, of which applied) per trial: "
          f"{summary}")
    wait_until(lambda: server.poll() is None, 1, "server alive")
