"""Read-side queries for lists and detail pages: projections only, never a write.

Lists (inbox, task lists, instance lists) read the indexed projection tables and never
deserialize a workflow; only the detail of one instance loads its stored state, to show
the latest data. Visibility mirrors the engine's rules (`Engine.may_view_instance`,
`assignment.visible_task_filter`), expressed as SQL so lists can be filtered and paged.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from jinja2 import ChainableUndefined
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import Integer, String, and_, cast, exists, false, func, literal, null, or_, select, true, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.functions import FunctionElement

from engine import serialization
from engine.assignment import visible_task_filter
from engine.descriptor import fold
from engine.errors import Forbidden, InvalidInput, NotFound
from engine.models import (
    AuditEvent,
    Comment,
    Definition,
    HumanTask,
    Instance,
    Organisation,
    Position,
    Role,
    Substitute,
    TaskState,
    User,
)
from engine.projections import SEARCH_SEPARATOR
from engine.store import Store

log = logging.getLogger(__name__)

OPEN = TaskState.OPEN.value
SUPERVISING_ROLES = (Role.SUPERVISOR.value, Role.LEADER.value)
MAX_HISTORY = 1000


# ------------------------------------------------------------------ paging
@dataclass
class Page:
    items: list[dict]
    next_cursor: str | None = None


def encode_cursor(created_at: datetime, row_id) -> str:
    raw = json.dumps([created_at.astimezone(timezone.utc).isoformat(), row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, id_type: type) -> tuple[datetime, Any]:
    """The (created_at, id) a page continues after; a damaged cursor is the caller's mistake (400)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, row_id = json.loads(raw)
        when = datetime.fromisoformat(when)
        if when.tzinfo is None or not isinstance(row_id, id_type) or isinstance(row_id, bool):
            raise ValueError
        if id_type is int and not 0 < row_id < 2**31:
            raise ValueError
        if id_type is str and len(row_id) > 32:
            raise ValueError
        return when, row_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput("Con trỏ phân trang không hợp lệ.", "Invalid pagination cursor.",
                           {"cursor": "Con trỏ không hợp lệ. / Invalid cursor."}) from None


def _after(created_col, id_col, cursor: str | None, id_type: type, descending: bool):
    if not cursor:
        return true()
    when, row_id = decode_cursor(cursor, id_type)
    if descending:
        return or_(created_col < when, and_(created_col == when, id_col < row_id))
    return or_(created_col > when, and_(created_col == when, id_col > row_id))


def _page(rows: list, limit: int, to_dict, key) -> Page:
    more = len(rows) > limit
    rows = rows[:limit]
    items = [to_dict(r) for r in rows]
    return Page(items, encode_cursor(*key(rows[-1])) if more and rows else None)


# ------------------------------------------------------------------ people and organisations
def org_codes(session: Session, user_id: int, roles: tuple[str, ...] | None = None) -> list[str]:
    query = select(Position.org_code).where(Position.user_id == user_id)
    if roles:
        query = query.where(Position.role.in_(roles))
    return sorted(set(session.scalars(query)))


def user_refs(session: Session, ids) -> dict[int, dict]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.username, User.full_name).where(User.id.in_(wanted)))
    return {r.id: {"id": r.id, "username": r.username, "full_name": r.full_name} for r in rows}


def org_refs(session: Session, codes) -> dict[str, dict]:
    wanted = {c for c in codes if c}
    if not wanted:
        return {}
    rows = session.execute(select(Organisation.code, Organisation.name_vi, Organisation.name_en)
                           .where(Organisation.code.in_(wanted)))
    return {r.code: {"code": r.code, "name_vi": r.name_vi, "name_en": r.name_en} for r in rows}


@dataclass(frozen=True)
class Reach:
    """Whom a user works as today: themselves and the people they stand in for, with every
    (person, organisation, role) position among them. Read once per page (`reach`) and shared by
    the inbox, its filters and the navigation bar."""

    user_id: int
    people: tuple[int, ...]
    positions: tuple[tuple[int, str, str], ...]

    @property
    def own_orgs(self) -> list[str]:
        return sorted({org for who, org, _role in self.positions if who == self.user_id})

    @property
    def supervises(self) -> bool:
        return any(who == self.user_id and role in SUPERVISING_ROLES for who, _org, role in self.positions)

    @property
    def queues(self) -> list[tuple[str, str]]:
        """The (organisation, role) queues whose unclaimed tasks the user may take, substitutes' included."""
        return sorted({(org, role) for _who, org, role in self.positions})


def reach(session: Session, user_id: int, today: date) -> Reach:
    """One statement: the people `user_id` stands in for today, and the positions of all of them."""
    when = (Substitute.substitute_id == user_id, Substitute.starts_on <= today, Substitute.ends_on >= today)
    rows = session.execute(union_all(
        select(Substitute.user_id, cast(null(), String).label("org_code"), cast(null(), String).label("role"))
        .where(*when),
        select(Position.user_id, Position.org_code, Position.role)
        .where(or_(Position.user_id == user_id, Position.user_id.in_(select(Substitute.user_id).where(*when)))),
    )).all()
    people = [user_id] + sorted({r[0] for r in rows if r[1] is None and r[0] != user_id})
    positions = tuple(sorted((r[0], r[1], r[2]) for r in rows if r[1] is not None))
    return Reach(user_id, tuple(people), positions)


