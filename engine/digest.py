"""The daily digest: one email per person each working morning, "3 việc đến hạn hôm nay, 1 việc quá hạn".

It is a row in the timer table (kind `digest`), so it fires once per day across any number
of workers, survives restarts (a morning missed during downtime is sent when the system is
back, the same day only) and shows up in `dieuphoi timers list`. Each email's dedupe key
is `digest:{user}:{date}`: a firing retried after a crash sends nothing twice.

Who hears about a task: its assignee; if unclaimed, its named candidate, or else everyone
holding the lane's role in its organisation; plus whoever is substituting for them today.
People can opt out (users.daily_digest); DIEUPHOI_DIGEST_HOUR=off turns the digest off.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, time, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from engine import deadlines
from engine.store import Store, TimerStore
from engine.workdays import WorkingCalendar

if TYPE_CHECKING:
    from engine.runtime import Engine

KEY = "digest:daily"
MAX_ITEMS = 200  # per section of one email


def next_run(cal: WorkingCalendar, tz: ZoneInfo, hour: int, after: datetime) -> datetime:
    """The first working day's `hour`:00 (local) strictly after `after`, in UTC."""
    day = after.astimezone(tz).date()
    while True:
        moment = datetime.combine(day, time(hour), tzinfo=tz)
        if moment > after and cal.is_working_day(day):
            return moment.astimezone(timezone.utc)
        day += timedelta(days=1)


def arm(engine: Engine) -> None:
    """Make sure the digest's timer row exists (or is cancelled when the digest is off); idempotent."""
    hour = engine.settings.digest_hour
    now = engine.now()
    with engine.db.write() as session:
        store = TimerStore(session)
        if hour is None:
            store.execute("UPDATE timers SET state = 'cancelled' WHERE dedupe_key = :key AND state = 'pending'",
                          key=KEY)
            return
        due = next_run(engine.calendar, engine.tz, hour, now)
        store.execute(
            "INSERT INTO timers (kind, dedupe_key, level, due_at, state, attempts, payload, created_at) "
            "VALUES ('digest', :key, 0, :due, 'pending', 0, :payload, :now) ON CONFLICT (dedupe_key) DO UPDATE "
            "SET state = 'pending', due_at = excluded.due_at WHERE timers.state = 'cancelled'",
            key=KEY, due=due, payload={"hour": hour}, now=now)


def fire(engine: Engine, store: TimerStore, timer: dict, now: datetime) -> int:
    """Send today's digests (on a working day, if it is still the day they were due), then re-arm."""
    tz, cal, hour = engine.tz, engine.calendar, engine.settings.digest_hour
    today = now.astimezone(tz).date()
    sent = 0
    if hour is not None and cal.is_working_day(today) and timer["due_at"].astimezone(tz).date() == today:
        sent = send_for_day(engine, store, now)
    if hour is not None:
        store.reschedule(timer["id"], next_run(cal, tz, hour, now), {"hour": hour})
    return sent


def send_for_day(engine: Engine, store: Store, now: datetime) -> int:
    """Queue one digest email per person with something overdue or due by the end of today."""
    tz, cal = engine.tz, engine.calendar
    today = now.astimezone(tz).date()
    end_of_day = datetime.combine(today + timedelta(days=1), time(0), tzinfo=tz).astimezone(timezone.utc)
    tasks = store.rows(
        "SELECT t.id, t.title, t.instance_id, t.due_at, t.org_code, t.role, t.assignee_id, t.candidate_user_id, "
        "i.title AS case_title FROM human_tasks t JOIN instances i ON i.id = t.instance_id "
        "WHERE t.state = 'open' AND i.status = 'running' AND t.due_at IS NOT NULL AND t.due_at < :end "
        "ORDER BY t.due_at, t.id", end=end_of_day)
    if not tasks:
        return 0
    people = {p["id"]: p for p in store.rows(
        "SELECT id, full_name, email FROM users WHERE active = :yes AND daily_digest = :yes AND email <> ''",
        yes=True)}
    holders: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in store.rows("SELECT user_id, org_code, role FROM positions ORDER BY user_id"):
        holders[(row["org_code"], row["role"])].append(row["user_id"])
    substitutes: dict[int, list[int]] = defaultdict(list)
    for row in store.rows("SELECT user_id, substitute_id FROM substitutes WHERE starts_on <= :d AND ends_on >= :d",
                          d=today):
        substitutes[row["user_id"]].append(row["substitute_id"])

    overdue: dict[int, list[dict]] = defaultdict(list)
    due_today: dict[int, list[dict]] = defaultdict(list)
    base = engine.notifier.base_url
    for task in tasks:
        owners = ([task["assignee_id"] or task["candidate_user_id"]]
                  if task["assignee_id"] or task["candidate_user_id"]
                  else holders.get((task["org_code"], task["role"]), []))
        readers = set(owners) | {s for o in owners for s in substitutes.get(o, ())}
        late = task["due_at"] <= now
        item = {"task_id": task["id"], "task_title": task["title"], "instance_id": task["instance_id"],
                "case_title": task["case_title"], "due_at": task["due_at"].astimezone(tz),
                "task_url": f"{base}/tasks/{task['id']}"}
        if late:
            item["overdue_days"] = (deadlines.state(cal, task["due_at"], now) or (None, 0))[1]
        for uid in readers:
            if uid in people:
                (overdue if late else due_today)[uid].append(item)

    sent = 0
    for uid in sorted(set(overdue) | set(due_today)):
        person = people[uid]
        context = {"date": today, "recipient_name": person["full_name"],
                   "overdue": overdue[uid][:MAX_ITEMS], "due_today": due_today[uid][:MAX_ITEMS]}
        engine.notifier.digest(store, person, today, context, now)
        sent += 1
    return sent
