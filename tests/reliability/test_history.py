"""Jepsen-style history check on PostgreSQL: two web processes and a worker, users racing each other and timers.

Every client request is logged with its outcome (ok / 409 / other); afterwards the history is
checked against the database's audit events, task rows, timers and outbox:

1. claim race: two colleagues claim each task at once through different web processes;
2. completion race: the claimant submits each task from two tabs (two web processes) at once,
   with different data;
3. timer race: the supervisor approves from two tabs exactly when the approval's PT1H boundary
   timer falls due (the worker fires it);
4. escalation race: the clock jumps past the reminder and both escalation levels of the
   remaining tasks while their claimants submit them.

Passing means: exactly one winner per contested action (a client or the timer), every loser a
409 with a Vietnamese message, no 5xx and no unanswered request, the winner's data in the stored
workflow (no lost update), no timer fired twice, no reminder or escalation after the task
closed, one email per dedupe key, and the invariants.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from uuid import uuid4

import pytest

from tests.engine.helpers import only_open_task
from tests.reliability.conftest import deploy_approval
from tests.reliability.harness import Client, History, issue_tokens, rows, scalar, trials, wait_until
from tests.reliability.invariants import violations
from tests.reliability.test_kill_server import step_data

pytestmark = pytest.mark.postgres

CONFLICT_MESSAGES = ("Công việc này đã được xử lý", "Người khác vừa xử lý hồ sơ này", "Bước này không còn",
                     "Hồ sơ đã kết thúc", "Công việc đã được người khác nhận xử lý")


def _race(jobs, delays=None) -> list:
    """Run (client, base_url, kind, task_id, data) jobs all at once; returns their Ops in job order.

    `delays[i // 2]` is a think time before a pair of racers sends (both at once), so the worker's
    timers sometimes get there first.
    """
    barrier = threading.Barrier(len(jobs))
    results = [None] * len(jobs)

    def run(i, job):
        client, url, kind, task_id, data = job
        barrier.wait(30)
        if delays:
            time.sleep(delays[i // 2])
        results[i] = client.act(url, kind, task_id, data)

    threads = [threading.Thread(target=run, args=(i, j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _one_winner(ops, what: str) -> object:
    wins = [op for op in ops if op.acked]
    losers = [op for op in ops if not op.acked]
    assert len(wins) == 1, (what, [(op.client, op.status, op.body) for op in ops])
    for op in losers:
        assert op.status == 409, (what, op.status, op.body, op.error)
        assert op.body["error"]["message"].startswith(CONFLICT_MESSAGES), op.body
    return wins[0]


def test_history_of_racing_users_and_timers_has_one_winner_each(engine, people, cluster, clock, db_url):
    if db_url.startswith("sqlite"):
        pytest.skip("several web and worker processes share PostgreSQL")
    deploy_approval(engine, boundary="PT1H")
    tokens = issue_tokens(engine, people, ["nn.cv", "nn.cv2", "nn.ld"])
    web1, web2 = cluster.serve("web1", scheduler=False), cluster.serve("web2", scheduler=False)
    worker = cluster.worker(interval=0.1)
    history = History()
    client = {(u, w.name): Client(f"{u}@{w.name}", t, history) for u, t in tokens.items() for w in (web1, web2)}
    url = {"web1": web1.url, "web2": web2.url}
    summary = defaultdict(int)
    rng = random.Random(5)
    for _trial in range(trials(1)):
        cluster.set_clock(clock.now())
        cases = [engine.start_instance(people["nn.cv"], "duyet") for _ in range(16)]
        submit = {iid: only_open_task(engine, iid).id for iid in cases}
        early, late = cases[:10], cases[10:]

        # 1. claim race: nn.cv through web1 and nn.cv2 through web2, for every task at once.
        jobs = [(client[(u, w)], url[w], "claim", submit[i], {}) for i in cases for u, w in
                (("nn.cv", "web1"), ("nn.cv2", "web2"))]
        ops = _race(jobs)
        claimant = {}
        for k, iid in enumerate(cases):
            win = _one_winner(ops[2 * k: 2 * k + 2], f"claim {iid}")
            claimant[iid] = win.client.split("@")[0]
            assert scalar(engine, "SELECT assignee_id FROM human_tasks WHERE id = :id", id=submit[iid]) == \
                people[claimant[iid]]
        summary["claim races"] += len(cases)

        # 2. completion race: the claimant submits from two tabs on two web processes.
        jobs = [(client[(claimant[i], w)], url[w], "complete", submit[i], {"nonce": uuid4().hex}) for i in early
                for w in ("web1", "web2")]
        ops = _race(jobs)
        approve = {}
        for k, iid in enumerate(early):
            win = _one_winner(ops[2 * k: 2 * k + 2], f"submit {iid}")
            assert step_data(engine, submit[iid])["nonce"] == win.data["nonce"]  # the winner's data, not the loser's
            approve[iid] = win.body["next_tasks"][0]["id"]
        summary["completion races"] += len(early)

        # 3. timer race: approvals sent from two tabs the moment the boundary timer falls due.
        clock.advance(hours=1)
        cluster.set_clock(clock.now())
        jobs = [(client[("nn.ld", w)], url[w], "complete", approve[i], {"ok": uuid4().hex}) for i in early
                for w in ("web1", "web2")]
        ops = _race(jobs, [rng.uniform(0, 0.15) for _ in early])
        wait_until(lambda: scalar(engine, "SELECT count(*) FROM timers WHERE state IN ('pending', 'claimed') AND "
                                          "due_at <= :now", now=clock.now()) == 0, 30, "due timers", alive=[worker])
        timer_wins = 0
        for k, iid in enumerate(early):
            pair = ops[2 * k: 2 * k + 2]
            fired = scalar(engine, "SELECT count(*) FROM audit_events WHERE action = 'timer_fired' AND "
                                   "instance_id = :i", i=iid)
            state = scalar(engine, "SELECT state FROM human_tasks WHERE id = :id", id=approve[iid])
            if fired:  # the timer won: both approvals refused, the step cancelled by the boundary event
                assert (fired, state) == (1, "cancelled")
                assert all(op.status == 409 for op in pair), [(op.status, op.body) for op in pair]
                timer_wins += 1
            else:
                win = _one_winner(pair, f"approve {iid}")
                assert state == "completed" and step_data(engine, approve[iid])["ok"] == win.data["ok"]
        summary["timer races"] += len(early)
        summary["won by the timer"] += timer_wins

        # 4. escalation race: the clock jumps past reminder and escalations while the claimants submit.
        clock.advance(days=14)
        jobs = [(client[(claimant[i], w)], url[w], "complete", submit[i], {"nonce": uuid4().hex}) for i in late
                for w in ("web1", "web2")]
        cluster.set_clock(clock.now())
        ops = _race(jobs, [rng.uniform(0, 0.15) for _ in late])
        for k, iid in enumerate(late):
            _one_winner(ops[2 * k: 2 * k + 2], f"late submit {iid}")
        wait_until(lambda: scalar(engine, "SELECT count(*) FROM timers WHERE state IN ('pending', 'claimed') AND "
                                          "due_at <= :now", now=clock.now()) == 0, 30, "due timers", alive=[worker])
        for iid in late:
            events = rows(engine, "SELECT id, action FROM audit_events WHERE task_id = :t ORDER BY id", t=submit[iid])
            done = [e_id for e_id, action in events if action == "task_completed"]
            after = [action for e_id, action in events if e_id > done[0] and action in ("task_reminded",
                                                                                          "task_escalated")]
            assert not after, (iid, events)
        summary["escalation races"] += len(late)
        summary["escalations fired"] += scalar(engine, "SELECT count(*) FROM audit_events WHERE action = "
                                                       "'task_escalated'")
        clock.advance(days=1)

    worker.kill9()
    outcomes = history.outcomes()
    assert set(outcomes) <= {"ok", "conflict"}, outcomes  # no 5xx, nothing unanswered
    per_instance = rows(engine, "SELECT instance_id, count(*) FROM audit_events WHERE action = 'timer_fired' "
                                "GROUP BY instance_id HAVING count(*) > 1")
    assert per_instance == []
    escalation_mail = scalar(engine, "SELECT count(*) FROM outbox WHERE kind = 'escalation'")
    assert escalation_mail == scalar(engine, "SELECT count(*) FROM audit_events WHERE action = 'task_escalated'")
    assert violations(db_url) == [], cluster.tails()
    print(f"history: {len(history.ops)} requests {outcomes}; {dict(summary)}")
    for c in client.values():
        c.close()