def user_id_by_username(session: Session, username: str) -> int | None:
    return session.scalar(select(User.id).where(User.username == (username or "").strip().lower()))


# ------------------------------------------------------------------ visibility
def visible_instance_condition(session: Session, user: User):
    """SQL form of `Engine.may_view_instance`: admin, initiator, owner unit, or a unit/person on a task."""
    if user.is_admin:
        return true()
    # A subquery rather than a list read first: one statement less on every visibility check.
    orgs = select(Position.org_code).where(Position.user_id == user.id).scalar_subquery()
    on_a_task = exists().where(
        HumanTask.instance_id == Instance.id,
        or_(HumanTask.org_code.in_(orgs), HumanTask.assignee_id == user.id,
            HumanTask.completed_by == user.id, HumanTask.candidate_user_id == user.id),
    )
    return or_(Instance.initiator_id == user.id, Instance.owner_org.in_(orgs), on_a_task)


def may_view_instance(session: Session, user: User, instance_id: int, today: date) -> bool:
    """Who may see a case: the engine's rule, plus a substitute with an open task in it today."""
    visible = session.scalar(select(Instance.id).where(Instance.id == instance_id,
                                                       visible_instance_condition(session, user)))
    if visible is not None:
        return True
    return session.scalar(select(HumanTask.id).where(
        HumanTask.instance_id == instance_id, HumanTask.state == OPEN,
        visible_task_filter(session, user.id, today)).limit(1)) is not None


_TASK_OF_CASE = aliased(HumanTask)  # made once: a new alias per call is costly to build and to cache


def visible_task_instance(session: Session, user: User, task_id: str, today: date) -> int | None:
    """The case of a task `user` may see (its case is visible to them, or they may act on it now), else None.

    Usually one statement: the task's case under the case visibility rule. Only when that finds
    nothing (no such task, or a substitute's view) do the slower checks run."""
    task = _TASK_OF_CASE
    found = session.scalar(select(Instance.id).join(task, task.instance_id == Instance.id)
                           .where(task.id == task_id, visible_instance_condition(session, user)))
    if found is not None:
        return found
    instance_id = session.scalar(select(HumanTask.instance_id).where(HumanTask.id == task_id))
    if instance_id is None:
        return None
    if may_view_instance(session, user, instance_id, today) or may_act_now(session, user.id, task_id, today):
        return instance_id
    return None


def task_in_instance(session: Session, task_id: str, instance_id: int) -> bool:
    return session.scalar(select(HumanTask.id).where(HumanTask.id == task_id,
                                                     HumanTask.instance_id == instance_id)) is not None


def may_act_now(session: Session, user_id: int, task_id: str, today: date) -> bool:
    return session.scalar(select(HumanTask.id).where(
        HumanTask.id == task_id, HumanTask.state == OPEN, visible_task_filter(session, user_id, today))) is not None


# ------------------------------------------------------------------ tasks
TASK_SCOPES = ("mine", "group", "all")
TASK_STATUSES = ("open", "done")


@dataclass
class TaskQuery:
    scope: str = "mine"
    status: str = "open"
    process: str | None = None
    organisation: str | None = None
    assignee: str | None = None
    overdue: bool | None = None
    limit: int = 50
    cursor: str | None = None


def _overdue_condition(now: datetime):
    """Past due while open, or finished after the due time; never NULL, so it can be negated."""
    return and_(HumanTask.due_at.is_not(None),
                or_(and_(HumanTask.completed_at.is_(None), HumanTask.due_at < now),
                    and_(HumanTask.completed_at.is_not(None), HumanTask.completed_at > HumanTask.due_at)))


def _is_overdue(task: HumanTask, now: datetime) -> bool:
    return task.due_at is not None and (task.completed_at or now) > task.due_at


