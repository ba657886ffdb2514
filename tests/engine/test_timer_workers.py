"""Three real `dieuphoi worker` processes drain 1,000 due BPMN timers; one is SIGKILLed mid-way.

On PostgreSQL the workers share the timer table through FOR UPDATE SKIP LOCKED; on SQLite
their writers queue on the database's file lock (and a killed holder's lock is released by
the kernel). Every timer must fire exactly once, every instance complete once, nothing end
up failed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from engine.definitions import Bundle
from tests.engine import bpmn_samples as samples
from tests.engine.helpers import only_open_task

DIEUPHOI = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "dieuphoi"
N = 1_000
DEADLINE_SECONDS = 120
POLL = 0.2


SERIES = "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n) "


def _clone(engine, iid: int, copies: int) -> list[int]:
    """Copy the instance row, its open task row and its timer row `copies` times, with new ids.

    The stored workflow state does not mention the instance id, so every copy is a real,
    loadable workflow waiting on the same (already due) boundary timer.
    """
    with engine.db.engine.begin() as conn:
        base = conn.execute(text("SELECT max(id) FROM instances")).scalar()
        params = {"base": base, "n": copies, "iid": iid, "key": f"bpmn:{iid}"}
        conn.execute(text(
            "INSERT INTO instances (id, definition_id, process_key, title, status, owner_org, initiator_id, state, "
            "serializer_version, business, next_timer_at, message_waits, error, created_at, updated_at, "
            "completed_at, version) " + SERIES +
            "SELECT :base + x, definition_id, process_key, title, status, owner_org, initiator_id, state, "
            "serializer_version, business, next_timer_at, message_waits, error, created_at, updated_at, "
            "completed_at, version FROM instances, g WHERE id = :iid"), params)
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('instances', 'id'), "
                              "(SELECT max(id) FROM instances))"))
        conn.execute(text(
            "INSERT INTO human_tasks (id, instance_id, spiff_task_id, process_key, task_name, title, lane, org_code, "
            "role, candidate_user_id, assignee_id, state, form_key, business, return_reason, created_at, due_at, "
            "completed_at, completed_by, acting_for, escalation_level) " + SERIES +
            "SELECT 'clone-' || (:base + x), :base + x, spiff_task_id, process_key, task_name, title, lane, "
            "org_code, role, candidate_user_id, assignee_id, state, form_key, business, return_reason, created_at, "
            "due_at, completed_at, completed_by, acting_for, escalation_level "
            "FROM human_tasks, g WHERE instance_id = :iid AND state = 'open'"), params)
        conn.execute(text(
            "INSERT INTO timers (kind, dedupe_key, instance_id, task_id, definition_id, level, due_at, state, "
            "attempts, payload, created_at) " + SERIES +
            "SELECT kind, 'bpmn:' || (:base + x), :base + x, task_id, definition_id, level, due_at, state, "
            "attempts, payload, created_at FROM timers, g WHERE dedupe_key = :key"), params)
    return [iid] + [base + x for x in range(1, copies + 1)]


def _scalar(engine, sql: str, **params):
    with engine.db.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def test_three_workers_fire_every_timer_once_even_when_one_is_killed(engine, people, clock, db_url, tmp_path):
    # The instance is created two hours in the past: its PT1H boundary timer is due in real time.
    clock.set(datetime.now(timezone.utc) - timedelta(hours=2))
    b = Bundle(key="duyet")
    b.xml = {"duyet.bpmn": samples.approval(boundary="PT1H")}
    engine.deploy_bundle(b)
    iid = engine.start_instance(people["nn.cv"], "duyet")
    engine.complete_task(people["nn.cv"], only_open_task(engine, iid).id, {})
    ids = _clone(engine, iid, N - 1)
    assert _scalar(engine, "SELECT count(*) FROM timers WHERE kind = 'bpmn' AND state = 'pending' "
                           "AND due_at <= :now", now=_db_time(engine, datetime.now(timezone.utc))) == N
    assert _scalar(engine, "SELECT count(*) FROM human_tasks WHERE state = 'open'") == N

    env = {**os.environ, "DIEUPHOI_DATABASE_URL": db_url, "DIEUPHOI_INSTANCE_DIR": str(tmp_path)}
    procs, logs = [], []
    try:
        for k in range(3):
            log = open(tmp_path / f"worker{k}.log", "wb")
            logs.append(log)
            procs.append(subprocess.Popen([str(DIEUPHOI), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=tmp_path))
        victim = procs[0]
        deadline = time.monotonic() + DEADLINE_SECONDS
        # Wait (bounded) until timers are firing and the victim holds a claimed batch (lease owner "host:pid:x").
        owner_like = f"%:{victim.pid}:%"
        while time.monotonic() < deadline:
            fired = _scalar(engine, "SELECT count(*) FROM audit_events WHERE action = 'timer_fired'")
            held = _scalar(engine, "SELECT count(*) FROM timers WHERE state = 'claimed' AND lease_owner LIKE :o",
                           o=owner_like)
            if fired and (held or fired >= N // 4):
                break
            assert all(p.poll() is None for p in procs), "a worker exited early"
            time.sleep(POLL)
        else:
            pytest.fail("no timer fired before the deadline")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        # The lease is engine.timers.LEASE_SECONDS (300 s), too long for a test: simulate it running out by
        # moving the dead worker's claimed rows' lease_until into the past, as if 300 s had passed.
        with engine.db.engine.begin() as conn:
            orphaned = conn.execute(text(
                "UPDATE timers SET lease_until = :past WHERE state = 'claimed' AND lease_owner LIKE :o"),
                {"o": owner_like, "past": _db_time(engine, datetime.now(timezone.utc) - timedelta(seconds=1))}).rowcount

        while time.monotonic() < deadline:
            left = _scalar(engine, "SELECT count(*) FROM timers WHERE kind = 'bpmn' AND state <> 'done'")
            if left == 0:
                break
            assert all(p.poll() is None for p in procs[1:]), "a surviving worker exited"
            time.sleep(POLL)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()

    def tail() -> str:
        return "\n".join((tmp_path / f"worker{k}.log").read_text(errors="replace")[-2000:] for k in range(3))

    states = dict(_rows(engine, "SELECT state, count(*) FROM timers WHERE kind = 'bpmn' GROUP BY state"))
    assert states == {"done": N}, (states, orphaned, tail())
    fired = dict(_rows(engine, "SELECT instance_id, count(*) FROM audit_events WHERE action = 'timer_fired' "
                               "GROUP BY instance_id"))
    assert set(fired) == set(ids) and set(fired.values()) == {1}, tail()
    completed = dict(_rows(engine, "SELECT instance_id, count(*) FROM audit_events "
                                   "WHERE action = 'instance_completed' GROUP BY instance_id"))
    assert set(completed) == set(ids) and set(completed.values()) == {1}
    assert _scalar(engine, "SELECT count(*) FROM instances WHERE status = 'completed'") == N
    assert _scalar(engine, "SELECT count(*) FROM timers WHERE state = 'failed'") == 0


def _db_time(engine, when: datetime):
    """A UTC time as the timers table stores it (naive text on SQLite)."""
    naive = when.astimezone(timezone.utc).replace(tzinfo=None)
    return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if engine.db.is_sqlite else when


def _rows(engine, sql: str) -> list[tuple]:
    with engine.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]
