"""Read-only statistics over the task projection: inbox counts and the supervisors' dashboard.

Everything here is one aggregate query over `human_tasks` (indexed by state, organisation
and role); no workflow is deserialized. "Due soon" uses the same rule as the badge in
`deadlines.state`: at most one working day left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from engine.models import HumanTask, Organisation, TaskState
from engine.workdays import WorkingCalendar

OPEN = TaskState.OPEN.value
DONE = (TaskState.COMPLETED.value, TaskState.RETURNED.value)


@dataclass(frozen=True)
class InboxCounts:
    mine: int  # assigned to me (or to someone I stand in for), or named for me
    unit: int  # waiting unclaimed in one of my units' queues ("Việc chờ nhận")
    overdue: int

    @property
    def total(self) -> int:
        return self.mine + self.unit


def inbox_counts(session: Session, user_id: int, today: date, now: datetime) -> InboxCounts:
    """The numbers in the navigation bar: one statement, each kind of task counted on its own
    index (engine.queries.inbox_counts), so every page stays cheap with 100,000 open tasks."""
    from engine import queries

    return InboxCounts(*queries.inbox_counts(session, user_id, today, now))


def due_soon_before(calendar: WorkingCalendar, now: datetime) -> datetime:
    """Open tasks due before this moment (and not yet overdue) have at most one working day left."""
    second = calendar.add_working_days(now, 2).astimezone(calendar.tz).date()
    return datetime.combine(second, time(0, 0), tzinfo=calendar.tz).astimezone(timezone.utc)


@dataclass
class Stat:
    """Task counts for one organisation and one process (or a total)."""

    org_code: str | None
    process_key: str | None
    open: int = 0
    due_soon: int = 0
    overdue: int = 0
    done_on_time: int = 0
    done_late: int = 0

    @property
    def done(self) -> int:
        return self.done_on_time + self.done_late

    @property
    def total(self) -> int:
        return self.open + self.done

    @property
    def late(self) -> int:
        return self.overdue + self.done_late

    @property
    def late_rate(self) -> float | None:
        """(late in progress + late done) / total; None when there is nothing to count."""
        return self.late / self.total if self.total else None

    def add(self, other: "Stat") -> None:
        for name in ("open", "due_soon", "overdue", "done_on_time", "done_late"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def task_statistics(session: Session, calendar: WorkingCalendar, now: datetime, *,
                    orgs: list[str] | None = None, process: str | None = None,
                    since: datetime | None = None) -> list[Stat]:
    """Counts per (organisation, process); `orgs=None` means every organisation.

    Open: still open (due soon and overdue are parts of it). Done: completed or returned
    (a decision was taken), on time when finished by the due time or when it had none.
    `since` keeps tasks created from that moment on.
    """
    soon = due_soon_before(calendar, now)
    has_due = HumanTask.due_at.is_not(None)
    is_open = HumanTask.state == OPEN
    is_done = HumanTask.state.in_(DONE)

    def count(condition):
        return func.sum(case((condition, 1), else_=0))

    query = select(
        HumanTask.org_code, HumanTask.process_key,
        count(is_open),
        count(and_(is_open, has_due, HumanTask.due_at >= now, HumanTask.due_at < soon)),
        count(and_(is_open, has_due, HumanTask.due_at < now)),
        count(and_(is_done, or_(~has_due, HumanTask.completed_at <= HumanTask.due_at))),
        count(and_(is_done, has_due, HumanTask.completed_at > HumanTask.due_at)),
    ).where(or_(is_open, is_done))
    if orgs is not None:
        query = query.where(HumanTask.org_code.in_(orgs))
    if process:
        query = query.where(HumanTask.process_key == process)
    if since is not None:
        query = query.where(HumanTask.created_at >= since)
    rows = session.execute(query.group_by(HumanTask.org_code, HumanTask.process_key)
                           .order_by(HumanTask.org_code, HumanTask.process_key)).all()
    return [Stat(r[0], r[1], *(int(v or 0) for v in r[2:])) for r in rows]


def organisation_names(session: Session, codes) -> dict[str, tuple[str, str]]:
    wanted = {c for c in codes if c}
    if not wanted:
        return {}
    rows = session.execute(select(Organisation.code, Organisation.name_vi, Organisation.name_en)
                           .where(Organisation.code.in_(wanted)))
    return {r.code: (r.name_vi, r.name_en or r.name_vi) for r in rows}
