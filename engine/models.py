"""SQLAlchemy tables: the org directory, definitions, instances and their projections."""

from __future__ import annotations

import enum
from datetime import date, datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql import true


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC: one convention on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), date: Date(), dict: JSON(), list: JSON()}


class Role(str, enum.Enum):
    STAFF = "staff"
    SUPERVISOR = "supervisor"
    LEADER = "leader"


class InstanceStatus(str, enum.Enum):
    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ERROR = "error"


class TaskState(str, enum.Enum):
    OPEN = "open"
    COMPLETED = "completed"
    RETURNED = "returned"  # a later step sent the work back; the step was re-opened as a new task
    CANCELLED = "cancelled"


class Organisation(Base):
    __tablename__ = "organisations"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_vi: Mapped[str] = mapped_column(String(255))
    name_en: Mapped[str] = mapped_column(String(255), default="")
    kind: Mapped[str] = mapped_column(String(32), default="department")
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("organisations.code"))
    merged_into: Mapped[str | None] = mapped_column(ForeignKey("organisations.code"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(255), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Receives the morning digest of what is due and overdue (engine.digest).
    daily_digest: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    positions: Mapped[list["Position"]] = relationship(back_populates="user", lazy="select")


class Position(Base):
    """A user's role in an organisation; a user may hold several."""

    __tablename__ = "positions"
    __table_args__ = (
        UniqueConstraint("user_id", "org_code", "role"),
        Index("ix_positions_org_role", "org_code", "role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    org_code: Mapped[str] = mapped_column(ForeignKey("organisations.code"))
    role: Mapped[str] = mapped_column(String(16))

    user: Mapped[User] = relationship(back_populates="positions")


class Substitute(Base):
    """`substitute_id` acts for `user_id` between the two dates (inclusive), e.g. during leave."""

    __tablename__ = "substitutes"
    __table_args__ = (Index("ix_substitutes_sub_dates", "substitute_id", "starts_on", "ends_on"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    substitute_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    starts_on: Mapped[date]
    ends_on: Mapped[date]


class Definition(Base):
    """An immutable deployed version of a process model (BPMN + DMN + forms + descriptor)."""

    __tablename__ = "definitions"
    __table_args__ = (
        UniqueConstraint("process_key", "version"),
        UniqueConstraint("process_key", "content_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process_key: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    process_id: Mapped[str] = mapped_column(String(255))
    dialect: Mapped[str] = mapped_column(String(16), default="spiff")
    title_vi: Mapped[str] = mapped_column(String(255))
    title_en: Mapped[str] = mapped_column(String(255), default="")
    files: Mapped[dict]  # file name -> text (BPMN, DMN)
    forms: Mapped[dict]  # form file name -> JSON Schema
    descriptor: Mapped[dict]
    deployed_at: Mapped[datetime]
    deployed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Instance(Base):
    __tablename__ = "instances"
    __table_args__ = (Index("ix_instances_status_key", "status", "process_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definitions.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default=InstanceStatus.RUNNING.value)
    owner_org: Mapped[str | None] = mapped_column(ForeignKey("organisations.code"), index=True)
    initiator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(Text)
    serializer_version: Mapped[str] = mapped_column(String(16))
    business: Mapped[dict] = mapped_column(default=dict)
    next_timer_at: Mapped[datetime | None] = mapped_column(index=True)
    message_waits: Mapped[int] = mapped_column(Integer, default=0)  # rows in message_subscriptions
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    # Optimistic lock: every write bumps it; a stale writer gets a ConflictError.
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    definition: Mapped[Definition] = relationship(lazy="select")


class HumanTask(Base):
    """Projection of one activation of a user/manual task, kept in the action's transaction."""

    __tablename__ = "human_tasks"
    __table_args__ = (
        Index("ix_tasks_state_org_role", "state", "org_code", "role"),
        Index("ix_tasks_assignee_state", "assignee_id", "state"),
        Index("ix_tasks_instance_state", "instance_id", "state"),
        Index("ix_tasks_spiff", "instance_id", "spiff_task_id"),
        # Inbox at scale (migration 0006): a unit's queue (covering its count and deadline order),
        # tasks addressed to one person, what someone finished (or finished acting for someone),
        # and every open task oldest first.
        Index("ix_tasks_queue", "org_code", "role", "state", "assignee_id", "candidate_user_id", "due_at",
              "created_at", "id", "process_key"),
        Index("ix_tasks_candidate_state", "candidate_user_id", "state"),
        Index("ix_tasks_completed_by", "completed_by", "created_at", "state", "id"),
        Index("ix_tasks_acting_for", "acting_for", "created_at", "state", "id"),
        Index("ix_tasks_state_created", "state", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    process_key: Mapped[str] = mapped_column(String(128))
    task_name: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500))
    lane: Mapped[str | None] = mapped_column(String(255))
    org_code: Mapped[str | None] = mapped_column(ForeignKey("organisations.code"))
    role: Mapped[str | None] = mapped_column(String(16))
    candidate_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(16), default=TaskState.OPEN.value)
    form_key: Mapped[str | None] = mapped_column(String(255))
    business: Mapped[dict] = mapped_column(default=dict)
    return_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acting_for: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    # The inbox search's folded text (projections.search_text, migration 0007): written with the row,
    # read only in SQL (queries.search_condition), so never loaded with the rest.
    search_text: Mapped[str | None] = mapped_column(Text, deferred=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_instance_at", "instance_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    task_id: Mapped[str | None] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acting_for_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict] = mapped_column(default=dict)
    at: Mapped[datetime]


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_instance", "instance_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    task_id: Mapped[str | None] = mapped_column(String(32))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    acting_for_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class MessageSubscription(Base):
    """An instance waiting for a BPMN message, indexed by name and correlation key."""

    __tablename__ = "message_subscriptions"
    __table_args__ = (Index("ix_msgsub_name_key", "message_name", "correlation_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    message_name: Mapped[str] = mapped_column(String(255))
    correlation_key: Mapped[str] = mapped_column(String(512), default="")


class TimerState(str, enum.Enum):
    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Timer(Base):
    """Every timer in one table: BPMN timers as modelled, and declarative reminders and escalations.

    A worker claims due rows with a lease; a dead worker's rows come back when the lease
    expires. The dedupe key makes scheduling the same timer twice a no-op.
    """

    __tablename__ = "timers"
    __table_args__ = (
        Index("ix_timers_state_due", "state", "due_at"),
        Index("ix_timers_task_state", "task_id", "state"),
        Index("ix_timers_instance_state", "instance_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # bpmn | remind | escalate | start
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    task_id: Mapped[str | None] = mapped_column(String(32))
    definition_id: Mapped[int | None] = mapped_column(ForeignKey("definitions.id"))
    level: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default=TimerState.PENDING.value)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]


class OutboxMessage(Base):
    """An email written in the same transaction as the event that caused it; sent later, at least once."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipients: Mapped[list] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(String(500))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(String(255))
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id", ondelete="SET NULL"))
    task_id: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class OutboxAttempt(Base):
    """One delivery attempt of an outbox message, kept for the mail log."""

    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)


class CalendarDay(Base):
    """A day the government announced: an extra day off (nghỉ bù) or a make-up working day (làm bù)."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # off | work
    note: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[datetime]
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class ApiToken(Base):
    """A personal API token: only its SHA-256 hash is stored; it acts with its owner's permissions."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class TaskDraft(Base):
    """A form saved but not submitted (Lưu nháp): one per task, replaced on each save."""

    __tablename__ = "task_drafts"

    task_id: Mapped[str] = mapped_column(ForeignKey("human_tasks.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[dict] = mapped_column(default=dict)
    saved_at: Mapped[datetime]
    saved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class SignInFailure(Base):
    """Failed sign-ins per username, shared by every web process (the lockout counts here)."""

    __tablename__ = "sign_in_failures"

    username: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime]
    last_failed_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
