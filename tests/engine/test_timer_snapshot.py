"""On SQLite a BPMN timer's case is stepped on a snapshot, outside the write transaction, then
written if unchanged; on PostgreSQL (row locks) it is stepped inside the transaction.

What must hold: on SQLite the SpiffWorkflow work is done while no write lock is held; a case
that a user (or another worker) changed in between is never overwritten by the stale step; and
a case changed in a way that leaves its timer due is stepped again under the lock and fires
once. (The races need the snapshot, so they run on SQLite only.)
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, text

from engine import timers as timers_mod
from engine.models import AuditEvent, HumanTask, Timer
from tests.engine.helpers import case_on_approval_with_timer, instance, only_open_task


@pytest.fixture
def waiting(engine, people, clock):
    """A case on the supervisor's approval step, whose PT1H boundary timer is due."""
    iid = case_on_approval_with_timer(engine, people["nn.cv"])
    clock.advance(hours=2)
    return iid


@pytest.fixture
def snapshot_db(engine):
    if not engine.db.is_sqlite:
        pytest.skip("PostgreSQL steps the case under its row lock: there is no snapshot to race")


@pytest.fixture
def write_depth(engine, monkeypatch):
    """How many write transactions this thread is inside, seen from the timer code."""
    depth = {"n": 0}
    real = engine.db.write

    @contextmanager
    def counted():
        with real() as session:
            depth["n"] += 1
            try:
                yield session
            finally:
                depth["n"] -= 1

    monkeypatch.setattr(engine.db, "write", counted)
    return depth


def _spy_steps(monkeypatch, write_depth) -> list[int]:
    seen: list[int] = []
    real = timers_mod._run_due

    def spy(engine, wf, inst):
        seen.append(write_depth["n"])
        return real(engine, wf, inst)

    monkeypatch.setattr(timers_mod, "_run_due", spy)
    return seen


def _fired_events(engine, iid: int) -> int:
    with engine.db.read() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.instance_id == iid, AuditEvent.action == "timer_fired"))


def test_the_case_is_stepped_once_and_outside_any_write_transaction(engine, waiting, monkeypatch, write_depth):
    steps = _spy_steps(monkeypatch, write_depth)
    assert engine.fire_due_timers() == 1
    # One SpiffWorkflow step: on SQLite with no write transaction open, on PostgreSQL inside it.
    assert steps == ([0] if engine.db.is_sqlite else [1])
    assert instance(engine, waiting).status == "completed"
    assert _fired_events(engine, waiting) == 1
    assert engine.fire_due_timers() == 0


def test_a_users_action_between_snapshot_and_write_is_never_overwritten(engine, people, waiting, monkeypatch, snapshot_db):
    approve = only_open_task(engine, waiting).id
    real = timers_mod._step_bpmn

    def step_then_the_supervisor_approves(engine_, timer):
        stepped = real(engine_, timer)  # the timer's path: the approval is cut short by the boundary event
        engine.complete_task(people["nn.ld"], approve, {})  # meanwhile the supervisor approves
        return stepped

    monkeypatch.setattr(timers_mod, "_step_bpmn", step_then_the_supervisor_approves)
    engine.fire_due_timers()
    with engine.db.read() as session:
        task = session.get(HumanTask, approve)
        timer_states = list(session.scalars(select(Timer.state).where(Timer.instance_id == waiting)))
    assert (task.state, task.completed_by) == ("completed", people["nn.ld"])  # the approval stands
    assert instance(engine, waiting).status == "completed"
    assert _fired_events(engine, waiting) == 0  # the stale step was not written
    assert "pending" not in timer_states and "claimed" not in timer_states
    assert engine.fire_due_timers() == 0


def test_a_case_changed_meanwhile_is_stepped_again_under_the_lock_and_fires_once(
        engine, waiting, monkeypatch, write_depth, snapshot_db):
    steps = _spy_steps(monkeypatch, write_depth)
    real = timers_mod._step_bpmn

    def step_then_someone_writes(engine_, timer):
        stepped = real(engine_, timer)
        with engine.db.engine.begin() as conn:  # another writer's change that leaves the timer due
            conn.execute(text("UPDATE instances SET version = version + 1 WHERE id = :id"), {"id": waiting})
        return stepped

    monkeypatch.setattr(timers_mod, "_step_bpmn", step_then_someone_writes)
    assert engine.fire_due_timers() == 1
    assert steps == [0, 1]  # the snapshot's step was discarded; the case was stepped again in the transaction
    assert instance(engine, waiting).status == "completed"
    assert _fired_events(engine, waiting) == 1
    assert engine.fire_due_timers() == 0


def test_a_case_cancelled_meanwhile_is_left_alone(engine, people, waiting, monkeypatch, snapshot_db):
    real = timers_mod._step_bpmn

    def step_then_cancel(engine_, timer):
        stepped = real(engine_, timer)
        engine.cancel(people["admin"], waiting, "Hủy để thử / cancelled for the test")
        return stepped

    monkeypatch.setattr(timers_mod, "_step_bpmn", step_then_cancel)
    engine.fire_due_timers()
    assert instance(engine, waiting).status == "cancelled"
    assert _fired_events(engine, waiting) == 0
    engine.clock.advance(hours=1)
    assert engine.fire_due_timers() == 0
