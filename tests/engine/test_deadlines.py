"""Deadlines, reminders, escalation ladders and BPMN timers: all in the timer table, fired once, never early."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from engine import deadlines
from engine.db import Database
from engine.definitions import Bundle
from engine.models import AuditEvent, HumanTask, Instance, OutboxMessage, Timer
from engine.runtime import Engine
from engine.store import TimerStore
from tests.engine import bpmn_samples as samples
from tests.engine.helpers import case_on_approval_with_timer, instance, only_open_task

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
LADDER = {
    "due": "2wd",
    "remind_before": "1wd",
    "escalate": [{"after": "0wd", "notify": "supervisor"}, {"after": "2wd", "notify": "lead", "org": "SO_KHCN"}],
}


def local(*args) -> datetime:
    return datetime(*args, tzinfo=HANOI)


@pytest.fixture
def case(engine, people):
    b = Bundle(key="duyet", descriptor={"key": "duyet", "tasks": {"submit": LADDER}})
    b.xml = {"duyet.bpmn": samples.approval()}
    engine.deploy_bundle(b)
    return engine.start_instance(people["nn.cv"], "duyet")  # Monday 30/11/2026 09:00 in Hanoi


def timers(engine, **where) -> list[Timer]:
    with engine.db.read() as session:
        query = select(Timer).order_by(Timer.due_at)
        for key, value in where.items():
            query = query.where(getattr(Timer, key) == value)
        return list(session.scalars(query))


def outbox(engine, kind=None) -> list[OutboxMessage]:
    with engine.db.read() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        return list(session.scalars(query.where(OutboxMessage.kind == kind) if kind else query))


def test_a_new_task_gets_its_due_time_in_working_days_and_its_reminder_and_ladder(engine, case):
    task = only_open_task(engine, case)
    assert task.due_at == local(2026, 12, 2, 17, 0)  # Mon 09:00 + 2 working days -> Wed 17:00
    rows = timers(engine, task_id=task.id)
    assert [(t.kind, t.level, t.due_at) for t in rows] == [
        ("remind", 0, local(2026, 12, 1, 17, 0)),
        ("escalate", 1, local(2026, 12, 2, 17, 0)),
        ("escalate", 2, local(2026, 12, 4, 17, 0)),
    ]
    assert {t.state for t in rows} == {"pending"}


def test_reminder_then_escalation_levels_fire_once_each_at_their_time(engine, people, case, clock):
    task = only_open_task(engine, case)
    clock.set(local(2026, 12, 1, 16, 59))
    assert engine.fire_due_timers() == 0  # never early
    clock.set(local(2026, 12, 1, 17, 1))
    assert engine.fire_due_timers() == 1
    assert engine.fire_due_timers() == 0
    [reminder] = outbox(engine, "reminder")
    assert set(reminder.recipients) == {"nn.cv@dieuphoi.local", "nn.cv2@dieuphoi.local"}

    clock.set(local(2026, 12, 2, 17, 5))
    assert engine.fire_due_timers() == 1
    [level1] = outbox(engine, "escalation")
    assert level1.recipients == ["nn.ld@dieuphoi.local"]
    with engine.db.read() as session:
        assert session.get(HumanTask, task.id).escalation_level == 1

    clock.set(local(2026, 12, 7, 8, 0))  # Monday: level 2 was due Friday 17:00 while nobody ran a worker
    assert engine.fire_due_timers() == 1
    level2 = outbox(engine, "escalation")[-1]
    assert level2.recipients == ["khcn.ld@dieuphoi.local"]
    assert level2.dedupe_key == f"escalation:{task.id}:2"
    with engine.db.read() as session:
        actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.task_id == task.id)))
    assert actions.count("task_escalated") == 2 and actions.count("task_reminded") == 1


def test_completing_the_task_cancels_its_timers_in_the_same_transaction(engine, people, case, clock):
    task = only_open_task(engine, case)
    engine.complete_task(people["nn.cv"], task.id, {})
    assert {t.state for t in timers(engine, task_id=task.id)} == {"cancelled"}
    clock.advance(days=30)
    assert engine.fire_due_timers() == 0
    assert outbox(engine, "escalation") == []


def test_a_timer_fired_twice_sends_nothing_twice(engine, people, case, clock):
    task = only_open_task(engine, case)
    clock.set(local(2026, 12, 2, 17, 5))
    engine.fire_due_timers()
    with engine.db.write() as session:  # a worker died after its work committed but the row came back
        session.execute(Timer.__table__.update().where(Timer.task_id == task.id).values(state="pending"))
    engine.fire_due_timers()
    assert len(outbox(engine, "escalation")) == 1
    assert len(outbox(engine, "reminder")) == 1


def test_deadline_state_badges(engine):
    cal = engine.calendar
    due = local(2026, 12, 4, 17, 0)
    assert deadlines.state(cal, due, local(2026, 11, 30, 9, 0)) == (deadlines.DeadlineState.ON_TIME, 4)
    assert deadlines.state(cal, due, local(2026, 12, 3, 9, 0)) == (deadlines.DeadlineState.DUE_SOON, 1)
    assert deadlines.state(cal, due, local(2026, 12, 8, 9, 0)) == (deadlines.DeadlineState.OVERDUE, 2)
    assert deadlines.state(cal, None, local(2026, 12, 8, 9, 0)) is None


def test_a_due_date_can_come_from_the_case_data(engine, people):
    b = Bundle(key="han", descriptor={"key": "han", "tasks": {"submit": {"due": "data:han_nop"}}})
    b.xml = {"han.bpmn": samples.approval("han")}
    engine.deploy_bundle(b)
    iid = engine.start_instance(people["nn.cv"], "han", {"han_nop": "2026-12-15"})
    assert only_open_task(engine, iid).due_at == local(2026, 12, 15, 17, 0)


def test_bad_deadline_specs_are_rejected_on_deploy(engine, orgs):
    from engine.errors import InvalidModel

    for tasks in ({"submit": {"due": "năm ngày"}}, {"khong_co": {"due": "5wd"}},
                  {"submit": {"due": "5wd", "escalate": [{"after": "abc"}]}}):
        b = Bundle(key="duyet", descriptor={"key": "duyet", "tasks": tasks})
        b.xml = {"duyet.bpmn": samples.approval()}
        with pytest.raises(InvalidModel):
            engine.deploy_bundle(b)


def test_bpmn_boundary_timer_lives_in_the_timer_table_and_fires_once(engine, people, clock):
    b = Bundle(key="duyet")
    b.xml = {"duyet.bpmn": samples.approval(boundary="PT48H")}
    engine.deploy_bundle(b)
    iid = engine.start_instance(people["nn.cv"], "duyet")
    engine.complete_task(people["nn.cv"], only_open_task(engine, iid).id, {})
    [row] = timers(engine, kind="bpmn")
    assert (row.state, row.due_at, row.dedupe_key) == ("pending", clock.now() + timedelta(hours=48), f"bpmn:{iid}")
    clock.advance(hours=49)
    assert engine.fire_due_timers() == 1
    assert instance(engine, iid).status == "completed"
    assert [t.state for t in timers(engine, kind="bpmn")] == ["done"]
    assert engine.fire_due_timers() == 0


def test_after_downtime_every_overdue_timer_fires_exactly_once(engine, people, clock):
    b = Bundle(key="duyet")
    b.xml = {"duyet.bpmn": samples.approval(boundary="PT1H")}
    engine.deploy_bundle(b)
    ids = []
    for _ in range(5):
        iid = engine.start_instance(people["nn.cv"], "duyet")
        engine.complete_task(people["nn.cv"], only_open_task(engine, iid).id, {})
        ids.append(iid)
    clock.advance(days=3)  # the server was down
    restarted = Engine(Database.from_settings(engine.settings), engine.settings, clock)
    assert restarted.fire_due_timers() == 5
    assert restarted.fire_due_timers() == 0
    assert {instance(engine, i).status for i in ids} == {"completed"}
    restarted.db.dispose()


def test_a_dead_workers_claimed_timers_come_back_when_the_lease_expires(engine, people, clock):
    iid = case_on_approval_with_timer(engine, people["nn.cv"])
    clock.advance(hours=2)
    with engine.db.write() as session:
        claimed = TimerStore(session).claim_due(clock.now(), "dead-worker", clock.now() + timedelta(minutes=5), 10)
    assert len(claimed) == 1
    assert engine.fire_due_timers() == 0  # still leased
    clock.advance(minutes=6)
    assert engine.fire_due_timers() == 1
    assert instance(engine, iid).status == "completed"


def test_a_failing_timer_retries_with_backoff_then_fails_visibly_and_can_be_retried(engine, people, clock):
    failing = samples.approval(boundary="PT1H").replace(
        b'<bpmn:endEvent id="qua_han"/>',
        b'<bpmn:scriptTask id="qua_han"><bpmn:script>x = 1 / 0</bpmn:script></bpmn:scriptTask>')
    b = Bundle(key="duyet")
    b.xml = {"duyet.bpmn": failing}
    engine.deploy_bundle(b)
    iid = engine.start_instance(people["nn.cv"], "duyet")
    engine.complete_task(people["nn.cv"], only_open_task(engine, iid).id, {})
    clock.advance(hours=2)
    for _ in range(10):
        engine.fire_due_timers()
        clock.advance(hours=2)
    [row] = timers(engine, kind="bpmn")
    assert (row.state, row.attempts) == ("failed", 5)
    assert "ZeroDivisionError" in row.last_error or "division" in row.last_error
    assert instance(engine, iid).status == "running"  # nothing half-applied
    with engine.db.write() as session:
        assert TimerStore(session).retry([row.id], clock.now()) == 1
    assert timers(engine, kind="bpmn")[0].state == "pending"


def test_two_workers_never_fire_the_same_timer_twice(engine, people, clock):
    b = Bundle(key="duyet")
    b.xml = {"duyet.bpmn": samples.approval(boundary="PT1H")}
    engine.deploy_bundle(b)
    for _ in range(8):
        iid = engine.start_instance(people["nn.cv"], "duyet")
        engine.complete_task(people["nn.cv"], only_open_task(engine, iid).id, {})
    clock.advance(hours=2)
    workers = [Engine(Database.from_settings(engine.settings), engine.settings, clock) for _ in range(2)]
    counts = [0, 0]
    barrier = threading.Barrier(2)

    def run(i):
        barrier.wait()
        counts[i] = workers[i].fire_due_timers(limit=100)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(counts) == 8
    with engine.db.read() as session:
        fired = session.scalar(select(func.count()).where(AuditEvent.action == "timer_fired"))
        done = session.scalar(select(func.count()).where(Instance.status == "completed"))
    assert (fired, done) == (8, 8)
    for w in workers:
        w.db.dispose()


def _periodic(engine):
    b = Bundle(key="bao_cao", descriptor={"key": "bao_cao", "start": {"owner": "SO_KHCN"}})
    b.xml = {"bao_cao.bpmn": samples.periodic()}
    engine.deploy_bundle(b)


def _cases(engine) -> list[Instance]:
    with engine.db.read() as session:
        return list(session.scalars(select(Instance).order_by(Instance.id)))


def test_a_timer_start_event_starts_a_new_case_each_cycle_and_catches_up_once(engine, people, clock):
    _periodic(engine)
    [start] = timers(engine, kind="start")
    assert (start.dedupe_key, start.payload["cycles"]) == ("start:bao_cao", 3)
    assert start.due_at == clock.now() + timedelta(days=1)
    assert engine.fire_due_timers() == 0 and _cases(engine) == []

    clock.advance(days=1, seconds=1)
    assert engine.fire_due_timers() == 1
    [first] = _cases(engine)
    assert (first.owner_org, first.initiator_id) == ("SO_KHCN", None)
    task = only_open_task(engine, first.id, "bao_cao")
    assert (task.org_code, task.role) == ("SO_KHCN", "staff")
    [start] = timers(engine, kind="start")
    assert (start.state, start.due_at) == ("pending", clock.now() - timedelta(seconds=1) + timedelta(days=1))

    clock.advance(days=5)  # nobody ran a worker for five days: one case, not five
    assert engine.fire_due_timers() == 1
    assert len(_cases(engine)) == 2
    clock.advance(days=1, seconds=1)
    assert engine.fire_due_timers() == 1
    assert len(_cases(engine)) == 3
    assert timers(engine, kind="start")[0].state == "done"  # R3: three cycles
    clock.advance(days=3)
    assert engine.fire_due_timers() == 0


def test_a_periodic_process_started_by_hand_starts_now(engine, people):
    _periodic(engine)
    iid = engine.start_instance(people["khcn.cv"], "bao_cao")
    assert only_open_task(engine, iid, "bao_cao").org_code == "SO_KHCN"
    assert instance(engine, iid).status == "running"


def test_a_task_opened_after_its_date_deadline_gets_only_the_highest_due_escalation(engine, people, clock):
    spec = {"due": "data:han_nop", "escalate": [{"after": "0wd"}, {"after": "1wd", "notify": "lead", "org": "SO_KHCN"},
                                                {"after": "10wd"}]}
    b = Bundle(key="han", descriptor={"key": "han", "tasks": {"submit": spec}})
    b.xml = {"han.bpmn": samples.approval("han")}
    engine.deploy_bundle(b)
    iid = engine.start_instance(people["nn.cv"], "han", {"han_nop": "2026-11-25"})  # already past on 30/11
    task = only_open_task(engine, iid)
    assert [(t.level, t.kind) for t in timers(engine, task_id=task.id)] == [(2, "escalate"), (3, "escalate")]
    assert engine.fire_due_timers() == 1
    [email] = outbox(engine, "escalation")
    assert email.recipients == ["khcn.ld@dieuphoi.local"] and "quá hạn 3 ngày làm việc" in email.subject


def test_administrator_days_off_and_make_up_saturdays_move_deadlines(engine, people):
    from datetime import date

    from engine.errors import Forbidden

    b = Bundle(key="duyet", descriptor={"key": "duyet", "tasks": {"submit": {"due": "2wd"}}})
    b.xml = {"duyet.bpmn": samples.approval()}
    engine.deploy_bundle(b)
    with pytest.raises(Forbidden):
        engine.set_calendar_day(people["nn.ld"], date(2026, 12, 1), "off")
    engine.set_calendar_day(people["admin"], date(2026, 12, 1), "off", "Nghỉ bù theo thông báo")  # Tuesday
    iid = engine.start_instance(people["nn.cv"], "duyet")  # Monday 30/11 09:00
    assert only_open_task(engine, iid).due_at == local(2026, 12, 3, 17, 0)  # Wed and Thu count, not Tue

    engine.set_calendar_day(people["admin"], date(2026, 12, 1), None)
    engine.set_calendar_day(people["admin"], date(2026, 12, 5), "work", "Làm bù")  # a Saturday
    engine.set_calendar_day(people["admin"], date(2026, 12, 2), "off")
    engine.set_calendar_day(people["admin"], date(2026, 12, 3), "off")
    engine.set_calendar_day(people["admin"], date(2026, 12, 4), "off")
    iid = engine.start_instance(people["nn.cv"], "duyet")
    assert only_open_task(engine, iid).due_at == local(2026, 12, 5, 17, 0)  # Tue, then the make-up Saturday


def test_an_escalation_reaches_the_supervisor_over_real_smtp_with_link_deadline_and_message_id(engine, case, clock):
    import dataclasses

    from engine import outbox
    from engine.outbox import message_id_for
    from tests.engine.smtp_server import SmtpServer

    task = only_open_task(engine, case)
    clock.set(local(2026, 12, 2, 17, 5))
    engine.fire_due_timers()
    server = SmtpServer().start()
    try:
        settings = dataclasses.replace(engine.settings, smtp_url=server.url())
        outbox.dispatch(engine.db, settings, clock)
        mails = {m["Message-ID"]: m for m in server.messages}
    finally:
        server.stop()
    key = f"escalation:{task.id}:1"
    mail = mails[message_id_for(key, engine.settings.base_url)]
    assert mail["To"] == "nn.ld@dieuphoi.local"
    assert mail["Subject"].startswith("[Cảnh báo quá hạn]")
    body = mail.get_body(("plain",)).get_content()
    assert f"{engine.settings.base_url}/tasks/{task.id}" in body
    assert "02/12/2026 17:00" in body  # the deadline, in Hanoi time


def test_a_clock_jump_backwards_fires_nothing_early_or_twice(engine, people, case, clock):
    task = only_open_task(engine, case)
    clock.set(local(2026, 12, 2, 17, 5))  # reminder and level-1 escalation are due
    assert engine.fire_due_timers() == 2
    clock.set(local(2026, 11, 30, 10, 0))  # the server's clock is set back two days
    assert engine.fire_due_timers() == 0
    clock.set(local(2026, 12, 2, 17, 6))  # and forward again: what fired does not fire again
    assert engine.fire_due_timers() == 0
    assert len(outbox(engine, "escalation")) == 1 and len(outbox(engine, "reminder")) == 1
    with engine.db.read() as session:
        assert session.get(HumanTask, task.id).escalation_level == 1
