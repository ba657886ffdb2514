"""The write path's persistence: plain rows and hand-written SQL on the action's connection.

Every user action and timer firing reads one instance, its open tasks and a few directory
facts, and writes them back. Through the ORM that costs several times the BPMN work itself
(identity map, unit of work, statement compilation), so the hot path speaks SQL directly
through the transaction's connection (`exec_driver_sql`). The ORM models in `models.py`
still define the schema (Alembic) and serve the read side and administration.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from engine.db import CONNECTION_KEY
from engine.errors import Conflict

_PARAM = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy's DateTime writes on SQLite


@lru_cache(maxsize=256)
def _translate(sql: str, qmark: bool) -> tuple[str, tuple[str, ...]]:
    """`:name` placeholders -> `?` (sqlite3, positional) or `%(name)s` (psycopg)."""
    names = tuple(_PARAM.findall(sql))
    if qmark:
        return _PARAM.sub("?", sql), names
    return _PARAM.sub(lambda m: f"%({m.group(1)})s", sql.replace("%", "%%")), names


class _Result:
    """What the callers of `Store.execute` use of a result, read before the cursor closes."""

    def __init__(self, cursor):
        self.rowcount = cursor.rowcount
        description = cursor.description  # psycopg builds it anew on every access
        self._keys = [d[0] for d in description] if description else []
        self._rows = cursor.fetchall() if description else []

    def keys(self) -> list[str]:
        return self._keys

    def fetchall(self) -> list:
        return self._rows

    def first(self):
        return self._rows[0] if self._rows else None

    def scalar_one(self):
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._rows[0][0]


@dataclass
class InstanceRow:
    id: int | None
    definition_id: int
    process_key: str
    title: str
    status: str
    owner_org: str | None
    initiator_id: int | None
    state: str
    serializer_version: str
    business: dict
    next_timer_at: datetime | None
    message_waits: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    version: int = 1


@dataclass
class TaskRow:
    id: str
    instance_id: int
    spiff_task_id: str
    process_key: str
    task_name: str
    title: str
    lane: str | None
    org_code: str | None
    role: str | None
    candidate_user_id: int | None
    assignee_id: int | None
    state: str
    form_key: str | None
    business: dict
    return_reason: str | None
    created_at: datetime
    due_at: datetime | None = None
    completed_at: datetime | None = None
    completed_by: int | None = None
    acting_for: int | None = None
    escalation_level: int = 0
    # Written with the row (projections.search_text), never read back on the write path.
    search_text: str | None = field(default=None, repr=False, compare=False)
    changed: set[str] = field(default_factory=set, repr=False, compare=False)

    def set(self, **values) -> None:
        for name, value in values.items():
            setattr(self, name, value)
        self.changed.update(values)


_INSTANCE_COLUMNS = [f.name for f in fields(InstanceRow)]
_TASK_COLUMNS = [f.name for f in fields(TaskRow) if f.name not in ("changed", "search_text")]
_TASK_INSERT = [*_TASK_COLUMNS, "search_text"]
_JSON = {"business", "details", "payload", "recipients"}
_TIMES = {"next_timer_at", "created_at", "updated_at", "completed_at", "due_at", "at", "lease_until", "fired_at"}


class Store:
    """SQL for one action's transaction; obtained with `Store(session)` inside `Database.write()`."""

    def __init__(self, session: Session):
        self.session = session
        # session.connection() is not free and an action makes several stores: ask once per transaction.
        self.conn = session.info.get(CONNECTION_KEY)
        if self.conn is None:
            self.conn = session.info[CONNECTION_KEY] = session.connection()
        self.sqlite = self.conn.dialect.name == "sqlite"

    @classmethod
    def on(cls, conn: Connection) -> "Store":
        """A store on a Core connection, for reads that need no ORM session."""
        store = cls.__new__(cls)
        store.session, store.conn, store.sqlite = None, conn, conn.dialect.name == "sqlite"
        return store

    # ------------------------------------------------------------- plumbing
    def _bind(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (dict, list)):  # JSON columns; a str is taken as already encoded
            return json.dumps(value, ensure_ascii=False)
        if isinstance(value, datetime):
            naive = value.astimezone(timezone.utc).replace(tzinfo=None)
            return naive.strftime(_SQLITE_FORMAT) if self.sqlite else naive
        return value

    def load(self, name: str, value: Any) -> Any:
        """A column's value as the models give it: JSON decoded, times as aware UTC datetimes."""
        return self._load(name, value)

    def _load(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        if name in _JSON and isinstance(value, str):
            return json.loads(value)
        if name in _TIMES:
            if isinstance(value, str):
                value = datetime.fromisoformat(value)
            return value.replace(tzinfo=timezone.utc)
        return value

    def _cursor(self):
        # The DB-API cursor of the transaction's own connection: SQLAlchemy still begins,
        # commits and rolls back the transaction; it just does not wrap every statement.
        return self.conn.connection.dbapi_connection.cursor()

    def execute(self, sql: str, **params) -> _Result:
        text, names = _translate(sql, self.sqlite)
        if self.sqlite:
            bound = tuple(self._bind(n, params[n]) for n in names)
        else:
            bound = {n: self._bind(n, params[n]) for n in names}
        cursor = self._cursor()
        try:
            cursor.execute(text, bound)
            return _Result(cursor)
        finally:
            cursor.close()

    def execute_many(self, sql: str, rows: list[dict]) -> None:
        text, names = _translate(sql, self.sqlite)
        if self.sqlite:
            params = [tuple(self._bind(n, r[n]) for n in names) for r in rows]
        else:
            params = [{n: self._bind(n, r[n]) for n in names} for r in rows]
        cursor = self._cursor()
        try:
            cursor.executemany(text, params)
        finally:
            cursor.close()

    def rows(self, sql: str, **params) -> list[dict]:
        result = self.execute(sql, **params)
        keys = list(result.keys())
        return [{k: self._load(k, v) for k, v in zip(keys, row, strict=True)} for row in result.fetchall()]

    def scalar(self, sql: str, **params):
        row = self.execute(sql, **params).first()
        return None if row is None else row[0]

    # ------------------------------------------------------------- instances
    def instance(self, instance_id: int, lock: bool = False) -> InstanceRow | None:
        sql = f"SELECT {', '.join(_INSTANCE_COLUMNS)} FROM instances WHERE id = :id"
        found = self.rows(sql + ("" if self.sqlite or not lock else " FOR UPDATE"), id=instance_id)
        return InstanceRow(**found[0]) if found else None

    def instance_of_task(self, task_id: str, lock: bool = False) -> InstanceRow | None:
        sql = (f"SELECT {', '.join(_INSTANCE_COLUMNS)} FROM instances "
               "WHERE id = (SELECT instance_id FROM human_tasks WHERE id = :task_id)")
        found = self.rows(sql + ("" if self.sqlite or not lock else " FOR UPDATE"), task_id=task_id)
        return InstanceRow(**found[0]) if found else None

    def lock_due_instance(self, instance_id: int, now: datetime) -> InstanceRow | None:
        """The instance, if its timer is still due and nobody else holds it (SKIP LOCKED)."""
        sql = (f"SELECT {', '.join(_INSTANCE_COLUMNS)} FROM instances "
               "WHERE id = :id AND next_timer_at <= :now AND status = 'running'")
        found = self.rows(sql + ("" if self.sqlite else " FOR UPDATE SKIP LOCKED"), id=instance_id, now=now)
        return InstanceRow(**found[0]) if found else None

    def insert_instance(self, row: InstanceRow) -> int:
        cols = [c for c in _INSTANCE_COLUMNS if c != "id"]
        sql = (f"INSERT INTO instances ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)}) "
               "RETURNING id")
        row.id = self.execute(sql, **{c: getattr(row, c) for c in cols}).scalar_one()
        return row.id

    def update_instance(self, row: InstanceRow, *names: str) -> None:
        """Write the named columns and bump the version; a concurrent writer makes this a Conflict."""
        sets = ", ".join(f"{n} = :{n}" for n in names)
        result = self.execute(
            f"UPDATE instances SET {sets}, version = :new_version WHERE id = :id AND version = :version",
            **{n: getattr(row, n) for n in names}, new_version=row.version + 1, id=row.id, version=row.version,
        )
        if result.rowcount != 1:
            raise Conflict("Người khác vừa xử lý hồ sơ này. Vui lòng tải lại trang.",
                           "Someone else has just changed this case. Please reload.", {"instance": row.id})
        row.version += 1

    # ----------------------------------------------------------------- tasks
    def tasks_for_action(self, instance_id: int, task_id: str) -> list[TaskRow]:
        """The instance's open tasks and the one asked for (whatever its state)."""
        return [TaskRow(**r) for r in self.rows(
            f"SELECT {', '.join(_TASK_COLUMNS)} FROM human_tasks "
            "WHERE instance_id = :instance_id AND (state = 'open' OR id = :task_id)",
            instance_id=instance_id, task_id=task_id,
        )]

    def task(self, task_id: str) -> TaskRow | None:
        found = self.rows(f"SELECT {', '.join(_TASK_COLUMNS)} FROM human_tasks WHERE id = :id", id=task_id)
        return TaskRow(**found[0]) if found else None

    def open_tasks(self, instance_id: int) -> list[TaskRow]:
        return [TaskRow(**r) for r in self.rows(
            f"SELECT {', '.join(_TASK_COLUMNS)} FROM human_tasks WHERE instance_id = :instance_id AND state = 'open'",
            instance_id=instance_id,
        )]

    def open_task_ids(self, instance_id: int) -> list[str]:
        result = self.execute("SELECT id FROM human_tasks WHERE instance_id = :instance_id AND state = 'open' "
                              "ORDER BY created_at, id", instance_id=instance_id)
        return [r[0] for r in result.fetchall()]

    def insert_tasks(self, rows: list[TaskRow]) -> None:
        if rows:
            self.execute_many(
                f"INSERT INTO human_tasks ({', '.join(_TASK_INSERT)}) "
                f"VALUES ({', '.join(':' + c for c in _TASK_INSERT)})",
                [{c: getattr(r, c) for c in _TASK_INSERT} for r in rows])

    def save_task(self, row: TaskRow) -> None:
        if not row.changed:
            return
        names = sorted(row.changed)
        self.execute(f"UPDATE human_tasks SET {', '.join(f'{n} = :{n}' for n in names)} WHERE id = :id",
                     **{n: getattr(row, n) for n in names}, id=row.id)
        row.changed.clear()

    # ------------------------------------------------------------- directory
    def holds(self, user_id: int, org_code: str | None, role: str | None) -> bool:
        """An active user holding this position (one statement: it is on every completion's path)."""
        if org_code is None or role is None:
            return False
        return self.scalar(
            "SELECT 1 FROM users JOIN positions ON positions.user_id = users.id WHERE users.id = :user_id "
            "AND users.active = :yes AND positions.org_code = :org AND positions.role = :role",
            user_id=user_id, yes=True, org=org_code, role=role,
        ) is not None

    def member(self, user_id: int, org_code: str) -> bool:
        """An active user with any position in the organisation."""
        return self.scalar(
            "SELECT 1 FROM users JOIN positions ON positions.user_id = users.id WHERE users.id = :user_id "
            "AND users.active = :yes AND positions.org_code = :org", user_id=user_id, yes=True, org=org_code,
        ) is not None

    def last_completer(self, instance_id: int, spiff_task_id: str) -> int | None:
        """Who last completed a step (the person acted for, if a substitute did it)."""
        found = self.rows(
            "SELECT completed_by, acting_for FROM human_tasks WHERE instance_id = :iid AND spiff_task_id = :sid "
            "AND state = 'completed' ORDER BY completed_at DESC", iid=instance_id, sid=spiff_task_id)
        return (found[0]["acting_for"] or found[0]["completed_by"]) if found else None

    def active(self, user_id: int | None) -> bool:
        return user_id is not None and bool(self.scalar("SELECT active FROM users WHERE id = :id", id=user_id))

    def org_successor(self, code: str) -> tuple[bool, str | None]:
        """(exists, merged_into) of one organisation."""
        found = self.execute("SELECT merged_into FROM organisations WHERE code = :code", code=code).first()
        return (False, None) if found is None else (True, found[0])

    def acting_for_today(self, user_id: int, today) -> list[int]:
        return [r["user_id"] for r in self.rows(
            "SELECT user_id FROM substitutes WHERE substitute_id = :uid AND starts_on <= :d AND ends_on >= :d",
            uid=user_id, d=today.isoformat() if self.sqlite else today,
        )]

    # ---------------------------------------------------------- subscriptions
    def subscriptions(self, instance_id: int) -> set[tuple[str, str]]:
        return {(r["message_name"], r["correlation_key"]) for r in self.rows(
            "SELECT message_name, correlation_key FROM message_subscriptions WHERE instance_id = :id", id=instance_id)}

    def replace_subscriptions(self, instance_id: int, wanted: set[tuple[str, str]]) -> None:
        self.execute("DELETE FROM message_subscriptions WHERE instance_id = :id", id=instance_id)
        for name, key in sorted(wanted):
            self.execute("INSERT INTO message_subscriptions (instance_id, message_name, correlation_key) "
                         "VALUES (:id, :name, :key)", id=instance_id, name=name, key=key)


class TimerStore(Store):
    """The timer table: one row per armed timer, claimed by workers with a lease."""

    _ACTIVE = "('pending', 'claimed')"

    def arm_bpmn(self, instance_id: int, due_at: datetime | None, now: datetime) -> None:
        """One row per instance for its next BPMN timer: re-armed in place, cancelled when none is left."""
        key = f"bpmn:{instance_id}"
        if due_at is None:
            # Only a pending row: a claimed one is being fired right now and its worker closes it.
            self.execute("UPDATE timers SET state = 'cancelled' WHERE dedupe_key = :key AND state = 'pending'", key=key)
            return
        self.execute(
            "INSERT INTO timers (kind, dedupe_key, instance_id, level, due_at, state, attempts, payload, created_at) "
            "VALUES ('bpmn', :key, :iid, 0, :due, 'pending', 0, :payload, :now) ON CONFLICT (dedupe_key) DO UPDATE "
            "SET due_at = excluded.due_at, state = 'pending', attempts = 0, last_error = NULL, lease_owner = NULL, "
            "lease_until = NULL",
            key=key, iid=instance_id, due=due_at, payload={}, now=now,
        )

    def arm_start(self, process_key: str, definition_id: int, due_at: datetime, payload: dict, now: datetime) -> None:
        """The periodic start of a process: created once, then only pointed at the newest version."""
        self.execute(
            "INSERT INTO timers (kind, dedupe_key, definition_id, level, due_at, state, attempts, payload, created_at) "
            "VALUES ('start', :key, :def_id, 0, :due, 'pending', 0, :payload, :now) ON CONFLICT (dedupe_key) DO UPDATE "
            "SET definition_id = excluded.definition_id",
            key=f"start:{process_key}", def_id=definition_id, due=due_at, payload=payload, now=now,
        )

    def reschedule(self, timer_id: int, due_at: datetime, payload: dict) -> None:
        self.execute("UPDATE timers SET state = 'pending', due_at = :due, payload = :payload, attempts = 0, "
                     "lease_owner = NULL, lease_until = NULL WHERE id = :id", id=timer_id, due=due_at, payload=payload)

    def add(self, rows: list[dict]) -> None:
        """Schedule declarative timers; a dedupe key seen before is left as it is."""
        for row in rows:
            self.execute(
                "INSERT INTO timers (kind, dedupe_key, instance_id, task_id, level, due_at, state, attempts, payload, "
                "created_at) VALUES (:kind, :key, :iid, :task_id, :level, :due, 'pending', 0, :payload, :now) "
                "ON CONFLICT (dedupe_key) DO NOTHING", **row)

    def cancel_for_tasks(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            self.execute(f"UPDATE timers SET state = 'cancelled' WHERE task_id = :tid AND state IN {self._ACTIVE}",
                         tid=task_id)

    def cancel_for_instance(self, instance_id: int) -> None:
        self.execute(f"UPDATE timers SET state = 'cancelled' WHERE instance_id = :iid AND state IN {self._ACTIVE}",
                     iid=instance_id)

    def claim_due(self, now: datetime, owner: str, lease_until: datetime, limit: int) -> list[dict]:
        """Claim a batch of due timers (and ones whose worker's lease ran out) for this worker."""
        pick = ("SELECT t.id FROM timers t WHERE ((t.state = 'pending' AND t.due_at <= :now) OR "
                "(t.state = 'claimed' AND t.lease_until < :now)) AND (t.instance_id IS NULL OR EXISTS "
                "(SELECT 1 FROM instances i WHERE i.id = t.instance_id AND i.status = 'running')) "
                "ORDER BY t.due_at LIMIT :limit" + ("" if self.sqlite else " FOR UPDATE OF t SKIP LOCKED"))
        return self.rows(
            f"UPDATE timers SET state = 'claimed', lease_owner = :owner, lease_until = :until, "
            f"attempts = attempts + 1 WHERE id IN ({pick}) "
            "RETURNING id, kind, dedupe_key, instance_id, task_id, definition_id, level, due_at, attempts, payload",
            now=now, owner=owner, until=lease_until, limit=limit,
        )

    def finish(self, timer_id: int, owner: str, now: datetime) -> None:
        """Done, unless the action re-armed the row meanwhile (then it is pending again and stays so)."""
        self.execute("UPDATE timers SET state = 'done', fired_at = :now, lease_owner = NULL, lease_until = NULL "
                     "WHERE id = :id AND state = 'claimed' AND lease_owner = :owner", id=timer_id, now=now, owner=owner)

    def fail(self, timer_id: int, owner: str, error: str, retry_at: datetime | None) -> None:
        """Back to pending at `retry_at`, or visibly failed when there is no retry left."""
        if retry_at is not None:
            self.execute("UPDATE timers SET state = 'pending', due_at = :retry_at, last_error = :error, "
                         "lease_owner = NULL, lease_until = NULL WHERE id = :id AND lease_owner = :owner",
                         retry_at=retry_at, error=error[:4000], id=timer_id, owner=owner)
        else:
            self.execute("UPDATE timers SET state = 'failed', last_error = :error, lease_owner = NULL, "
                         "lease_until = NULL WHERE id = :id AND lease_owner = :owner",
                         error=error[:4000], id=timer_id, owner=owner)

    def retry(self, timer_ids: list[int], now: datetime) -> int:
        """An administrator puts failed timers back in the queue."""
        done = 0
        for timer_id in timer_ids:
            done += self.execute("UPDATE timers SET state = 'pending', due_at = :now, attempts = 0, "
                                 "last_error = NULL WHERE id = :id AND state = 'failed'", id=timer_id, now=now).rowcount
        return done
