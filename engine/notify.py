"""Who hears about what: emails written to the outbox in the transaction of the event that caused them."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from engine.store import InstanceRow, Store, TaskRow


def _people(store: Store, *, user_ids=(), org_code=None, roles=()) -> list[dict]:
    """Active users by id, or holding one of `roles` in `org_code`: [{id, full_name, email}]."""
    found = []
    for uid in user_ids:
        found += store.rows("SELECT id, full_name, email FROM users WHERE id = :id AND active = :yes", id=uid, yes=True)
    for role in roles:
        found += store.rows(
            "SELECT users.id, users.full_name, users.email FROM users JOIN positions ON positions.user_id = users.id "
            "WHERE positions.org_code = :org AND positions.role = :role AND users.active = :yes ORDER BY users.id",
            org=org_code, role=role, yes=True)
    unique = {p["id"]: p for p in found if p["email"]}
    return list(unique.values())


def _org_name(store: Store, code: str | None) -> str:
    return (store.scalar("SELECT name_vi FROM organisations WHERE code = :c", c=code) if code else None) or (code or "")


class Notifier:
    """Composes the emails of one engine; `enqueue` and `render` come from the outbox and mail modules."""

    def __init__(self, base_url: str, tz: ZoneInfo):
        self.base_url = base_url.rstrip("/")
        self.tz = tz

    def _send(self, store: Store, kind: str, key: str, people: list[dict], context, at: datetime,
              instance_id: int | None, task_id: str | None) -> None:
        """Render and queue one email; `context` is a callable, so nothing is looked up for nobody."""
        if not people:
            return
        from engine.mail import render
        from engine.outbox import enqueue

        context = {**context(), "base_url": self.base_url, "recipients": people}
        subject, text, html = render(kind, context)
        enqueue(store.session, kind=kind, dedupe_key=key, recipients=[p["email"] for p in people], subject=subject,
                text=text, html=html, at=at, base_url=self.base_url, instance_id=instance_id, task_id=task_id)

    def digest(self, store: Store, person: dict, day, context: dict, at: datetime) -> None:
        """One person's daily digest (engine.digest decides who hears about what)."""
        self._send(store, "digest", f"digest:{person['id']}:{day.isoformat()}", [person], lambda: context, at,
                   None, None)

    def _context(self, store: Store, task: TaskRow, inst: InstanceRow, process_title: str, **extra) -> dict:
        return {
            "task_id": task.id, "task_title": task.title, "instance_id": inst.id, "case_title": inst.title,
            "process_title": process_title, "unit_name": _org_name(store, task.org_code),
            "due_at": task.due_at.astimezone(self.tz) if task.due_at else None,
            "task_url": f"{self.base_url}/tasks/{task.id}", "case_url": f"{self.base_url}/instances/{inst.id}",
            **extra,
        }

    def task_opened(self, store: Store, task: TaskRow, inst: InstanceRow, process_title: str, at: datetime) -> None:
        """Assigned to you (a personal task) or to your unit (everyone holding the lane's role)."""
        if task.assignee_id or task.candidate_user_id:
            people, kind = _people(store, user_ids=[task.assignee_id or task.candidate_user_id]), "task_assigned"
        else:
            people, kind = _people(store, org_code=task.org_code, roles=[task.role]), "task_assigned_unit"
        self._send(store, kind, f"assigned:{task.id}", people, lambda: self._context(store, task, inst, process_title),
                   at, inst.id, task.id)

    def returned(self, store: Store, task: TaskRow, inst: InstanceRow, process_title: str, reason: str,
                 by_name: str, at: datetime) -> None:
        people = _people(store, user_ids=[task.assignee_id] if task.assignee_id else [])
        self._send(store, "returned", f"returned:{task.id}", people,
                   lambda: self._context(store, task, inst, process_title, reason=reason, actor_name=by_name), at,
                   inst.id, task.id)

    def reminder(self, store: Store, task: TaskRow, inst: InstanceRow, process_title: str, at: datetime) -> None:
        people = (_people(store, user_ids=[task.assignee_id]) if task.assignee_id
                  else _people(store, org_code=task.org_code, roles=[task.role]))
        self._send(store, "reminder", f"remind:{task.id}", people,
                   lambda: self._context(store, task, inst, process_title), at, inst.id, task.id)

    def escalation(self, store: Store, task: TaskRow, inst: InstanceRow, process_title: str, level: int,
                   step: dict, overdue_days: int, at: datetime) -> None:
        """Level by level: the unit's supervisors, then the lead organisation's, as the ladder says."""
        notify = step.get("notify", "supervisor")
        if notify == "assignee":
            people = _people(store, user_ids=[task.assignee_id] if task.assignee_id else [])
        else:
            org = step.get("org") if notify == "lead" else task.org_code
            people = _people(store, org_code=org, roles=["supervisor", "leader"])
        assignee = _people(store, user_ids=[task.assignee_id])[0]["full_name"] if task.assignee_id else ""
        self._send(store, "escalation", f"escalation:{task.id}:{level}", people,
                   lambda: self._context(store, task, inst, process_title, level=level, overdue_days=overdue_days,
                                         assignee_name=assignee), at, inst.id, task.id)

    def decision(self, store: Store, inst: InstanceRow, process_title: str, outcome: str, at: datetime,
                 audience: dict | None = None) -> None:
        """The person who started the case hears how it ended; with `audience` (the descriptor's
        `notify_on_completion`), so do the given roles of every organisation of the given kinds."""
        context = {"instance_id": inst.id, "case_title": inst.title, "process_title": process_title,
                   "outcome": outcome, "case_url": f"{self.base_url}/instances/{inst.id}"}
        people = _people(store, user_ids=[inst.initiator_id] if inst.initiator_id else [])
        self._send(store, "decision", f"decision:{inst.id}", people, lambda: context, at, inst.id, None)
        if audience:
            everyone = store.rows(
                "SELECT DISTINCT users.id, users.full_name, users.email FROM users "
                "JOIN positions ON positions.user_id = users.id "
                "JOIN organisations ON organisations.code = positions.org_code "
                "WHERE organisations.active = :yes AND users.active = :yes ORDER BY users.id", yes=True) \
                if not audience.get("kinds") and not audience.get("roles") else _audience(store, audience)
            others = [p for p in everyone if p["email"] and p["id"] != inst.initiator_id]
            self._send(store, "decision", f"decision:{inst.id}:all", others, lambda: context, at, inst.id, None)


def _audience(store: Store, audience: dict) -> list[dict]:
    found: dict[int, dict] = {}
    for kind in audience.get("kinds") or [None]:
        for role in audience.get("roles") or [None]:
            sql = ("SELECT users.id, users.full_name, users.email FROM users "
                   "JOIN positions ON positions.user_id = users.id "
                   "JOIN organisations ON organisations.code = positions.org_code "
                   "WHERE organisations.active = :yes AND users.active = :yes")
            params = {"yes": True}
            if kind:
                sql += " AND organisations.kind = :kind"
                params["kind"] = kind
            if role:
                sql += " AND positions.role = :role"
                params["role"] = role
            for person in store.rows(sql + " ORDER BY users.id", **params):
                found.setdefault(person["id"], person)
    return list(found.values())
