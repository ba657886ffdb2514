"""The daily digest: one email per person each working morning, from a row in the timer table."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from engine import digest, directory
from engine.config import Settings, _digest_hour
from engine.definitions import Bundle
from engine.models import OutboxMessage, Timer, User
from engine.runtime import Engine
from tests.engine import bpmn_samples as samples
from tests.engine.helpers import only_open_task

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
DEADLINES = {"submit": {"due": "2wd"}, "approve": {"due": "1wd"}}


def local(*args) -> datetime:
    return datetime(*args, tzinfo=HANOI)


def digest_timer(engine) -> Timer:
    with engine.db.read() as session:
        [row] = session.scalars(select(Timer).where(Timer.kind == "digest"))
        return row


def digests(engine) -> list[OutboxMessage]:
    with engine.db.read() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "digest")
                                    .order_by(OutboxMessage.id)))


@pytest.fixture
def cases(engine, people):
    """Monday 30/11 09:00: case A waits for nn.cv's submission (due Wed 17:00); case B was submitted
    at once and waits for SO_NNPTNT's supervisors (due Tue 17:00)."""
    b = Bundle(key="duyet", descriptor={"key": "duyet", "tasks": DEADLINES})
    b.xml = {"duyet.bpmn": samples.approval()}
    engine.deploy_bundle(b)
    a = engine.start_instance(people["nn.cv"], "duyet")
    b_case = engine.start_instance(people["nn.cv"], "duyet")
    engine.complete_task(people["nn.cv"], only_open_task(engine, b_case).id, {})
    people.add("nn.ld2", ("SO_NNPTNT", "supervisor"))  # opted out below
    with engine.db.write() as session:
        session.execute(update(User).where(User.id == people["nn.ld2"]).values(daily_digest=False))
        directory.add_substitute(session, people["nn.cv"], people["nn.cv2"], date(2026, 12, 1), date(2026, 12, 31), at=engine.now())
    return a, b_case


def test_the_digest_timer_is_armed_once_for_the_next_working_morning(engine, clock):
    digest.arm(engine)
    digest.arm(engine)  # a second process starting: still one row
    row = digest_timer(engine)
    assert (row.state, row.due_at) == ("pending", local(2026, 12, 1, 7, 0))  # Monday 09:00 -> Tuesday 07:00


def test_next_run_skips_weekends_holidays_and_announced_days_off(engine):
    cal = engine.calendar
    assert digest.next_run(cal, HANOI, 7, local(2026, 12, 4, 10, 0)) == local(2026, 12, 7, 7, 0)  # Fri -> Mon
    assert digest.next_run(cal, HANOI, 7, local(2026, 12, 1, 6, 59)) == local(2026, 12, 1, 7, 0)  # later today
    # Across Tết 2027: every day skipped is a day off, and the day chosen is a working day.
    start = local(2027, 2, 4, 8, 0)
    due = digest.next_run(cal, HANOI, 7, start)
    assert cal.is_working_day(due.astimezone(HANOI).date())
    skipped = [start.date() + timedelta(days=k) for k in range(1, (due.astimezone(HANOI).date() - start.date()).days)]
    assert len(skipped) >= 5 and not any(cal.is_working_day(d) for d in skipped)


def test_each_person_gets_their_overdue_and_due_today_tasks_once(engine, people, cases, clock):
    digest.arm(engine)
    clock.set(local(2026, 12, 1, 7, 0))  # Tuesday: A is due tomorrow, B today
    assert engine.fire_due_timers() == 1
    by_person = {m.recipients[0]: m for m in digests(engine)}
    assert set(by_person) == {"nn.ld@dieuphoi.local"}  # nn.ld2 opted out; A is not due yet
    tuesday = by_person["nn.ld@dieuphoi.local"]
    assert tuesday.subject == "Việc cần xử lý ngày 01/12/2026: 1 việc đến hạn hôm nay, 0 việc quá hạn"
    assert f"/tasks/{only_open_task(engine, cases[1]).id}" in tuesday.body_text
    assert digest_timer(engine).due_at == local(2026, 12, 2, 7, 0)

    clock.set(local(2026, 12, 2, 7, 0))  # Wednesday: A due today; B overdue since yesterday 17:00
    assert engine.fire_due_timers() == 1
    wednesday = {m.recipients[0]: m for m in digests(engine)[1:]}
    # nn.cv2 substitutes for nn.cv this month, so sees nn.cv's tasks too.
    assert set(wednesday) == {"nn.cv@dieuphoi.local", "nn.cv2@dieuphoi.local", "nn.ld@dieuphoi.local"}
    assert wednesday["nn.cv@dieuphoi.local"].subject.endswith(": 1 việc đến hạn hôm nay, 0 việc quá hạn")
    assert wednesday["nn.cv2@dieuphoi.local"].subject == wednesday["nn.cv@dieuphoi.local"].subject
    boss = wednesday["nn.ld@dieuphoi.local"]
    assert boss.subject == "Việc cần xử lý ngày 02/12/2026: 0 việc đến hạn hôm nay, 1 việc quá hạn"
    assert "Việc quá hạn:" in boss.body_text and "Hạn xử lý 01/12/2026 17:00 (quá hạn 1 ngày làm việc)" in boss.body_text

    # The same morning again (a retried firing): nothing is sent twice.
    with engine.db.write() as session:
        from engine.store import Store

        assert digest.send_for_day(engine, Store(session), engine.now()) == 3
    assert len(digests(engine)) == 4


def test_a_morning_missed_during_downtime_is_not_sent_on_a_later_day(engine, people, cases, clock):
    digest.arm(engine)
    clock.set(local(2026, 12, 5, 9, 0))  # Saturday: the system was down since Monday
    assert engine.fire_due_timers() == 1
    assert digests(engine) == []
    assert digest_timer(engine).due_at == local(2026, 12, 7, 7, 0)  # Monday
    clock.set(local(2026, 12, 7, 8, 30))  # Monday, late but the same day: sent
    engine.fire_due_timers()
    assert {m.recipients[0] for m in digests(engine)} == {
        "nn.cv@dieuphoi.local", "nn.cv2@dieuphoi.local", "nn.ld@dieuphoi.local"}
    assert all("0 việc đến hạn hôm nay" in m.subject for m in digests(engine))


def test_the_digest_can_be_turned_off(db_url, tmp_path, clock, engine):
    digest.arm(engine)
    settings = replace(engine.settings, digest_hour=None)
    off = Engine(engine.db, settings, clock)
    digest.arm(off)
    assert digest_timer(engine).state == "cancelled"
    digest.arm(engine)  # turned on again
    assert digest_timer(engine).state == "pending"


def test_digest_hour_setting():
    assert _digest_hour("7") == 7 and _digest_hour("0") == 0 and _digest_hour("off") is None
    for bad in ("25", "-1", "bảy"):
        with pytest.raises(ValueError, match="DIEUPHOI_DIGEST_HOUR phải là giờ"):
            _digest_hour(bad)
    assert Settings(database_url="sqlite://").digest_hour == 7


def test_the_scheduler_tick_arms_the_digest_once(engine, clock):
    from engine import scheduler

    scheduler._tick(engine)
    assert engine.digest_armed and digest_timer(engine).state == "pending"
    with engine.db.write() as session:  # an administrator cancels it by hand: the next tick does not re-arm
        session.execute(update(Timer).where(Timer.kind == "digest").values(state="cancelled"))
    scheduler._tick(engine)
    assert digest_timer(engine).state == "cancelled"
