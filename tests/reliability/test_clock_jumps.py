"""Clock jumps forward and back under a running `dieuphoi worker` (APScheduler ticker), across a kill -9 and restart.

tests/engine/test_deadlines.py covers a jump back inside one process calling fire_due_timers;
this drives the real ticker in a subprocess through the injected clock file. A "sentinel" case
whose boundary timer is due exactly at the new clock value proves the worker ticked at that
time before anything is asserted (no sleeping). Passing means: the reminder and each
escalation level fire once, never before their due time, not again after a jump back or a
restart, and the invariants hold.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from engine.models import Timer
from tests.engine.helpers import only_open_task
from tests.reliability.conftest import deploy_approval
from tests.reliability.harness import rows, scalar, wait_until
from tests.reliability.invariants import violations


def _timer_times(engine, task_id: str, column: str) -> dict:
    """{kind:level: due_at or fired_at} as aware datetimes (through the ORM: one convention on both databases)."""
    with engine.db.read() as session:
        return {f"{t.kind}:{t.level}": getattr(t, column) for t in session.scalars(
            select(Timer).where(Timer.task_id == task_id))}


def _counts(engine, task_id: str) -> dict:
    found = dict(rows(engine, "SELECT kind || ':' || level, state FROM timers WHERE task_id = :t", t=task_id))
    fired = rows(engine, "SELECT action FROM audit_events WHERE task_id = :t AND action IN "
                         "('task_reminded', 'task_escalated') ORDER BY id", t=task_id)
    return {"timers": found, "fired": [a for (a,) in fired]}


def test_clock_jumps_and_a_restart_fire_each_deadline_once_never_early(engine, people, cluster, clock, db_url):
    deploy_approval(engine, boundary="PT1H")
    iid = engine.start_instance(people["nn.cv"], "duyet")
    task = only_open_task(engine, iid)
    due = _timer_times(engine, task.id, "due_at")
    remind, esc1, esc2 = due["remind:0"], due["escalate:1"], due["escalate:2"]
    workers = []

    def jump(to):
        """Set every process's clock to `to` and wait until the worker has ticked at that time."""
        clock.set(to - timedelta(hours=1))
        sentinel = engine.start_instance(people["nn.cv"], "duyet")
        engine.complete_task(people["nn.cv"], only_open_task(engine, sentinel).id, {})  # boundary due at `to`
        cluster.set_clock(to)
        wait_until(lambda: scalar(engine, "SELECT count(*) FROM audit_events WHERE action = 'timer_fired' AND "
                                          "instance_id = :i", i=sentinel) == 1, 30, f"a tick at {to}", alive=workers)
        # The sentinel may fire first in a batch that also holds timers due at the same instant:
        # wait for the batch to finish, not only for the tick to have happened.
        wait_until(lambda: scalar(engine, "SELECT count(*) FROM timers WHERE state IN ('pending', 'claimed') AND "
                                          "due_at <= :to AND kind <> 'digest'", to=to) == 0, 30,
                   f"the timers due at {to}", alive=workers)
        return _counts(engine, task.id)

    cluster.set_clock(clock.now())
    workers.append(cluster.worker("w1"))
    seen = jump(remind - timedelta(seconds=1))  # forward, to one second before the reminder
    assert seen["fired"] == [] and seen["timers"]["remind:0"] == "pending"
    seen = jump(esc1 + timedelta(minutes=1))  # forward past the reminder and the first escalation
    assert seen["fired"] == ["task_reminded", "task_escalated"]
    seen = jump(remind - timedelta(hours=30))  # back more than a day
    assert seen["fired"] == ["task_reminded", "task_escalated"] and seen["timers"]["escalate:2"] == "pending"
    workers.pop().kill9()
    workers.append(cluster.worker("w2"))  # restart with the clock still in the past, then forward again
    seen = jump(esc1 + timedelta(minutes=2))
    assert seen["fired"] == ["task_reminded", "task_escalated"] and seen["timers"]["escalate:2"] == "pending"
    seen = jump(esc2)  # exactly at the due time of level 2
    assert seen["fired"] == ["task_reminded", "task_escalated", "task_escalated"]
    seen = jump(esc2 - timedelta(days=3))  # and back again
    assert seen["fired"] == ["task_reminded", "task_escalated", "task_escalated"]
    workers.pop().kill9()
    fired_at = _timer_times(engine, task.id, "fired_at")
    assert all(fired_at[k] >= due[k] for k in due), (fired_at, due)  # never early
    assert scalar(engine, "SELECT count(*) FROM outbox WHERE task_id = :t AND kind IN ('reminder', 'escalation')",
                  t=task.id) == 3
    assert violations(db_url) == []
