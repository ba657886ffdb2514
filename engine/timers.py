"""Firing timers from the timer table: claim a batch with a lease, fire each in its own transaction.

BPMN timers (boundary, intermediate, cycle) keep one row per instance, re-armed by every
save; reminders and escalation levels are rows per task, created with the task and
cancelled in the transaction that closes it. A failed firing is retried with backoff and
ends, visibly, in the `failed` state for an administrator to retry.

On SQLite a BPMN timer's case is loaded, stepped and serialized before the write transaction
opens (optimistically, on a snapshot); the transaction then only checks that the case's
version is still the one stepped, and writes. SQLite has one writer at a time, so this is
what lets several processes fire in parallel: the SpiffWorkflow work, most of a firing, holds
no lock. If the case changed in between, it is stepped again inside the transaction. On
PostgreSQL the case's row lock already lets workers fire different cases in parallel, so the
step stays inside the transaction there (a snapshot would only cost another round trip).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from engine import clock as clockmod
from engine import deadlines, serialization
from engine.audit import Action, record
from engine.models import InstanceStatus, TaskState
from engine.store import Store, TimerStore

if TYPE_CHECKING:
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

    from engine.definitions import ParsedDefinition
    from engine.runtime import Engine

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = (30, 120, 600, 3600)
LEASE_SECONDS = 300


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _async_commit(store: TimerStore) -> None:
    """On PostgreSQL, a firing's commit does not wait for its WAL flush (about a quarter of a firing's cost).

    Safe here, unlike for a user's action: nobody is told a timer fired until something
    durable follows. PostgreSQL flushes the WAL in order, so the outbox dispatcher's own
    (synchronous) claim of an email makes the firing that wrote it durable before the email
    leaves; and any user's action on what a firing changed flushes it the same way. A crash
    can only lose the last firings whole (state, timer row and emails together), and they
    fire again after the restart.
    """
    if not store.sqlite:
        store.execute("SET LOCAL synchronous_commit = off")


def fire_due(engine: Engine, *, batch: int = 20, budget_seconds: float | None = None, limit: int = 10_000) -> int:
    """Fire due timers until none is left, `limit` are fired, or the time budget is spent.

    Small batches and a budget keep a backlog from starving web requests on a shared
    machine; what is left is picked up by the next tick.
    """
    started = time.monotonic()
    fired, seen = 0, set()
    while fired < limit:
        now = engine.now()
        with engine.db.write() as session:
            store = TimerStore(session)
            _async_commit(store)
            claimed = store.claim_due(now, engine.worker, now + timedelta(seconds=LEASE_SECONDS),
                                      min(batch, limit - fired))
            again = [t for t in claimed if t["id"] in seen]
            for timer in again:  # fired once in this call and due again at once: leave it to a later tick
                store.fail(timer["id"], engine.worker, "còn đến hạn sau khi chạy / still due after firing",
                           now + timedelta(seconds=60))
        claimed = [t for t in claimed if t["id"] not in seen]
        if not claimed:
            break
        for timer in claimed:
            seen.add(timer["id"])
            if _fire_one(engine, timer, now):
                fired += 1
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            break
    return fired


def _fire_one(engine: Engine, timer: dict, now) -> bool:
    try:
        stepped = _step_bpmn(engine, timer) if timer["kind"] == "bpmn" and engine.db.is_sqlite else None
        with engine._action() as session:
            store = TimerStore(session)
            _async_commit(store)
            if timer["kind"] == "bpmn":
                _fire_bpmn(engine, session, store, timer, stepped)
            elif timer["kind"] in ("remind", "escalate"):
                _fire_deadline(engine, session, store, timer, now)
            elif timer["kind"] == "start":
                _fire_start(engine, session, store, timer, now)
            elif timer["kind"] == "digest":
                from engine import digest

                digest.fire(engine, store, timer, now)
            store.finish(timer["id"], engine.worker, now)
        return True
    except Exception as exc:  # noqa: BLE001 - any failure is recorded on the row, never lost
        log.warning("timer %s (%s) failed: %r", timer["id"], timer["dedupe_key"], exc)
        attempts = timer["attempts"]
        retry_at = (now + timedelta(seconds=BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1])
                    if attempts < MAX_ATTEMPTS else None)
        with engine.db.write() as session:
            TimerStore(session).fail(timer["id"], engine.worker, f"{type(exc).__name__}: {exc}", retry_at)
            if retry_at is None and timer["instance_id"]:
                record(session, Action.TIMER_FAILED, now, instance_id=timer["instance_id"], task_id=timer["task_id"],
                       timer=timer["dedupe_key"], error=str(exc)[:1000])
        return False


@dataclass
class _Stepped:
    """A case stepped past its due timers outside the write lock, and the version it was read at."""

    version: int
    wf: BpmnWorkflow
    parsed: ParsedDefinition
    state: str


def _step_bpmn(engine: Engine, timer: dict) -> _Stepped | None:
    """Load the case from a snapshot, fire its due timers, run it to its next wait, serialize it."""
    with engine.db.read() as session:
        inst = Store(session).instance(timer["instance_id"])
        if inst is None or inst.status != InstanceStatus.RUNNING.value:
            return None
        wf, parsed = engine._load(session, inst)
    _run_due(engine, wf, inst)
    return _Stepped(inst.version, wf, parsed, serialization.dumps(wf, parsed.dialect))


def _run_due(engine: Engine, wf: BpmnWorkflow, inst) -> None:
    with clockmod.using(clockmod.NudgedClock(engine.clock)):
        wf.refresh_timers()
        engine._run_engine(wf, inst)


def _fire_bpmn(engine: Engine, session, store: TimerStore, timer: dict, stepped: _Stepped | None) -> None:
    inst = store.instance(timer["instance_id"], lock=True)
    if inst is None or inst.status != InstanceStatus.RUNNING.value:
        return
    if stepped is not None and stepped.version == inst.version:
        wf, parsed, state = stepped.wf, stepped.parsed, stepped.state
    else:  # changed since the snapshot (a user's action, another worker): step it again, under the lock
        wf, parsed = engine._load(session, inst)
        _run_due(engine, wf, inst)
        state = None
    record(session, Action.TIMER_FIRED, engine.now(), instance_id=inst.id, timer="bpmn")
    engine._save(session, inst, wf, parsed, rearm=True, state=state)


def _fire_deadline(engine: Engine, session, store: TimerStore, timer: dict, now) -> None:
    # Lock the case first, then read the task: read before the lock, a completion or another
    # level's firing committed meanwhile would be overwritten (an escalation after completion,
    # level 1 written over level 2).
    inst = store.instance_of_task(timer["task_id"], lock=True)
    if inst is None or inst.status != InstanceStatus.RUNNING.value:
        return
    task = store.task(timer["task_id"])
    if task is None or task.state != TaskState.OPEN.value:
        return
    title = engine.process_title(session, inst.definition_id)
    if timer["kind"] == "remind":
        engine.notifier.reminder(store, task, inst, title, now)
        record(session, Action.TASK_REMINDED, now, instance_id=inst.id, task_id=task.id)
        return
    level = timer["level"]
    if task.escalation_level >= level:
        return  # this level (or a later one) was already applied
    step = (timer["payload"] or {}).get("step", {})
    overdue = deadlines.state(engine.calendar, task.due_at, now)
    reassigned = None
    if step.get("reassign_to") == "supervisor":
        reassigned = store.scalar(
            "SELECT users.id FROM users JOIN positions ON positions.user_id = users.id WHERE positions.org_code = :org "
            "AND positions.role = 'supervisor' AND users.active = :yes ORDER BY users.id", org=task.org_code, yes=True)
    task.set(escalation_level=level, **({"assignee_id": reassigned} if reassigned else {}))
    store.save_task(task)
    engine.notifier.escalation(store, task, inst, title, level, step, overdue[1] if overdue else 0, now)
    record(session, Action.TASK_ESCALATED, now, instance_id=inst.id, task_id=task.id, level=level,
           notify=step.get("notify", "supervisor"), reassigned_to=reassigned)


def _fire_start(engine: Engine, session, store: TimerStore, timer: dict, now) -> None:
    """Start this period's case, then schedule the next period (once, however many were missed)."""
    from engine.models import Definition

    definition = session.get(Definition, timer["definition_id"])
    parsed = engine._parsed(session, definition.id)
    rule = parsed.descriptor.get("start") or {}
    inst, wf = engine._start(session, None, definition, dict(rule.get("data") or {}), rule.get("owner"))
    engine._save(session, inst, wf, parsed)
    plan = dict(timer["payload"] or {})
    cycles, period = plan.get("cycles", 1), plan.get("period", 0)
    if cycles > 0:
        cycles -= 1
    if cycles != 0 and period > 0:
        due = timer["due_at"] + timedelta(seconds=period)
        while due <= now:
            due += timedelta(seconds=period)
        store.reschedule(timer["id"], due, {**plan, "cycles": cycles})
