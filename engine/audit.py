"""Audit events: every change of state says who, acting for whom, what and when."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy.orm import Session

_PENDING = "dieuphoi_audit"


class Action(str, enum.Enum):
    DEFINITION_DEPLOYED = "definition_deployed"
    INSTANCE_STARTED = "instance_started"
    INSTANCE_COMPLETED = "instance_completed"
    INSTANCE_CANCELLED = "instance_cancelled"
    INSTANCE_SUSPENDED = "instance_suspended"
    INSTANCE_RESUMED = "instance_resumed"
    INSTANCE_FAILED = "instance_failed"
    TASK_CREATED = "task_created"
    TASK_COMPLETED = "task_completed"
    TASK_CLAIMED = "task_claimed"
    TASK_UNCLAIMED = "task_unclaimed"
    TASK_RETURNED = "task_returned"
    TASK_REASSIGNED = "task_reassigned"
    TASK_CANCELLED = "task_cancelled"
    MESSAGE_DELIVERED = "message_delivered"
    SIGNAL_RECEIVED = "signal_received"
    TIMER_FIRED = "timer_fired"
    TIMER_FAILED = "timer_failed"
    TASK_REMINDED = "task_reminded"
    TASK_ESCALATED = "task_escalated"
    COMMENT_ADDED = "comment_added"
    ORGANISATION_MERGED = "organisation_merged"
    CALENDAR_CHANGED = "calendar_changed"
    TASK_DRAFT_SAVED = "task_draft_saved"
    TASK_DRAFT_DISCARDED = "task_draft_discarded"
    USER_CREATED = "user_created"
    USER_UPDATED = "user_updated"
    POSITION_ADDED = "position_added"
    POSITION_REMOVED = "position_removed"
    SUBSTITUTE_ADDED = "substitute_added"
    SUBSTITUTE_REMOVED = "substitute_removed"
    PASSWORD_RESET = "password_reset"
    PASSWORD_CHANGED = "password_changed"


def record(
    session: Session,
    action: Action,
    at: datetime,
    *,
    instance_id=None,
    task_id: str | None = None,
    actor_id: int | None = None,
    acting_for_id: int | None = None,
    **details,
) -> None:
    """Queue an audit row; `flush_pending` writes the action's rows in one statement before commit.

    `instance_id` may be an Instance not yet inserted: its id is read when the rows are written.
    """
    details = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in details.items()}
    session.info.setdefault(_PENDING, []).append(dict(
        instance_id=instance_id, task_id=task_id, actor_id=actor_id, acting_for_id=acting_for_id,
        action=action.value, details=details, at=at,
    ))


def flush_pending(session: Session) -> None:
    rows = session.info.pop(_PENDING, None)
    for row in rows or ():
        if row["instance_id"] is not None and not isinstance(row["instance_id"], int):
            row["instance_id"] = row["instance_id"].id  # an instance inserted by this same action
    if rows:  # one executemany on the driver: audit rows are on every action's path
        from engine.store import Store

        Store(session).execute_many(
            "INSERT INTO audit_events (instance_id, task_id, actor_id, acting_for_id, action, details, at) "
            "VALUES (:instance_id, :task_id, :actor_id, :acting_for_id, :action, :details, :at)", rows)