def task_list(session: Session, user: User, today: date, now: datetime, q: TaskQuery) -> Page:
    """A page of tasks for one scope: `mine` (what I may work on / what I did), `group` (my units'),
    `all` (everything for an administrator, the supervised units' for a supervisor)."""
    is_open = q.status == "open"
    # The page is chosen on human_tasks alone; the cases' titles are read for that page only (joining
    # first would look up a case for every candidate row before the sort and limit).
    query = select(HumanTask).where(HumanTask.state == OPEN if is_open else HumanTask.state != OPEN)
    mine_done = or_(HumanTask.completed_by == user.id, HumanTask.acting_for == user.id)
    arms = None
    if q.scope == "mine":
        # Disjoint arms on their own indexes (see `_open_arms`), combined below.
        arms = _open_arms(session, user.id, today) if is_open else _done_arms(user.id)
    elif q.scope == "group":
        orgs = org_codes(session, user.id)
        own = visible_task_filter(session, user.id, today) if is_open else mine_done
        query = query.where(or_(HumanTask.org_code.in_(orgs), own))
    elif not user.is_admin:
        supervised = org_codes(session, user.id, SUPERVISING_ROLES)
        if not supervised:
            raise Forbidden("Chỉ quản trị hệ thống hoặc lãnh đạo đơn vị được xem toàn bộ công việc.",
                            "Only an administrator or a supervisor may list all tasks.", {"scope": "all"})
        query = query.where(HumanTask.org_code.in_(supervised))
    if q.process:
        query = query.where(HumanTask.process_key == q.process)
    if q.organisation:
        query = query.where(HumanTask.org_code == q.organisation)
    if q.assignee:
        assignee_id = user_id_by_username(session, q.assignee)
        query = query.where(HumanTask.assignee_id == assignee_id if assignee_id is not None else false())
    if q.overdue is not None:
        overdue = _overdue_condition(now)
        query = query.where(overdue if q.overdue else ~overdue)
    descending = not is_open  # the inbox oldest first; finished work newest first
    query = query.where(_after(HumanTask.created_at, HumanTask.id, q.cursor, str, descending))
    order = (HumanTask.created_at.desc(), HumanTask.id.desc()) if descending else (HumanTask.created_at, HumanTask.id)
    if arms is None:
        rows = list(session.scalars(query.order_by(*order).limit(q.limit + 1)))
    else:
        keys = union_all(*(query.with_only_columns(HumanTask.id, HumanTask.created_at).where(cond)
                           for _kind, cond in arms)).subquery()
        key_order = (keys.c.created_at.desc(), keys.c.id.desc()) if descending else (keys.c.created_at, keys.c.id)
        ids = list(session.scalars(select(keys.c.id).order_by(*key_order).limit(q.limit + 1)))
        found = {t.id: t for t in session.scalars(select(HumanTask).where(HumanTask.id.in_(ids)))} if ids else {}
        rows = [found[i] for i in ids if i in found]
    tasks = rows[:q.limit]
    cases = _case_titles(session, tasks)
    users = user_refs(session, [i for t in tasks for i in (t.assignee_id, t.candidate_user_id, t.completed_by,
                                                           t.acting_for)])
    orgs = org_refs(session, [t.org_code for t in tasks])
    return _page(rows, q.limit, lambda t: task_dict(t, now, users, orgs, cases[t.instance_id]),
                 lambda t: (t.created_at, t.id))


def _case_titles(session: Session, tasks) -> dict[int, dict]:
    wanted = {t.instance_id for t in tasks}
    if not wanted:
        return {}
    rows = session.execute(select(Instance.id, Instance.title, Instance.status).where(Instance.id.in_(wanted)))
    return {r.id: {"title": r.title, "status": r.status} for r in rows}


# ------------------------------------------------------------------ the inbox page
INBOX_TABS = ("all", "mine", "unit", "done")
INBOX_STATES = ("overdue", "due_soon", "on_time", "none")


@dataclass
class InboxQuery:
    """One page of the web inbox. `due_soon_before` (`dashboard.due_soon_before`) is where "due soon" ends;
    `search`, if given, is matched in SQL, accent- and case-insensitively (`search_condition`), with
    `process_titles` ({process key: its title as the reader sees it})."""

    tab: str = "all"
    process: str | None = None
    organisation: str | None = None
    state: str | None = None
    due_soon_before: datetime | None = None
    page: int = 1
    per_page: int = 20
    search: str | None = None
    process_titles: dict[str, str] = field(default_factory=dict)


@dataclass
class InboxPage:
    items: list[dict]
    total: int
    page: int
    pages: int
    counts: dict
    organisations: dict  # the user's own units ({code: reference}), for the page's filter
    nav: tuple[int, int, int] | None = None  # the navigation bar's (mine, unit, overdue), if this page counted them


def _deadline_condition(state: str, now: datetime, soon_before: datetime | None):
    soon_before = soon_before or now
    if state == "overdue":
        return and_(HumanTask.due_at.is_not(None), HumanTask.due_at < now)
    if state == "due_soon":
        return and_(HumanTask.due_at >= now, HumanTask.due_at < soon_before)
    if state == "on_time":
        return and_(HumanTask.due_at >= now, HumanTask.due_at >= soon_before)
    return HumanTask.due_at.is_(None)


def _open_arms(session: Session, user_id: int, today: date, who: Reach | None = None) -> list[tuple[str, Any]]:
    """`assignment.visible_task_filter` as disjoint arms, ("mine" | "unit", condition), one per index.

    An OR of the three kinds (assigned to me or to someone I stand in for; addressed to one of
    us; waiting in one of our units' queues) leaves the planner one plan for all: on SQLite a
    multi-index OR that reads every candidate row before sorting, and, with only average
    statistics, the assignee index even for `assignee_id IS NULL`. Separate arms each use their
    own index (ix_tasks_assignee_state, ix_tasks_candidate_state, ix_tasks_queue), the queue's
    covering the count and the sort. `+ 0` keeps `assignee_id IS NULL` from choosing an index.
    """
    who = who or reach(session, user_id, today)
    people = list(who.people)
    unassigned = (HumanTask.assignee_id + 0).is_(None)
    arms = [("mine", HumanTask.assignee_id.in_(people)),
            ("mine", and_(HumanTask.candidate_user_id.in_(people), unassigned))]
    for org_code, role in who.queues:
        arms.append(("unit", and_(HumanTask.org_code == org_code, HumanTask.role == role,
                                  HumanTask.assignee_id.is_(None), HumanTask.candidate_user_id.is_(None))))
    return arms


def _done_arms(user_id: int) -> list[tuple[str, Any]]:
    """What I finished, or someone finished acting for me: disjoint arms on ix_tasks_completed_by / _acting_for."""
    return [("done", HumanTask.completed_by == user_id),
            ("done", and_(HumanTask.acting_for == user_id,
                          or_(HumanTask.completed_by.is_(None), HumanTask.completed_by != user_id)))]


