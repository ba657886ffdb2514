"""The runtime: every user action or timer firing is one transaction over instance, projections and audit."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine import assignment, forms, periodic, projections, serialization, timers
from engine import clock as clockmod
from engine.audit import Action, record
from engine.config import Settings
from engine.db import Database
from engine.definitions import Bundle, DefinitionCache, DeployResult, ParsedDefinition, deploy
from engine.errors import Conflict, EngineError, Forbidden, InvalidInput, NotFound
from engine.models import CalendarDay, Definition, HumanTask, Instance, InstanceStatus, TaskState, User
from engine.notify import Notifier
from engine.sandbox import make_script_engine
from engine.store import InstanceRow, Store, TaskRow, TimerStore
from engine.task_actions import TaskActions
from engine.workdays import WorkingCalendar

log = logging.getLogger(__name__)
MAX_REASON = 2000


_WRITTEN = "dieuphoi_written_workflows"


class LiveWorkflows:
    """The workflow objects this process last committed, keyed by (instance, version).

    Loading a case deserializes its whole state; when the same process acts on the case
    again (submit then approve, a burst of completions), the object it just saved is still
    exactly what the database holds. An entry is published only after its transaction
    commits, and taken (removed) by whoever uses it, so a rolled-back or concurrently
    changed case can never be served from here: any other version is a miss.
    """

    def __init__(self, size: int = 128):
        self._size = size
        self._items: OrderedDict[int, tuple[int, BpmnWorkflow]] = OrderedDict()
        self._lock = threading.Lock()

    def publish(self, written) -> None:
        with self._lock:
            for instance_id, version, wf in written:
                self._items[instance_id] = (version, wf)
                self._items.move_to_end(instance_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def take(self, instance_id: int, version: int) -> BpmnWorkflow | None:
        with self._lock:
            entry = self._items.pop(instance_id, None)
        return entry[1] if entry is not None and entry[0] == version else None


@dataclass(frozen=True)
class DefinitionRef:
    """What starting a case needs of a definition, without its files."""

    id: int
    process_key: str
    version: int
    title_vi: str


def model_failure(exc: Exception, instance_id: int | None) -> InvalidInput:
    """A workflow error as the user sees it: what failed, in which step, called from where."""
    if not isinstance(exc, (SpiffWorkflowException, EngineError)):
        log.exception("unexpected error while running case %s", instance_id)
    trace = list(getattr(exc, "task_trace", None) or [])
    where = f" (tại / at: {' ← '.join(trace)})" if trace else ""
    return InvalidInput(
        f"Quy trình không thể tiếp tục: {exc}{where}",
        f"The process cannot continue: {exc}{where}",
        {"instance": instance_id, "reason": str(exc), "trace": trace},
    )


class Engine(TaskActions):
    """The domain entry point used by the CLI, the web UI, the API and the scheduler."""

    def __init__(self, db: Database, settings: Settings, clock: clockmod.Clock | None = None):
        self.db = db
        self.settings = settings
        self.clock = clock or clockmod.SYSTEM_CLOCK
        self.definitions = DefinitionCache(settings.max_upload_bytes)
        self.script_engine = make_script_engine(cpu_seconds=settings.script_cpu_seconds,
                                                environment_globals={"datetime": clockmod.ClockDatetime})
        self.tz = ZoneInfo(settings.timezone)
        self._calendar: WorkingCalendar | None = None
        self._calendar_loaded = 0.0
        self.notifier = Notifier(settings.base_url, self.tz)
        self.digest_armed = False  # set by the scheduler once the daily digest timer exists
        self.worker = timers.worker_name()
        self.live = LiveWorkflows()

    # ------------------------------------------------------------------ helpers
    CALENDAR_TTL = 300.0  # seconds: other processes see an administrator's new day off within this

    @property
    def calendar(self) -> WorkingCalendar:
        """Working days with the administrator's announced days off and make-up days (re-read now and then)."""
        if self._calendar is None or time.monotonic() - self._calendar_loaded > self.CALENDAR_TTL:
            self.reload_calendar()
        return self._calendar

    def reload_calendar(self) -> None:
        with self.db.read() as session:
            days = session.execute(select(CalendarDay.day, CalendarDay.kind)).all()
        self._calendar = WorkingCalendar(
            tz=self.settings.timezone,
            extra_days_off=[d for d, kind in days if kind == "off"],
            makeup_workdays=[d for d, kind in days if kind == "work"],
        )
        self._calendar_loaded = time.monotonic()

    def set_calendar_day(self, actor_id: int | None, day, kind: str | None, note: str = "") -> None:
        """An administrator records an announced day off ('off'), make-up working day ('work'), or clears it (None)."""
        if kind not in ("off", "work", None):
            raise InvalidInput("Loại ngày phải là 'off' (nghỉ) hoặc 'work' (làm bù).", "Kind must be 'off' or 'work'.",
                               {"kind": str(kind)})
        with self._action() as session:
            if actor_id is not None and not self._user(session, actor_id).is_admin:
                raise Forbidden("Chỉ quản trị hệ thống được thực hiện thao tác này.",
                                "Only an administrator may do this.")
            row = session.get(CalendarDay, day)
            if kind is None:
                if row is not None:
                    session.delete(row)
            elif row is None:
                session.add(CalendarDay(day=day, kind=kind, note=note[:255], updated_at=self.now(),
                                        updated_by=actor_id))
            else:
                row.kind, row.note, row.updated_at, row.updated_by = kind, note[:255], self.now(), actor_id
            record(session, Action.CALENDAR_CHANGED, self.now(), actor_id=actor_id, day=day.isoformat(),
                   kind=kind, note=note[:255])
        self.reload_calendar()

    def now(self) -> datetime:
        return self.clock.now()

    def today(self):
        return self.now().astimezone(self.tz).date()

    @contextmanager
    def _action(self):
        """One transaction; a concurrent writer's win becomes a Conflict, never a lost update."""
        try:
            with clockmod.using(self.clock), self.db.write() as session:
                yield session
                written = session.info.pop(_WRITTEN, ())
            self.live.publish(written)  # only after the commit: see LiveWorkflows
        except StaleDataError:
            raise Conflict(
                "Người khác vừa xử lý hồ sơ này. Vui lòng tải lại trang.",
                "Someone else has just changed this case. Please reload.",
            ) from None

    def _user(self, session: Session, user_id: int | None) -> User:
        user = session.get(User, user_id) if user_id is not None else None
        if user is None or not user.active:
            raise Forbidden("Tài khoản không hợp lệ hoặc đã bị khóa.", "Unknown or disabled account.")
        return user

    @staticmethod
    def _check_active(store: Store, user_id: int | None) -> None:
        if not store.active(user_id):
            raise Forbidden("Tài khoản không hợp lệ hoặc đã bị khóa.", "Unknown or disabled account.")

    def _parsed(self, session: Session, definition_id: int) -> ParsedDefinition:
        return self.definitions.get(session, definition_id)

    def _load(self, session: Session, inst: InstanceRow) -> tuple[BpmnWorkflow, ParsedDefinition]:
        parsed = self._parsed(session, inst.definition_id)
        wf = self.live.take(inst.id, inst.version)
        if wf is None:
            wf = serialization.loads(inst.state, parsed.dialect, inst.definition_id, parsed.spec_pair)
            wf.script_engine = self.script_engine
        return wf, parsed

    @staticmethod
    def _lock_instance(store: Store, instance_id: int) -> InstanceRow:
        inst = store.instance(instance_id, lock=True)
        if inst is None:
            raise NotFound("Không tìm thấy hồ sơ.", "Case not found.", {"instance": instance_id})
        return inst

    @staticmethod
    def _run_engine(wf: BpmnWorkflow, inst: InstanceRow) -> None:
        """Run the workflow to its next wait; any failure is the model's, reported with where it happened."""
        try:
            wf.do_engine_steps()
        except Exception as exc:  # noqa: BLE001 - the action rolls back; the user gets the reason
            raise model_failure(exc, inst.id) from None

    _SAVED = ("state", "serializer_version", "updated_at", "next_timer_at", "business", "status", "completed_at",
              "message_waits", "error")

    def _save(self, session: Session, inst: InstanceRow, wf: BpmnWorkflow, parsed: ParsedDefinition,
              actor_id: int | None = None, depth: int = 0, open_rows: list[TaskRow] | None = None,
              rearm: bool = False, quiet: frozenset[str] = frozenset(), state: str | None = None,
              newest: bool = False) -> list[TaskRow]:
        """Write the workflow state and every projection of it; returns the tasks opened by this action.

        `state` is the workflow already serialized, when that was done before the transaction;
        `newest`: the case runs its process's newest version (no need to look for a newer one).

        Projections: the instance summary, task rows (with deadlines and their timers), the
        BPMN timer row, message subscriptions, notification emails and audit events.
        """
        store = TimerStore(session)
        now = self.now()
        was_running = inst.status == InstanceStatus.RUNNING.value
        previous_timer = inst.next_timer_at
        inst.state = state if state is not None else serialization.dumps(wf, parsed.dialect)
        inst.serializer_version = serialization.SERIALIZER_VERSION
        inst.updated_at = now
        projections.summarise(inst, wf, parsed, now)
        waits, had_waits = projections.waiting_messages(wf), inst.message_waits > 0
        inst.message_waits = len(waits)
        if inst.id is None:
            store.insert_instance(inst)
            open_rows = []
        else:
            if open_rows is None:
                open_rows = store.open_tasks(inst.id)
            store.update_instance(inst, *self._SAVED)
        session.info.setdefault(_WRITTEN, []).append((inst.id, inst.version, wf))
        created = projections.sync_tasks(store, inst, wf, parsed, now, open_rows, self.calendar, self.tz,
                                         newest=newest)
        if rearm or inst.next_timer_at != previous_timer:
            store.arm_bpmn(inst.id, inst.next_timer_at, now)
        closed = [r.id for r in open_rows if r.state != TaskState.OPEN.value and r.due_at is not None]
        if closed:
            store.cancel_for_tasks(closed)
        projections.sync_subscriptions(store, inst.id, waits, had_waits)
        for row in created:
            record(session, Action.TASK_CREATED, now, instance_id=inst.id, task_id=row.id,
                   task=row.task_name, org=row.org_code, role=row.role, due_at=row.due_at)
            if row.spiff_task_id not in quiet:
                self.notifier.task_opened(store, row, inst, parsed.title, now)
        if was_running and inst.status == InstanceStatus.COMPLETED.value:
            record(session, Action.INSTANCE_COMPLETED, now, instance_id=inst.id, actor_id=actor_id)
            notify = parsed.descriptor.get("notify_on_completion") or {}
            outcome = wf.data.get(notify["outcome_field"]) if notify.get("outcome_field") else None
            self.notifier.decision(store, inst, parsed.title, str(outcome or "completed"), now, notify or None)
        self._route_thrown_messages(session, wf, actor_id, depth)
        return created

    # -------------------------------------------------------------- definitions
    def deploy_path(self, path: str | Path, actor_id: int | None = None) -> DeployResult:
        return self.deploy_bundle(Bundle.from_path(path, self.settings.max_upload_bytes), actor_id)

    def deploy_bundle(self, bundle: Bundle, actor_id: int | None = None) -> DeployResult:
        with self._action() as session:
            result = deploy(session, bundle, now=self.now(), actor_id=actor_id,
                            max_bytes=self.settings.max_upload_bytes)
            if result.created:
                record(session, Action.DEFINITION_DEPLOYED, self.now(), actor_id=actor_id,
                       process_key=result.process_key, version=result.version)
                self._schedule_periodic_start(session, result)
            return result

    def _schedule_periodic_start(self, session: Session, result: DeployResult) -> None:
        start_timer = self._parsed(session, result.definition_id).start_timer
        if start_timer is None:
            return
        now = self.now()
        due, cycles, period = periodic.first_run(
            start_timer, lambda expr: self.script_engine.environment.evaluate(expr, {}), now)
        TimerStore(session).arm_start(result.process_key, result.definition_id, due,
                                      {"cycles": cycles, "period": period}, now)

    def latest_definition(self, session: Session, process_key: str, version: int | None = None) -> DefinitionRef:
        """The version a new case of `process_key` runs (the newest, unless one is asked for)."""
        store = Store(session)
        sql = "SELECT id, process_key, version, title_vi FROM definitions WHERE process_key = :key"
        found = (store.rows(sql + " AND version = :version", key=process_key, version=version) if version
                 else store.rows(sql + " ORDER BY version DESC LIMIT 1", key=process_key))
        if not found:
            raise NotFound(f"Không có quy trình '{process_key}'.", f"No process '{process_key}'.",
                           {"process": process_key})
        return DefinitionRef(**found[0])

    # ---------------------------------------------------------------- instances
    def start_instance(self, actor_id: int | None, process_key: str, data: dict | None = None, *,
                       owner_org: str | None = None, version: int | None = None) -> int:
        """Start a new case of `process_key`; returns the instance id."""
        data = dict(data or {})
        serialization.check_submitted_data(data)
        with self._action() as session:
            definition = self.latest_definition(session, process_key, version)
            parsed = self._parsed(session, definition.id)
            start_form = parsed.descriptor.get("start", {}).get("form")
            if start_form:
                forms.validate(parsed.forms.get(start_form), data)
            inst, wf = self._start(session, actor_id, definition, data, owner_org)
            # Without a version asked for, the newest: its own title template is the one lists use.
            self._save(session, inst, wf, parsed, inst.initiator_id, newest=version is None)
            return inst.id

    def _start(self, session: Session, actor_id: int | None, definition: DefinitionRef | Definition, data: dict,
               owner_org: str | None) -> tuple[InstanceRow, BpmnWorkflow]:
        """Create the instance and run it to its first wait state; the caller saves it (one INSERT)."""
        starter = self._starter(session, actor_id)
        parsed = self._parsed(session, definition.id)
        owner_org = self._owner_org(session, starter, owner_org, parsed)
        now = self.now()
        wf = BpmnWorkflow(parsed.spec, parsed.subprocess_specs, script_engine=self.script_engine)
        wf.definition_id = definition.id
        start = wf.get_tasks(state=SpiffState.READY)
        (start[0] if start else wf.task_tree).data.update(data)
        inst = InstanceRow(
            id=None, definition_id=definition.id, process_key=definition.process_key,
            title=projections.render_title(parsed.descriptor.get("title_template", ""), data) or definition.title_vi,
            status=InstanceStatus.RUNNING.value, owner_org=owner_org, initiator_id=actor_id, state="",
            serializer_version=serialization.SERIALIZER_VERSION, business={}, next_timer_at=None, message_waits=0,
            error=None, created_at=now, updated_at=now, completed_at=None,
        )
        self._run_engine(wf, inst)
        record(session, Action.INSTANCE_STARTED, now, instance_id=inst, actor_id=actor_id,
               process_key=definition.process_key, version=definition.version)
        return inst, wf

    def _starter(self, session: Session, actor_id: int | None) -> tuple[bool, list[tuple[str, str]]] | None:
        """(is_admin, [(org, role)]) of an active starter, in one statement; None for the system."""
        if actor_id is None:
            return None
        rows = Store(session).rows(
            "SELECT users.active, users.is_admin, positions.org_code, positions.role FROM users "
            "LEFT JOIN positions ON positions.user_id = users.id WHERE users.id = :id ORDER BY positions.id",
            id=actor_id)
        if not rows or not rows[0]["active"]:
            raise Forbidden("Tài khoản không hợp lệ hoặc đã bị khóa.", "Unknown or disabled account.")
        return bool(rows[0]["is_admin"]), [(r["org_code"], r["role"]) for r in rows if r["org_code"] is not None]

    def _owner_org(self, session: Session, starter, owner_org: str | None, parsed: ParsedDefinition) -> str | None:
        """The owning organisation: as asked (if the starter belongs to it), else the starter's first fitting one."""
        is_admin, positions = starter if starter is not None else (True, [])
        if owner_org:
            code = assignment.active_org_code(Store(session), owner_org)
            if code is None:
                raise InvalidInput(f"Không có đơn vị '{owner_org}'.", f"Unknown organisation '{owner_org}'.",
                                   {"owner_org": owner_org})
            if starter is not None and not is_admin and all(org != code for org, _ in positions):
                raise Forbidden("Bạn không thuộc đơn vị này.", "You are not a member of that organisation.")
            return code
        if starter is None:
            return None
        rule = parsed.descriptor.get("start") or {}
        fitting = [(org, role) for org, role in positions
                   if (not rule.get("roles") or role in rule["roles"])
                   and (not rule.get("orgs") or org in rule["orgs"])]
        if rule and not fitting and not is_admin:
            raise Forbidden("Bạn không có quyền khởi tạo hồ sơ của quy trình này.",
                            "You may not start this process.")
        chosen = fitting or positions
        return chosen[0][0] if chosen else None

    # ------------------------------------------------------- administration
    def _admin_action(self, actor_id: int | None, instance_id: int, action: Action,
                      allowed_from: set[str], new_status: InstanceStatus, reason: str = "") -> None:
        with self._action() as session:
            if actor_id is not None and not self._user(session, actor_id).is_admin:
                raise Forbidden("Chỉ quản trị hệ thống được thực hiện thao tác này.",
                                "Only an administrator may do this.")
            store = Store(session)
            inst = self._lock_instance(store, instance_id)
            if inst.status not in allowed_from:
                raise Conflict(f"Hồ sơ đang ở trạng thái '{inst.status}', không thể thực hiện.",
                               f"The case is '{inst.status}'; this is not possible now.")
            now = self.now()
            if new_status == InstanceStatus.CANCELLED:
                wf, parsed = self._load(session, inst)
                wf.cancel()
                inst.state = serialization.dumps(wf, parsed.dialect)
                for row in store.open_tasks(inst.id):
                    row.set(state=TaskState.CANCELLED.value, completed_at=now)
                    store.save_task(row)
                inst.next_timer_at = None
                inst.completed_at = now
                inst.message_waits = 0
                store.replace_subscriptions(inst.id, set())
                TimerStore(session).cancel_for_instance(inst.id)
            inst.status = new_status.value
            inst.updated_at = now
            store.update_instance(inst, "state", "status", "updated_at", "next_timer_at", "completed_at",
                                  "message_waits")
            record(session, action, now, instance_id=inst.id, actor_id=actor_id, reason=reason[:MAX_REASON])

    def cancel(self, actor_id: int | None, instance_id: int, reason: str = "") -> None:
        self._admin_action(actor_id, instance_id, Action.INSTANCE_CANCELLED,
                           {InstanceStatus.RUNNING.value, InstanceStatus.SUSPENDED.value, InstanceStatus.ERROR.value},
                           InstanceStatus.CANCELLED, reason)

    def suspend(self, actor_id: int | None, instance_id: int, reason: str = "") -> None:
        self._admin_action(actor_id, instance_id, Action.INSTANCE_SUSPENDED, {InstanceStatus.RUNNING.value},
                           InstanceStatus.SUSPENDED, reason)

    def resume(self, actor_id: int | None, instance_id: int) -> None:
        self._admin_action(actor_id, instance_id, Action.INSTANCE_RESUMED,
                           {InstanceStatus.SUSPENDED.value, InstanceStatus.ERROR.value}, InstanceStatus.RUNNING)

    # ---------------------------------------------------------------- messages
    def deliver_message(self, actor_id: int | None, name: str, correlations: dict | None = None,
                        payload: dict | None = None) -> list[int]:
        """Deliver a BPMN message to the instances waiting for it; start one if a start event catches it."""
        payload = payload if payload is not None else {}
        serialization.check_submitted_data(payload)
        with self._action() as session:
            return self._deliver(session, actor_id, name, correlations or {}, payload, depth=0)

    def send_signal(self, actor_id: int | None, name: str, payload: dict | None = None,
                    instance_id: int | None = None) -> list[int]:
        """Broadcast a BPMN signal to every case waiting for it (and start the processes whose start
        event catches it), or send it to one case. Administrators and the system only: a signal
        reaches cases of any unit. Returns the ids of the cases that caught it or were started."""
        from engine import messages

        name = (name or "").strip()
        if not name or len(name) > 255:
            raise InvalidInput("Tên tín hiệu phải có từ 1 đến 255 ký tự.", "A signal name has 1 to 255 characters.",
                               {"name": name[:255]})
        payload = dict(payload or {})
        serialization.check_submitted_data(payload)
        with self._action() as session:
            if actor_id is not None and not self._user(session, actor_id).is_admin:
                raise Forbidden("Chỉ quản trị hệ thống được gửi tín hiệu.", "Only an administrator may send signals.")
            return messages.signal(self, session, actor_id, name, payload, 0, instance_id)

    def _deliver(self, session: Session, actor_id: int | None, name: str, correlations: dict, payload,
                 depth: int) -> list[int]:
        from engine.messages import deliver

        return deliver(self, session, actor_id, name, correlations, payload, depth)

    def _route_thrown_messages(self, session: Session, wf: BpmnWorkflow, actor_id: int | None, depth: int) -> None:
        events = wf.get_events()
        if not events or depth >= 5:
            return
        from engine import messages

        for event in events:
            definition = event.event_definition
            if type(definition).__name__ == "SignalEventDefinition":  # a broadcast to every other waiting case
                messages.signal(self, session, actor_id, definition.name, event.payload, depth + 1)
                continue
            if type(definition).__name__ != "MessageEventDefinition":
                continue
            flat = projections.flatten_correlations(event.correlations)
            self._deliver(session, actor_id, definition.name, flat, event.payload, depth + 1)

    # ------------------------------------------------------------------ timers
    def process_title(self, session: Session, definition_id: int) -> str:
        return self._parsed(session, definition_id).title

    def fire_due_timers(self, limit: int = 10_000, budget_seconds: float | None = None) -> int:
        """Fire every due timer (BPMN timers, reminders, escalations); one transaction each."""
        return timers.fire_due(self, limit=limit, budget_seconds=budget_seconds)

    # ----------------------------------------------------------------- reading
    def open_task_ids(self, instance_id: int) -> list[str]:
        """The ids of a case's open tasks, oldest first: one indexed read, no ORM session."""
        with self.db.engine.connect() as conn:
            return Store.on(conn).open_task_ids(instance_id)

    def may_view_instance(self, session: Session, user_id: int, inst: Instance | InstanceRow) -> bool:
        user = session.get(User, user_id)
        if user is None:
            return False
        if user.is_admin or inst.initiator_id == user_id:
            return True
        orgs = {p.org_code for p in user.positions}
        if inst.owner_org in orgs:
            return True
        return session.scalar(
            select(HumanTask.id).where(
                HumanTask.instance_id == inst.id,
                (HumanTask.org_code.in_(orgs)) | (HumanTask.assignee_id == user_id)
                | (HumanTask.completed_by == user_id) | (HumanTask.candidate_user_id == user_id),
            ).limit(1)
        ) is not None
