"""kill -9 of a `dieuphoi worker` while it fires timers (BPMN boundary timers, reminders, escalations).

Each trial: start cases, some waiting on a PT1H boundary timer, some on a task with a reminder
and two escalation levels; move the shared injected clock past all of them; two workers drain
the table; one is SIGKILLed after a random number of firings (often holding a claimed batch);
the clock then moves past the lease (300 s) and a fresh worker takes the orphaned rows. Checks:
every timer done, each fired once (audit), the highest escalation level applied, no email
twice, and the invariants (nothing half-applied). Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from datetime import timedelta

from engine.timers import LEASE_SECONDS
from tests.engine.helpers import only_open_task
from tests.reliability.conftest import deploy_approval
from tests.reliability.harness import rows, scalar, trials, wait_until
from tests.reliability.invariants import sqlite_integrity, violations

CASES = 24  # per trial: half wait on a boundary timer, half on a reminder and two escalations


def _fired(engine) -> int:
    return scalar(engine, "SELECT count(*) FROM audit_events WHERE action IN "
                          "('timer_fired', 'task_reminded', 'task_escalated')")


def test_kill9_worker_while_firing_timers_fires_each_once(engine, people, cluster, clock, db_url):
    deploy_approval(engine, boundary="PT1H")
    rng = random.Random(11)
    summary = []
    for trial in range(trials(3)):
        ids = [engine.start_instance(people["nn.cv"], "duyet") for _ in range(CASES)]
        boundary_ids = ids[: CASES // 2]
        for iid in boundary_ids:
            engine.complete_task(people["nn.cv"], only_open_task(engine, iid).id, {})
        ladder_tasks = [only_open_task(engine, iid).id for iid in ids[CASES // 2:]]
        due = scalar(engine, "SELECT count(*) FROM timers WHERE state = 'pending' AND kind <> 'digest'")
        fired_before = _fired(engine)
        clock.advance(days=14)  # past the boundary timers and every escalation level
        cluster.set_clock(clock.now())
        workers = [cluster.worker(f"worker{trial}a"), cluster.worker(f"worker{trial}b")]
        victim = workers[rng.randrange(2)]
        target = fired_before + rng.randint(1, due - 4)
        wait_until(lambda n=target: _fired(engine) >= n, 60, "timers to fire", interval=0.01, alive=workers)
        owner = f"%:{victim.pid}:%"
        held = scalar(engine, "SELECT count(*) FROM timers WHERE state = 'claimed' AND lease_owner LIKE :o", o=owner)
        victim.kill9()
        survivor = next(w for w in workers if w is not victim)
        wait_until(lambda: scalar(engine, "SELECT count(*) FROM timers WHERE state = 'pending' AND kind <> 'digest'") == 0, 60,
                   "the survivor to drain the pending timers", alive=[survivor])
        # The dead worker's claims come back only when their lease runs out: move the clock past it.
        clock.advance(seconds=LEASE_SECONDS + 1)
        cluster.set_clock(clock.now())
        fresh = cluster.worker(f"worker{trial}c")
        wait_until(lambda: scalar(engine, "SELECT count(*) FROM timers WHERE state IN ('pending', 'claimed') AND kind <> 'digest'") == 0,
                   60, "every timer to be done", alive=[survivor, fresh])
        survivor.kill9()
        fresh.kill9()

        fired = dict(rows(engine, "SELECT instance_id, count(*) FROM audit_events WHERE action = 'timer_fired' "
                                  "GROUP BY instance_id"))
        assert {i: fired.get(i) for i in boundary_ids} == {i: 1 for i in boundary_ids}
        completed = scalar(engine, "SELECT count(*) FROM instances WHERE status = 'completed' AND id IN "
                                   f"({', '.join(map(str, boundary_ids))})")
        assert completed == len(boundary_ids)
        for task_id in ladder_tasks:
            assert scalar(engine, "SELECT escalation_level FROM human_tasks WHERE id = :id", id=task_id) == 2
            assert scalar(engine, "SELECT count(*) FROM audit_events WHERE action = 'task_reminded' AND "
                                  "task_id = :id", id=task_id) == 1
        assert scalar(engine, "SELECT count(*) FROM timers WHERE state = 'failed'") == 0
        assert violations(db_url) == [], cluster.tails()
        if db_url.startswith("sqlite"):
            assert sqlite_integrity(db_url) == "ok"
        summary.append((due, target - fired_before, held))
        clock.advance(hours=1)
    print(f"kill -9 worker, {db_url.split(':')[0]}: (due timers, kill after N fired, claims orphaned) per trial: "
          f"{summary}")


def test_lease_is_not_taken_over_early(engine, people, cluster, clock, db_url):
    """A dead worker's claimed rows stay claimed until the lease is over, then fire once."""
    deploy_approval(engine, boundary="PT1H", ladder=None)
    iid = engine.start_instance(people["nn.cv"], "duyet")
    engine.complete_task(people["nn.cv"], only_open_task(engine, iid).id, {})
    clock.advance(hours=2)
    with engine.db.engine.begin() as conn:  # a worker that claimed the row, then died
        from sqlalchemy import text

        conn.execute(text("UPDATE timers SET state = 'claimed', lease_owner = 'dead:1:x', lease_until = :u, "
                          "attempts = 1"), {"u": clock.now() + timedelta(seconds=LEASE_SECONDS)})
    sentinel = engine.start_instance(people["nn.cv"], "duyet")  # fires at the same clock: proves a tick ran
    clock.advance(hours=-1)
    engine.complete_task(people["nn.cv"], only_open_task(engine, sentinel).id, {})
    clock.advance(hours=1, seconds=LEASE_SECONDS - 5)
    cluster.set_clock(clock.now())
    worker = cluster.worker()
    wait_until(lambda: scalar(engine, "SELECT state FROM timers WHERE instance_id = :i", i=sentinel) == "done", 30,
               "the sentinel timer", alive=[worker])
    assert scalar(engine, "SELECT state FROM timers WHERE instance_id = :i", i=iid) == "claimed"
    clock.advance(seconds=10)
    cluster.set_clock(clock.now())
    wait_until(lambda: scalar(engine, "SELECT state FROM timers WHERE instance_id = :i", i=iid) == "done", 30,
               "the orphaned timer after its lease", alive=[worker])
    worker.kill9()
    assert scalar(engine, "SELECT count(*) FROM audit_events WHERE action = 'timer_fired' AND instance_id = :i",
                  i=iid) == 1
    assert violations(db_url) == []