def _tally(session: Session, arms: list, common: list, now: datetime) -> dict[str, tuple[int, int]]:
    """{kind: (tasks, overdue tasks)} over the arms, in one statement (each arm counted on its index)."""
    late = and_(HumanTask.due_at.is_not(None), HumanTask.due_at < now)
    tallies = union_all(*(select(literal(kind).label("kind"), func.count().label("n"),
                                 func.count().filter(late).label("late")).select_from(HumanTask)
                          .where(cond, *common) for kind, cond in arms)).subquery()
    rows = session.execute(select(tallies.c.kind, func.sum(tallies.c.n), func.sum(tallies.c.late))
                           .group_by(tallies.c.kind))
    return {kind: (int(n or 0), int(late_n or 0)) for kind, n, late_n in rows}


def _nav_numbers(tally: dict[str, tuple[int, int]]) -> tuple[int, int, int]:
    mine, unit = tally.get("mine", (0, 0)), tally.get("unit", (0, 0))
    return mine[0], unit[0], mine[1] + unit[1]


def inbox_counts(session: Session, user_id: int, today: date, now: datetime,
                 who: Reach | None = None) -> tuple[int, int, int]:
    """(mine, unit, overdue): the navigation bar's counters, as `dashboard.inbox_counts` defines them,
    counted per arm on the arms' indexes (the single OR query reads every open unassigned task)."""
    return _nav_numbers(_tally(session, _open_arms(session, user_id, today, who), [HumanTask.state == OPEN], now))


class _Holds(FunctionElement):
    """`text` occurs in `column` as it is (no wildcards, so no escaping): instr on SQLite, strpos on
    PostgreSQL; a plain substring search is faster than LIKE '%…%' on both."""

    type = Integer()
    inherit_cache = True


@compiles(_Holds)
def _holds_postgresql(element, compiler, **kw):
    return f"strpos({compiler.process(element.clauses, **kw)})"


@compiles(_Holds, "sqlite")
def _holds_sqlite(element, compiler, **kw):
    return f"instr({compiler.process(element.clauses, **kw)})"


def search_condition(needle: str, process_titles: dict[str, str]):
    """The inbox search in SQL: the folded `needle` anywhere in what the reader sees of a task,
    "<case id> <step title> <case title> <process title> <business values>".

    `projections.search_text` stores all but the process title, which is in the reader's language,
    with SEARCH_SEPARATOR where it stands; `process_titles` gives it per process. The needle may lie
    in the stored text, in the title, or run over one of the title's edges (or both): each way is a
    substring of the stored text, for the processes whose title allows it."""
    sep = SEARCH_SEPARATOR

    def holds(text: str):
        return _Holds(HumanTask.search_text, literal(text, String)) > 0

    ways = [holds(needle)]
    for key, title in sorted(process_titles.items()):
        middle = fold(title or "")
        if middle and needle in middle:
            ways.append(HumanTask.process_key == key)
            continue
        across = []
        for i in (i for i, c in enumerate(needle) if c == " "):
            head_end, rest = needle[:i], needle[i + 1:]
            if not middle:  # nothing shown between the stored halves: the head's end, then the values
                across.append(holds(f"{head_end}{sep}{rest}"))
                continue
            if middle.startswith(rest):  # from the head into the title
                across.append(holds(f"{head_end}{sep}"))
            elif rest.startswith(middle + " "):  # from the head over the whole title into the values
                across.append(holds(f"{head_end}{sep}{rest[len(middle) + 1:]}"))
            if middle.endswith(head_end):  # from inside the title into the values
                across.append(holds(f"{sep}{rest}"))
        if across:
            ways.append(and_(HumanTask.process_key == key, or_(*across)))
    return or_(*ways)


