"""One checker for "nothing half-applied": workflow state, task rows, audit, timers and outbox agree.

`violations(url)` reads the whole database and returns a list of human-readable problems
(empty = consistent). It only relies on facts every action keeps in one transaction:

- instances: the stored state deserializes; a running case's READY manual tasks are exactly its
  open `human_tasks` rows (one row each); a completed case's workflow is completed, has no open
  row, and exactly one `instance_completed` event; every case has exactly one `instance_started`;
  the version column is 1 + the number of audited actions that write the instance row.
- tasks: no reminder or escalation after the task's completion; a task's escalation level is the
  highest level applied; a completed row has exactly one `task_completed` event and its Spiff task is no longer
  READY (unless a later row reopened it); every `task_completed` event has its completed row.
- timers: nothing is left `claimed` when `quiet=True` (all workers stopped or idle); no reminder
  or escalation is still pending for a task that is closed; each (task, level) escalated and each
  task reminded at most once; `fired_at` is never before `due_at`.
- outbox: every row has its cause (`assigned:` its task row, `remind:` a `task_reminded` event,
  `escalation:<task>:<level>` a `task_escalated` event at that level, `decision:` an
  `instance_completed` event, `returned:` a `task_returned` event); at most one successful attempt
  per row unless the attempt log shows a lease expiry (a visible, possible duplicate).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from uuid import UUID

from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy import text

from engine import serialization
from engine.db import Database
from engine.definitions import DefinitionCache

# Audited actions that write the instance row (and so bump its version) exactly once.
VERSION_BUMPS = {"task_completed", "task_claimed", "task_unclaimed", "task_reassigned", "task_returned",
                 "timer_fired", "instance_cancelled", "instance_suspended", "instance_resumed"}


def _rows(conn, sql: str, **params) -> list[dict]:
    result = conn.execute(text(sql), params)
    return [dict(r._mapping) for r in result]


def _json(value):
    return json.loads(value) if isinstance(value, str) else (value or {})


def violations(url: str, *, quiet: bool = True) -> list[str]:
    db = Database(url)
    try:
        return _check(db, quiet)
    finally:
        db.dispose()


def _check(db: Database, quiet: bool) -> list[str]:
    problems: list[str] = []
    with db.engine.connect() as conn:
        instances = _rows(conn, "SELECT id, definition_id, status, state, version FROM instances ORDER BY id")
        tasks = _rows(conn, "SELECT id, instance_id, spiff_task_id, state, created_at, completed_by, escalation_level "
                            "FROM human_tasks ORDER BY created_at")
        audit = _rows(conn, "SELECT id, instance_id, task_id, action, details FROM audit_events ORDER BY id")
        timers = _rows(conn, "SELECT id, kind, dedupe_key, instance_id, task_id, level, state, due_at, fired_at "
                             "FROM timers")
        outbox = _rows(conn, "SELECT id, dedupe_key, kind, instance_id, task_id, state FROM outbox")
        attempts = _rows(conn, "SELECT outbox_id, ok, error FROM outbox_attempts")

    by_instance: dict[int, list[dict]] = defaultdict(list)
    task_events: dict[tuple[str, str], int] = Counter()
    inst_events: dict[tuple[int, str], int] = Counter()
    escalated: dict[tuple[str, int], int] = Counter()
    closed_at: dict[str, int] = {}  # task -> audit id of its completion
    for event in audit:
        if event["action"] == "task_completed":
            closed_at.setdefault(event["task_id"], event["id"])
        elif event["action"] in ("task_reminded", "task_escalated") and event["task_id"] in closed_at:
            problems.append(f"task {event['task_id']}: {event['action']} after it was completed")
        if event["task_id"]:
            task_events[(event["task_id"], event["action"])] += 1
        if event["instance_id"] is not None:
            inst_events[(event["instance_id"], event["action"])] += 1
        if event["action"] == "task_escalated":
            escalated[(event["task_id"], _json(event["details"]).get("level"))] += 1
    for row in tasks:
        by_instance[row["instance_id"]].append(row)
    task_by_id = {t["id"]: t for t in tasks}

    cache = DefinitionCache(10 * 1024 * 1024)
    with db.read() as session:
        for inst in instances:
            iid = inst["id"]
            parsed = cache.get(session, inst["definition_id"])
            try:
                wf = serialization.loads(inst["state"], parsed.dialect, inst["definition_id"], parsed.spec_pair)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                problems.append(f"instance {iid}: state does not deserialize: {exc!r}")
                continue
            rows = by_instance.get(iid, [])
            open_rows = [r for r in rows if r["state"] == "open"]
            ready = {str(t.id) for t in wf.get_tasks(state=SpiffState.READY, manual=True)}
            open_ids = Counter(r["spiff_task_id"] for r in open_rows)
            if any(n > 1 for n in open_ids.values()):
                problems.append(f"instance {iid}: two open rows for one step: {open_ids}")
            if inst["status"] == "running" and set(open_ids) != ready:
                problems.append(f"instance {iid}: open rows {sorted(open_ids)} != READY user tasks {sorted(ready)}")
            if inst["status"] == "completed":
                if not wf.is_completed():
                    problems.append(f"instance {iid}: status completed but the workflow is not")
                if open_rows:
                    problems.append(f"instance {iid}: completed with open rows")
            if inst_events[(iid, "instance_started")] != 1:
                problems.append(f"instance {iid}: {inst_events[(iid, 'instance_started')]} instance_started events")
            done = inst_events[(iid, "instance_completed")]
            if done != (1 if inst["status"] == "completed" else 0):
                problems.append(f"instance {iid}: status {inst['status']} with {done} instance_completed events")
            bumps = sum(inst_events[(iid, a)] for a in VERSION_BUMPS)
            if inst["version"] != 1 + bumps:
                problems.append(f"instance {iid}: version {inst['version']} but {bumps} audited writes (expected "
                                f"{1 + bumps}): a write without its audit event or the reverse")
            latest_row_of_step = {}
            for r in rows:  # ordered by created_at
                latest_row_of_step[r["spiff_task_id"]] = r["id"]
            for r in rows:
                if r["state"] != "completed":
                    continue
                spiff = wf.get_task_from_id(UUID(r["spiff_task_id"]))
                if spiff is not None and spiff.state == SpiffState.READY and latest_row_of_step[r["spiff_task_id"]] == r["id"]:
                    problems.append(f"task {r['id']}: completed row but its step is still READY in the workflow")

    for r in tasks:
        n = task_events[(r["id"], "task_completed")]
        if r["state"] == "completed" and n != 1:
            problems.append(f"task {r['id']}: completed with {n} task_completed events")
        if r["state"] != "completed" and n:
            problems.append(f"task {r['id']}: state {r['state']} but {n} task_completed events")
        if task_events[(r["id"], "task_reminded")] > 1:
            problems.append(f"task {r['id']}: reminded {task_events[(r['id'], 'task_reminded')]} times")
    for (task_id, action), _n in task_events.items():
        if action == "task_completed" and task_id not in task_by_id:
            problems.append(f"task_completed event for a task row that does not exist: {task_id}")
    top_level: dict[str, int] = {}
    for (task_id, level), _n in escalated.items():
        top_level[task_id] = max(top_level.get(task_id, 0), level or 0)
    for task_id, level in top_level.items():
        if task_id in task_by_id and task_by_id[task_id]["escalation_level"] != level:
            problems.append(f"task {task_id}: escalation level {task_by_id[task_id]['escalation_level']} but level "
                            f"{level} was applied (lost update)")
    for (task_id, level), n in escalated.items():
        if n > 1:
            problems.append(f"task {task_id}: escalation level {level} applied {n} times")

    for t in timers:
        if quiet and t["state"] == "claimed":
            problems.append(f"timer {t['dedupe_key']}: still claimed while no worker runs")
        if t["fired_at"] is not None and t["fired_at"] < t["due_at"]:
            problems.append(f"timer {t['dedupe_key']}: fired at {t['fired_at']} before due {t['due_at']}")
        if t["kind"] in ("remind", "escalate") and t["state"] == "pending":
            task = task_by_id.get(t["task_id"])
            if task is None or task["state"] != "open":
                problems.append(f"timer {t['dedupe_key']}: pending for a task that is "
                                f"{task['state'] if task else 'missing'}")

    ok_attempts: dict[int, int] = Counter()
    lease_notes: dict[int, int] = Counter()
    for a in attempts:
        if a["ok"]:
            ok_attempts[a["outbox_id"]] += 1
        elif a["error"] and "lease expired" in a["error"]:
            lease_notes[a["outbox_id"]] += 1
    for m in outbox:
        key, iid = m["dedupe_key"], m["instance_id"]
        prefix, _, rest = key.partition(":")
        if prefix == "assigned":
            cause = rest in task_by_id and task_events[(rest, "task_created")] == 1
        elif prefix == "remind":
            cause = task_events[(rest, "task_reminded")] == 1
        elif prefix == "escalation":
            task_id, _, level = rest.rpartition(":")
            cause = escalated[(task_id, int(level))] == 1
        elif prefix == "decision":
            cause = inst_events[(iid, "instance_completed")] == 1
        elif prefix == "returned":
            cause = task_events[(rest, "task_returned")] >= 1
        else:
            cause = True  # kinds this checker does not know (digests, test rows)
        if not cause:
            problems.append(f"outbox {key}: no event caused it")
        if ok_attempts[m["id"]] > 1 + lease_notes[m["id"]]:
            problems.append(f"outbox {key}: sent {ok_attempts[m['id']]} times without a recorded lease expiry")
        if m["state"] == "sent" and ok_attempts[m["id"]] == 0:
            problems.append(f"outbox {key}: sent without a successful attempt on record")
    return problems


def sqlite_integrity(url: str) -> str:
    """`PRAGMA integrity_check` of a SQLite database ('ok' when sound)."""
    import sqlite3

    path = url.split("///", 1)[1]
    conn = sqlite3.connect(path)
    try:
        return "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check").fetchall())
    finally:
        conn.close()