def inbox_page(session: Session, user: User, today: date, now: datetime, q: InboxQuery,
               who: Reach | None = None) -> InboxPage:
    """The inbox in SQL: counts, tab, deadline filter, search, order (overdue first, then by due date,
    no deadline last, then oldest) and the page, so its cost follows the page, not the size of the queue.

    Each visibility arm is a separate SELECT of (id, due_at, created_at) in a UNION ALL: counts and
    the page's ids come from indexes (a search reads the stored text of the visible tasks only); only
    the page's rows are read in full."""
    who = who or reach(session, user.id, today)
    done = q.tab == "done"
    common = [HumanTask.state != OPEN] if done else [HumanTask.state == OPEN]
    if q.process:
        common.append(HumanTask.process_key == q.process)
    if q.organisation:
        common.append(HumanTask.org_code == q.organisation)
    arms = _done_arms(user.id) if done else _open_arms(session, user.id, today, who)
    counts, nav = {"mine": 0, "unit": 0}, None
    if not done:
        tally = _tally(session, arms, common, now)
        counts.update({kind: n for kind, (n, _late) in tally.items()})
        if not (q.process or q.organisation):  # the same numbers as the navigation bar's
            nav = _nav_numbers(tally)
    if q.tab in ("mine", "unit"):
        arms = [(kind, cond) for kind, cond in arms if kind == q.tab] or [(q.tab, false())]
    if q.state and not done:
        common.append(_deadline_condition(q.state, now, q.due_soon_before))
    needle = fold(q.search or "")
    if needle:
        common.append(search_condition(needle, q.process_titles))
    per_page = max(1, q.per_page)
    # Only what the order needs (the done arms' indexes hold created_at and id, not due_at).
    columns = (HumanTask.id, HumanTask.created_at) if done else (HumanTask.id, HumanTask.due_at, HumanTask.created_at)

    def ordered(c):
        return (c.created_at.desc(), c.id.desc()) if done else (c.due_at.is_(None), c.due_at, c.created_at, c.id)

    ids, page = None, max(1, q.page)
    if not done and not q.state and not needle:
        total = counts["mine"] + counts["unit"] if q.tab == "all" else counts[q.tab]
    else:
        keys = union_all(*(select(*columns).where(cond, *common) for _kind, cond in arms)).subquery()
        if needle:  # a search reads every visible task's text anyway: the page and the count in one pass
            rows = session.execute(select(keys.c.id, func.count().over()).order_by(*ordered(keys.c))
                                   .limit(per_page).offset((page - 1) * per_page)).all()
            if rows:
                total, ids = rows[0][1], [r[0] for r in rows]
        if ids is None:  # no search, or a page past the last one: count, then the last page
            total = session.scalar(select(func.count()).select_from(keys))
    pages = max(1, -(-total // per_page))
    if ids is None:
        page = min(page, pages)
        # Each arm gives only its first `page * per_page` keys: a big queue is sorted in its index's
        # entries, never merged whole with the others.
        firsts = []
        for _kind, cond in arms:
            arm = select(*columns).where(cond, *common).subquery()
            firsts.append(select(arm).order_by(*ordered(arm.c)).limit(page * per_page).subquery().select())
        merged = union_all(*firsts).subquery()
        ids = list(session.scalars(select(merged.c.id).order_by(*ordered(merged.c)).limit(per_page)
                                   .offset((page - 1) * per_page))) if total else []
    found, cases = {}, {}
    if ids:  # the page's rows with their cases' titles, in one statement
        for t, title, status in session.execute(
                select(HumanTask, Instance.title, Instance.status).join(Instance, Instance.id == HumanTask.instance_id)
                .where(HumanTask.id.in_(ids))):
            found[t.id], cases[t.instance_id] = t, {"title": title, "status": status}
    tasks = [found[i] for i in ids if i in found]
    users = user_refs(session, [i for t in tasks for i in (t.assignee_id, t.candidate_user_id, t.completed_by,
                                                           t.acting_for)])
    orgs = org_refs(session, [*(t.org_code for t in tasks), *who.own_orgs])
    items = [task_dict(t, now, users, orgs, cases[t.instance_id]) for t in tasks]
    mine = {code: orgs[code] for code in who.own_orgs if code in orgs}
    return InboxPage(items, total, page, pages, counts, mine, nav)


def task_dict(t: HumanTask, now: datetime, users: dict, orgs: dict, instance: dict | None = None) -> dict:
    out = {
        "id": t.id,
        "instance_id": t.instance_id,
        "process": t.process_key,
        "name": t.task_name,
        "title": t.title,
        "lane": t.lane,
        "organisation": orgs.get(t.org_code) if t.org_code else None,
        "role": t.role,
        "state": t.state,
        "assignee": users.get(t.assignee_id),
        "candidate": users.get(t.candidate_user_id),
        "completed_by": users.get(t.completed_by),
        "acting_for": users.get(t.acting_for),
        "created_at": t.created_at,
        "due_at": t.due_at,
        "completed_at": t.completed_at,
        "overdue": _is_overdue(t, now),
        "form": t.form_key,
        "business": t.business or {},
        "return_reason": t.return_reason,
    }
    if instance is not None:
        out["instance_title"] = instance["title"]
        out["instance_status"] = instance["status"]
    return out


def task_detail(session: Session, user: User, task_id: str, today: date, now: datetime, definitions) -> dict:
    """One task with its form schema, instructions and case summary; 404 unless the caller may see it."""
    task = session.get(HumanTask, task_id)
    if task is None or not (may_view_instance(session, user, task.instance_id, today)
                            or may_act_now(session, user.id, task.id, today)):
        raise NotFound("Không tìm thấy công việc.", "Task not found.", {"task": task_id})
    inst = session.get(Instance, task.instance_id)
    definition = session.get(Definition, inst.definition_id)
    users = user_refs(session, [task.assignee_id, task.candidate_user_id, task.completed_by, task.acting_for,
                                inst.initiator_id])
    orgs = org_refs(session, [task.org_code, inst.owner_org])
    out = task_dict(task, now, users, orgs)
    forms = definition.forms or {}
    schema = forms.get(task.form_key) if task.form_key else None
    out["form_schema"] = schema
    out["form_ui_schema"] = _ui_schema(forms, task.form_key)
    data, signals = step_view(session, definitions, inst, task.spiff_task_id) if task.state == OPEN else (None, [])
    out["instructions"] = render_instructions(_instructions(session, definitions, definition.id, task.task_name),
                                              data or {})
    may_act = task.state == OPEN and may_act_now(session, user.id, task.id, today)
    out["actions"] = {
        "complete": may_act and inst.status == "running",
        "claim": may_act and task.assignee_id is None,
        "unclaim": task.state == OPEN and task.assignee_id is not None and (
            task.assignee_id == user.id or task.org_code in org_codes(session, user.id, SUPERVISING_ROLES)),
        "return": may_act and inst.status == "running",
    }
    out["signals"] = signals if may_act and inst.status == "running" else []
    out["instance"] = instance_summary(inst, definition, users, orgs)
    out["data"] = data
    return out


def _ui_schema(forms: dict, form_key: str | None):
    """spiff-arena's convention: `x-schema.json` pairs with `x-uischema.json`."""
    if not form_key:
        return None
    stem = form_key[:-5] if form_key.endswith(".json") else form_key
    for name in (f"{stem.removesuffix('-schema')}-uischema.json", f"{stem}-uischema.json", f"{stem}.uischema.json"):
        if name in forms:
            return forms[name]
    return None


def _instructions(session: Session, definitions, definition_id: int, task_name: str) -> str | None:
    try:
        parsed = definitions.get(session, definition_id)
    except Exception:  # noqa: BLE001 - a detail page must not fail because a model cannot be parsed now
        log.exception("definition %s could not be parsed for instructions", definition_id)
        return None
    for spec in parsed.human_tasks.values():
        if spec.bpmn_id == task_name or spec.name == task_name:
            return spec.instructions
    return None


# ------------------------------------------------------------------ instances
INSTANCE_STATUSES = ("running", "suspended", "completed", "cancelled", "error")


@dataclass
class InstanceQuery:
    process: str | None = None
    status: str | None = None
    organisation: str | None = None
    assignee: str | None = None
    overdue: bool | None = None
    limit: int = 50
    cursor: str | None = None


def instance_list(session: Session, user: User, now: datetime, q: InstanceQuery) -> Page:
    """A page of the cases the caller may see, newest first."""
    query = select(Instance.id, Instance.process_key, Instance.title, Instance.status, Instance.owner_org,
                   Instance.initiator_id, Instance.business, Instance.created_at, Instance.updated_at,
                   Instance.completed_at, Instance.version)
    query = query.where(visible_instance_condition(session, user))
    if q.process:
        query = query.where(Instance.process_key == q.process)
    if q.status:
        query = query.where(Instance.status == q.status)
    if q.organisation:
        query = query.where(Instance.owner_org == q.organisation)
    if q.assignee:
        assignee_id = user_id_by_username(session, q.assignee)
        query = query.where(exists().where(HumanTask.instance_id == Instance.id, HumanTask.state == OPEN,
                                           HumanTask.assignee_id == assignee_id) if assignee_id else false())
    if q.overdue is not None:
        late = exists().where(HumanTask.instance_id == Instance.id, HumanTask.state == OPEN,
                              HumanTask.due_at.is_not(None), HumanTask.due_at < now)
        query = query.where(late if q.overdue else ~late)
    query = query.where(_after(Instance.created_at, Instance.id, q.cursor, int, True))
    rows = session.execute(query.order_by(Instance.created_at.desc(), Instance.id.desc()).limit(q.limit + 1)).all()
    shown = rows[:q.limit]
    users = user_refs(session, [r.initiator_id for r in shown])
    orgs = org_refs(session, [r.owner_org for r in shown])

    def to_dict(r) -> dict:
        return {
            "id": r.id, "process": r.process_key, "title": r.title, "status": r.status,
            "owner_org": orgs.get(r.owner_org) if r.owner_org else None, "initiator": users.get(r.initiator_id),
            "business": r.business or {}, "created_at": r.created_at, "updated_at": r.updated_at,
            "completed_at": r.completed_at, "version": r.version,
        }

    return _page(rows, q.limit, to_dict, lambda r: (r.created_at, r.id))


def instance_summary(inst, definition, users: dict, orgs: dict) -> dict:
    """`inst`: an Instance or a row with its summary columns; `definition`: anything with title_vi and version."""
    return {
        "id": inst.id,
        "process": inst.process_key,
        "process_title": definition.title_vi,
        "definition_version": definition.version,
        "title": inst.title,
        "status": inst.status,
        "owner_org": orgs.get(inst.owner_org) if inst.owner_org else None,
        "initiator": users.get(inst.initiator_id),
        "business": inst.business or {},
        "created_at": inst.created_at,
        "updated_at": inst.updated_at,
        "completed_at": inst.completed_at,
        "version": inst.version,
    }


@dataclass
class _DefinitionRef:
    title_vi: str
    version: int


# The answers of the API's actions (start a case, act on a task) are on every request's hot path:
# they are read in plain SQL on the request's connection (engine.store), two statements each, with
# no ORM objects or statement building (these were as costly as the action itself).
_ANSWER_TASK = ("id", "instance_id", "process_key", "task_name", "title", "lane", "org_code", "role", "state",
                "assignee_id", "candidate_user_id", "completed_by", "acting_for", "created_at", "due_at",
                "completed_at", "form_key", "business", "return_reason")
_ANSWER_CASE = ("id", "process_key", "title", "status", "owner_org", "initiator_id", "business", "created_at",
                "updated_at", "completed_at", "version")
_CASE_SELECT = ", ".join([*(f"i.{c} AS c_{c}" for c in _ANSWER_CASE), "d.title_vi AS d_title_vi",
                          "d.version AS d_version"])
_TASK_SELECT = ", ".join(f"t.{c} AS t_{c}" for c in _ANSWER_TASK)


class _Row:
    """Attribute access over one prefix's columns of a joined row (what task_dict and instance_summary read)."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


def _split(store: Store, keys: list[str], row) -> dict[str, _Row | None]:
    """A joined row's columns by table prefix (`c_`, `d_`, `t_`), loaded like the store's own rows."""
    parts: dict[str, dict] = {}
    for key, value in zip(keys, row, strict=True):
        prefix, name = key.split("_", 1)
        parts.setdefault(prefix, {})[name] = store.load(name, value)
    return {prefix: (_Row(values) if any(v is not None for v in values.values()) else None)
            for prefix, values in parts.items()}


def _refs(store: Store, user_ids, org_codes) -> tuple[dict[int, dict], dict[str, dict]]:
    """`user_refs` and `org_refs` in one statement."""
    ids = sorted({i for i in user_ids if i is not None})
    codes = sorted({c for c in org_codes if c})
    parts, params = [], {}
    if ids:
        params.update({f"u{k}": v for k, v in enumerate(ids)})
        marks = ", ".join(f":u{k}" for k in range(len(ids)))
        parts.append("SELECT 'u' AS kind, CAST(id AS VARCHAR(20)) AS ref, username AS a, full_name AS b "
                     f"FROM users WHERE id IN ({marks})")
    if codes:
        params.update({f"o{k}": v for k, v in enumerate(codes)})
        marks = ", ".join(f":o{k}" for k in range(len(codes)))
        parts.append(f"SELECT 'o' AS kind, code AS ref, name_vi AS a, name_en AS b FROM organisations "
                     f"WHERE code IN ({marks})")
    users: dict[int, dict] = {}
    orgs: dict[str, dict] = {}
    if not parts:
        return users, orgs
    for kind, ref, a, b in store.execute(" UNION ALL ".join(parts), **params).fetchall():
        if kind == "u":
            users[int(ref)] = {"id": int(ref), "username": a, "full_name": b}
        else:
            orgs[ref] = {"code": ref, "name_vi": a, "name_en": b}
    return users, orgs


def _answer_store(session: Session) -> Store:
    return Store.on(session.connection())


def instance_brief(session: Session, instance_id: int, now: datetime) -> dict:
    """The case summary with its open tasks, from projections only (the stored state is not even read).

    Two statements: the case with its definition and open tasks (joined), then people and units."""
    store = _answer_store(session)
    result = store.execute(
        f"SELECT {_CASE_SELECT}, {_TASK_SELECT} FROM instances i JOIN definitions d ON d.id = i.definition_id "
        "LEFT JOIN human_tasks t ON t.instance_id = i.id AND t.state = :open WHERE i.id = :id "
        "ORDER BY t.created_at, t.id", id=instance_id, open=OPEN)
    keys = result.keys()
    joined = [_split(store, keys, row) for row in result.fetchall()]
    if not joined:
        raise NotFound("Không tìm thấy hồ sơ.", "Case not found.", {"instance": instance_id})
    inst, definition = joined[0]["c"], _DefinitionRef(joined[0]["d"].title_vi, joined[0]["d"].version)
    tasks = [j["t"] for j in joined if j["t"] is not None]
    users, orgs = _refs(store, [inst.initiator_id, *(t.assignee_id for t in tasks),
                                *(t.candidate_user_id for t in tasks)],
                        [inst.owner_org, *(t.org_code for t in tasks)])
    out = instance_summary(inst, definition, users, orgs)
    out["open_tasks"] = [task_dict(t, now, users, orgs) for t in tasks]
    return out


def task_result(session: Session, task_id: str, next_ids: list[str], now: datetime) -> dict:
    """What an action on a task answers: the task, the tasks it opened, and the case summary.

    Two statements whatever the number of tasks: the tasks with their case and its definition
    (joined), then people and units."""
    store = _answer_store(session)
    wanted = [task_id, *next_ids]
    marks = ", ".join(f":t{k}" for k in range(len(wanted)))
    result = store.execute(
        f"SELECT {_CASE_SELECT}, {_TASK_SELECT} FROM human_tasks t JOIN instances i ON i.id = t.instance_id "
        f"JOIN definitions d ON d.id = i.definition_id WHERE t.id IN ({marks})",
        **{f"t{k}": v for k, v in enumerate(wanted)})
    keys = result.keys()
    joined = {j["t"].id: j for j in (_split(store, keys, row) for row in result.fetchall())}
    first = joined[task_id]
    task = first["t"]
    following = [joined[i]["t"] for i in next_ids if i in joined]
    inst, definition = first["c"], _DefinitionRef(first["d"].title_vi, first["d"].version)
    people = [i for t in (task, *following) for i in (t.assignee_id, t.candidate_user_id, t.completed_by,
                                                         t.acting_for)]
    users, orgs = _refs(store, [inst.initiator_id, *people],
                        [inst.owner_org, *(t.org_code for t in (task, *following))])
    return {"task": task_dict(task, now, users, orgs),
            "next_tasks": [task_dict(t, now, users, orgs) for t in following],
            "instance": instance_summary(inst, definition, users, orgs)}


def instance_detail(session: Session, user: User, instance_id: int, today: date, now: datetime,
                    definitions) -> dict:
    """Status, data, open tasks, history and comments of one case; 404 unless the caller may see it."""
    inst = session.get(Instance, instance_id)
    if inst is None or not may_view_instance(session, user, instance_id, today):
        raise NotFound("Không tìm thấy hồ sơ.", "Case not found.", {"instance": instance_id})
    definition = session.get(Definition, inst.definition_id)
    tasks = list(session.scalars(select(HumanTask).where(HumanTask.instance_id == inst.id)
                                 .order_by(HumanTask.created_at, HumanTask.id)))
    events = list(session.scalars(select(AuditEvent).where(AuditEvent.instance_id == inst.id)
                                  .order_by(AuditEvent.at, AuditEvent.id).limit(MAX_HISTORY)))
    comments = list(session.scalars(select(Comment).where(Comment.instance_id == inst.id)
                                    .order_by(Comment.created_at, Comment.id)))
    people = [inst.initiator_id]
    people += [i for t in tasks for i in (t.assignee_id, t.candidate_user_id, t.completed_by, t.acting_for)]
    people += [i for e in events for i in (e.actor_id, e.acting_for_id)]
    people += [i for c in comments for i in (c.author_id, c.acting_for_id)]
    users = user_refs(session, people)
    orgs = org_refs(session, [inst.owner_org, *(t.org_code for t in tasks)])
    out = instance_summary(inst, definition, users, orgs)
    out["error"] = inst.error if user.is_admin else None
    out["data"] = latest_data(session, definitions, inst)
    out["open_tasks"] = [task_dict(t, now, users, orgs) for t in tasks if t.state == OPEN]
    out["tasks"] = [task_dict(t, now, users, orgs) for t in tasks]
    out["history"] = [{
        "id": e.id, "at": e.at, "action": e.action, "task_id": e.task_id,
        "actor": users.get(e.actor_id), "acting_for": users.get(e.acting_for_id), "details": e.details or {},
    } for e in events]
    out["comments"] = [comment_dict(c, users) for c in comments]
    return out


def comment_dict(c: Comment, users: dict) -> dict:
    return {"id": c.id, "task_id": c.task_id, "author": users.get(c.author_id),
            "acting_for": users.get(c.acting_for_id), "body": c.body, "created_at": c.created_at}


def comment(session: Session, comment_id: int) -> dict:
    c = session.get(Comment, comment_id)
    return comment_dict(c, user_refs(session, [c.author_id, c.acting_for_id]))


def latest_data(session: Session, definitions, inst: Instance) -> dict | None:
    """The case's current data: the workflow data once it has ended, else the last run step's data."""
    try:
        parsed = definitions.get(session, inst.definition_id)
        wf = serialization.loads(inst.state, parsed.dialect, inst.definition_id, parsed.spec_pair)
        data = dict(wf.last_task.data) if wf.last_task is not None else dict(wf.task_tree.data)
        if wf.is_completed():
            data.update(wf.data)
        return json_safe(data)
    except Exception:  # noqa: BLE001 - show the rest of the case even if its state cannot be read
        log.exception("state of instance %s could not be read", inst.id)
        return None


def task_data(session: Session, definitions, inst: Instance, spiff_task_id: str) -> dict | None:
    """The data an open step sees: its own (a unit's multi-instance step sees its unit, not the last one)."""
    return step_view(session, definitions, inst, spiff_task_id)[0]


def step_view(session: Session, definitions, inst: Instance, spiff_task_id: str) -> tuple[dict | None, list[dict]]:
    """An open step's data and its signal buttons (`task_actions.task_signals`), from one load of the state."""
    from engine.task_actions import task_signals

    try:
        parsed = definitions.get(session, inst.definition_id)
        wf = serialization.loads(inst.state, parsed.dialect, inst.definition_id, parsed.spec_pair)
        spiff = wf.get_task_from_id(UUID(spiff_task_id))
        if spiff is None:
            return None, []
        return json_safe(dict(spiff.data)), task_signals(spiff)
    except Exception:  # noqa: BLE001 - show the rest of the task even if its state cannot be read
        log.exception("state of instance %s could not be read", inst.id)
        return None, []


_JINJA = SandboxedEnvironment(autoescape=False, undefined=ChainableUndefined)
MAX_INSTRUCTIONS = 20_000


def render_instructions(template: str | None, data: dict) -> str | None:
    """Fill a step's `{{ field }}` placeholders from its data, in Jinja's sandbox; plain text out (escaped by views)."""
    if not template:
        return template
    try:
        return _JINJA.from_string(template).render(**data)[:MAX_INSTRUCTIONS]
    except Exception:  # noqa: BLE001 - a broken template shows as written rather than failing the page
        return template


def json_safe(value, depth: int = 0):
    """Task data as JSON: dates as ISO strings, decimals as strings (exact), anything else as text."""
    if depth > 64:
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


# ------------------------------------------------------------------ definitions
def definition_list(session: Session, process: str | None = None) -> list[dict]:
    query = select(Definition.id, Definition.process_key, Definition.version, Definition.title_vi,
                   Definition.title_en, Definition.dialect, Definition.deployed_at, Definition.deployed_by)
    if process:
        query = query.where(Definition.process_key == process)
    rows = session.execute(query.order_by(Definition.process_key, Definition.version.desc())).all()
    latest: dict[str, int] = {}
    for r in rows:
        latest.setdefault(r.process_key, r.version)
    users = user_refs(session, [r.deployed_by for r in rows])
    return [{
        "id": r.id, "process": r.process_key, "version": r.version, "latest": latest[r.process_key] == r.version,
        "title_vi": r.title_vi, "title_en": r.title_en, "dialect": r.dialect, "deployed_at": r.deployed_at,
        "deployed_by": users.get(r.deployed_by),
    } for r in rows]
