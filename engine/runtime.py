"""The runtime: every user action or timer firing is one transaction over instance, projections and audit."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, load_only
from sqlalchemy.orm.exc import StaleDataError

from engine import assignment, forms, projections, serialization
from engine import clock as clockmod
from engine.audit import Action, record
from engine.config import Settings
from engine.db import Database
from engine.definitions import Bundle, DefinitionCache, DeployResult, ParsedDefinition, deploy
from engine.errors import Conflict, EngineError, Forbidden, InvalidInput, NotFound
from engine.models import (
    Comment,
    Definition,
    HumanTask,
    Instance,
    InstanceStatus,
    MessageSubscription,
    Organisation,
    Position,
    TaskState,
    User,
)
from engine.sandbox import make_script_engine

log = logging.getLogger(__name__)
MAX_REASON = 2000


class Engine:
    """The domain entry point used by the CLI, the web UI, the API and the scheduler."""

    def __init__(self, db: Database, settings: Settings, clock: clockmod.Clock | None = None):
        self.db = db
        self.settings = settings
        self.clock = clock or clockmod.SYSTEM_CLOCK
        self.definitions = DefinitionCache(settings.max_upload_bytes)
        self.script_engine = make_script_engine(cpu_seconds=settings.script_cpu_seconds)
        self.tz = ZoneInfo(settings.timezone)

    # ------------------------------------------------------------------ helpers
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

    def _check_active(self, session: Session, user_id: int | None) -> None:
        """The cheap form of `_user` for the hot path: one indexed lookup, no ORM object."""
        active = session.scalar(select(User.active).where(User.id == user_id)) if user_id is not None else None
        if not active:
            raise Forbidden("Tài khoản không hợp lệ hoặc đã bị khóa.", "Unknown or disabled account.")

    def _parsed(self, session: Session, definition_id: int) -> ParsedDefinition:
        return self.definitions.get(session, definition_id)

    def _load(self, session: Session, inst: Instance) -> tuple[BpmnWorkflow, ParsedDefinition]:
        parsed = self._parsed(session, inst.definition_id)
        wf = serialization.loads(inst.state, parsed.dialect, inst.definition_id, parsed.spec_pair)
        wf.script_engine = self.script_engine
        return wf, parsed

    def _lock_instance(self, session: Session, instance_id: int) -> Instance:
        inst = session.scalar(select(Instance).where(Instance.id == instance_id).with_for_update())
        if inst is None:
            raise NotFound("Không tìm thấy hồ sơ.", "Case not found.", {"instance": instance_id})
        return inst

    @staticmethod
    def _run_engine(wf: BpmnWorkflow, inst: Instance) -> None:
        try:
            wf.do_engine_steps()
        except (SpiffWorkflowException, EngineError) as exc:
            raise InvalidInput(
                f"Quy trình không thể tiếp tục: {exc}",
                f"The process cannot continue: {exc}",
                {"instance": inst.id, "reason": str(exc)},
            ) from None

    def _save(self, session: Session, inst: Instance, wf: BpmnWorkflow, parsed: ParsedDefinition,
              actor_id: int | None = None, depth: int = 0, open_rows: list[HumanTask] | None = None
              ) -> list[HumanTask]:
        now = self.now()
        was_running = inst.status == InstanceStatus.RUNNING.value
        inst.state = serialization.dumps(wf, parsed.dialect)
        inst.serializer_version = serialization.SERIALIZER_VERSION
        inst.updated_at = now
        if inst.id is None:
            session.flush()  # one INSERT carrying the first state; task rows need the id
        created = projections.sync(session, inst, wf, parsed, now, open_rows)
        for row in created:
            record(session, Action.TASK_CREATED, now, instance_id=inst.id, task_id=row.id,
                   task=row.task_name, org=row.org_code, role=row.role)
        if was_running and inst.status == InstanceStatus.COMPLETED.value:
            record(session, Action.INSTANCE_COMPLETED, now, instance_id=inst.id, actor_id=actor_id)
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
            return result

    def latest_definition(self, session: Session, process_key: str, version: int | None = None) -> Definition:
        query = select(Definition).options(
            load_only(Definition.id, Definition.process_key, Definition.version, Definition.title_vi)
        ).where(Definition.process_key == process_key)
        query = query.where(Definition.version == version) if version else query.order_by(Definition.version.desc())
        definition = session.scalars(query.limit(1)).first()
        if definition is None:
            raise NotFound(f"Không có quy trình '{process_key}'.", f"No process '{process_key}'.",
                           {"process": process_key})
        return definition

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
            self._save(session, inst, wf, parsed, inst.initiator_id)
            return inst.id

    def _start(self, session: Session, actor_id: int | None, definition: Definition, data: dict,
               owner_org: str | None) -> tuple[Instance, BpmnWorkflow]:
        """Create the instance and run it to its first wait state; the caller saves it (one INSERT)."""
        starter = self._starter(session, actor_id)
        parsed = self._parsed(session, definition.id)
        owner_org = self._owner_org(session, starter, owner_org, parsed)
        now = self.now()
        wf = BpmnWorkflow(parsed.spec, parsed.subprocess_specs, script_engine=self.script_engine)
        wf.definition_id = definition.id
        start = wf.get_tasks(state=SpiffState.READY)
        (start[0] if start else wf.task_tree).data.update(data)
        inst = Instance(
            definition_id=definition.id, process_key=definition.process_key, status=InstanceStatus.RUNNING.value,
            owner_org=owner_org, initiator_id=actor_id, message_waits=0,
            serializer_version=serialization.SERIALIZER_VERSION, created_at=now, updated_at=now,
            title=projections.render_title(parsed.descriptor.get("title_template", ""), data) or definition.title_vi,
        )
        self._run_engine(wf, inst)
        session.add(inst)
        record(session, Action.INSTANCE_STARTED, now, instance_id=inst, actor_id=actor_id,
               process_key=definition.process_key, version=definition.version)
        return inst, wf

    def _starter(self, session: Session, actor_id: int | None) -> tuple[bool, list[tuple[str, str]]] | None:
        """(is_admin, [(org, role)]) of an active starter, in one statement; None for the system."""
        if actor_id is None:
            return None
        rows = session.execute(
            select(User.active, User.is_admin, Position.org_code, Position.role)
            .outerjoin(Position, Position.user_id == User.id).where(User.id == actor_id).order_by(Position.id)
        ).all()
        if not rows or not rows[0].active:
            raise Forbidden("Tài khoản không hợp lệ hoặc đã bị khóa.", "Unknown or disabled account.")
        return rows[0].is_admin, [(r.org_code, r.role) for r in rows if r.org_code is not None]

    def _owner_org(self, session: Session, starter, owner_org: str | None, parsed: ParsedDefinition) -> str | None:
        """The owning organisation: as asked (if the starter belongs to it), else the starter's first fitting one."""
        is_admin, positions = starter if starter is not None else (True, [])
        if owner_org:
            code = assignment.active_org_code(session, owner_org)
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
                   if (not rule.get("roles") or role in rule["roles"]) and (not rule.get("orgs") or org in rule["orgs"])]
        if rule and not fitting and not is_admin:
            raise Forbidden("Bạn không có quyền khởi tạo hồ sơ của quy trình này.",
                            "You may not start this process.")
        chosen = fitting or positions
        return chosen[0][0] if chosen else None

    # -------------------------------------------------------------------- tasks
    def _open_task(self, session: Session, task_id: str) -> tuple[HumanTask, Instance, list[HumanTask]]:
        """Lock the task's instance and read the task with every open task of that instance.

        On PostgreSQL the instance row is locked first and the tasks are read by a second
        statement, so a writer that waited for the lock sees the winner's committed rows.
        On SQLite the write transaction already holds the database lock (BEGIN IMMEDIATE).
        """
        task_id = str(task_id)
        instance_of_task = select(HumanTask.instance_id).where(HumanTask.id == task_id).scalar_subquery()
        query = select(Instance).where(Instance.id == instance_of_task)
        inst = session.scalar(query if self.db.is_sqlite else query.with_for_update())
        if inst is None:
            raise NotFound("Không tìm thấy công việc.", "Task not found.", {"task": task_id})
        rows = list(session.scalars(select(HumanTask).where(
            HumanTask.instance_id == inst.id, (HumanTask.state == TaskState.OPEN.value) | (HumanTask.id == task_id)
        )))
        task = next(r for r in rows if r.id == task_id)
        if task.state != TaskState.OPEN.value:
            raise Conflict("Công việc này đã được xử lý, không còn mở.", "This task is no longer open.",
                           {"task": task_id, "state": task.state})
        if inst.status == InstanceStatus.SUSPENDED.value:
            raise Conflict("Hồ sơ đang tạm dừng.", "The case is suspended.", {"instance": inst.id})
        if inst.status != InstanceStatus.RUNNING.value:
            raise Conflict("Hồ sơ đã kết thúc.", "The case has ended.", {"instance": inst.id})
        return task, inst, [r for r in rows if r.state == TaskState.OPEN.value]

    def _check_actor(self, session: Session, actor_id: int, task: HumanTask) -> int | None:
        allowed, acting_for = assignment.may_act(session, actor_id, task, self.today())
        if not allowed:
            raise Forbidden("Bạn không được giao xử lý công việc này.", "You are not assigned to this task.",
                            {"task": task.id})
        return acting_for

    @staticmethod
    def _check_version(inst: Instance, expected_version: int | None) -> None:
        if expected_version is not None and inst.version != expected_version:
            raise Conflict("Người khác vừa xử lý hồ sơ này. Vui lòng tải lại trang.",
                           "Someone else has just changed this case. Please reload.",
                           {"expected_version": expected_version, "version": inst.version})

    @staticmethod
    def _spiff_task(wf: BpmnWorkflow, task: HumanTask):
        spiff = wf.get_task_from_id(UUID(task.spiff_task_id))
        if spiff is None or spiff.state != SpiffState.READY:
            raise Conflict("Bước này không còn ở trạng thái sẵn sàng.", "This step is not ready.",
                           {"task": task.id})
        return spiff

    def complete_task(self, actor_id: int, task_id: str, data: dict | None = None,
                      expected_version: int | None = None) -> list[str]:
        """Validate the form, run the step and everything after it; returns the ids of the next tasks."""
        data = dict(data or {})
        serialization.check_submitted_data(data)
        with self._action() as session:
            task, inst, open_rows = self._open_task(session, task_id)
            acting_for = self._check_actor(session, actor_id, task)
            self._check_version(inst, expected_version)
            wf, parsed = self._load(session, inst)
            schema = parsed.forms.get(task.form_key) if task.form_key else None
            forms.validate(schema, data)
            spiff = self._spiff_task(wf, task)
            if hasattr(spiff.task_spec, "add_data_from_form"):
                spiff.task_spec.add_data_from_form(spiff, data)
            else:
                spiff.set_data(**data)
            try:
                spiff.run()
            except (SpiffWorkflowException, EngineError) as exc:
                raise InvalidInput(f"Không thể hoàn thành bước: {exc}", f"Cannot complete the step: {exc}",
                                   {"reason": str(exc)}) from None
            self._run_engine(wf, inst)
            now = self.now()
            task.state = TaskState.COMPLETED.value
            task.completed_at = now
            task.completed_by = actor_id
            task.acting_for = acting_for
            if task.assignee_id is None:
                task.assignee_id = acting_for or actor_id
            record(session, Action.TASK_COMPLETED, now, instance_id=inst.id, task_id=task.id,
                   actor_id=actor_id, acting_for_id=acting_for, task=task.task_name,
                   fields=sorted(data)[:50])
            created = self._save(session, inst, wf, parsed, actor_id, open_rows=open_rows)
            return [row.id for row in created]

    def claim(self, actor_id: int, task_id: str) -> None:
        with self._action() as session:
            self._check_active(session, actor_id)
            task, inst, open_rows = self._open_task(session, task_id)
            if task.assignee_id == actor_id:
                return
            if task.assignee_id is not None:
                raise Conflict("Công việc đã được người khác nhận xử lý.", "Someone else has claimed this task.",
                               {"assignee": task.assignee_id})
            acting_for = self._check_actor(session, actor_id, task)
            task.assignee_id = actor_id
            inst.updated_at = self.now()
            record(session, Action.TASK_CLAIMED, self.now(), instance_id=inst.id, task_id=task.id,
                   actor_id=actor_id, acting_for_id=acting_for)

    def unclaim(self, actor_id: int, task_id: str) -> None:
        with self._action() as session:
            self._check_active(session, actor_id)
            task, inst, open_rows = self._open_task(session, task_id)
            if task.assignee_id is None:
                return
            if task.assignee_id != actor_id and not assignment.is_supervisor(session, actor_id, task.org_code):
                raise Forbidden("Chỉ người đang xử lý hoặc lãnh đạo đơn vị mới trả công việc về đơn vị.",
                                "Only the assignee or a supervisor may release this task.")
            task.assignee_id = None
            inst.updated_at = self.now()
            record(session, Action.TASK_UNCLAIMED, self.now(), instance_id=inst.id, task_id=task.id,
                   actor_id=actor_id)

    def reassign(self, actor_id: int, task_id: str, to_user_id: int, note: str = "") -> None:
        """A supervisor moves a task to another member of the same organisation (chuyển xử lý)."""
        with self._action() as session:
            actor = self._user(session, actor_id)
            task, inst, open_rows = self._open_task(session, task_id)
            if not (actor.is_admin or assignment.is_supervisor(session, actor_id, task.org_code)):
                raise Forbidden("Chỉ lãnh đạo đơn vị mới được chuyển xử lý.", "Only a supervisor may reassign.")
            target = self._user(session, to_user_id)
            if task.org_code is None or not session.scalar(
                select(Position.id).where(Position.user_id == target.id, Position.org_code == task.org_code)
            ):
                raise InvalidInput("Người nhận phải thuộc cùng đơn vị.", "The new assignee must be in the same organisation.",
                                   {"to_user": to_user_id})
            previous = task.assignee_id
            task.assignee_id = target.id
            inst.updated_at = self.now()
            record(session, Action.TASK_REASSIGNED, self.now(), instance_id=inst.id, task_id=task.id,
                   actor_id=actor_id, from_user=previous, to_user=target.id, note=note[:MAX_REASON])

    def return_task(self, actor_id: int, task_id: str, reason: str, expected_version: int | None = None) -> str:
        """Send the work back to the previous human step with a mandatory reason (trả lại)."""
        reason = (reason or "").strip()
        if not reason:
            raise InvalidInput("Vui lòng nhập lý do trả lại.", "A reason for returning is required.",
                               {"reason": "Trường này là bắt buộc. / This field is required."})
        if len(reason) > MAX_REASON:
            raise InvalidInput(f"Lý do tối đa {MAX_REASON} ký tự.", f"Reason is limited to {MAX_REASON} characters.",
                               {"reason": "too long"})
        with self._action() as session:
            task, inst, open_rows = self._open_task(session, task_id)
            acting_for = self._check_actor(session, actor_id, task)
            self._check_version(inst, expected_version)
            wf, parsed = self._load(session, inst)
            spiff = self._spiff_task(wf, task)
            previous = self._previous_human_step(spiff, parsed)
            if previous is None:
                raise Conflict("Không có bước trước để trả lại.", "There is no previous step to return to.")
            prev_row = session.scalars(
                select(HumanTask).where(HumanTask.instance_id == inst.id,
                                        HumanTask.spiff_task_id == str(previous.id),
                                        HumanTask.state == TaskState.COMPLETED.value)
                .order_by(HumanTask.completed_at.desc()).limit(1)
            ).first()
            wf.reset_from_task_id(previous.id)
            self._run_engine(wf, inst)
            now = self.now()
            task.state = TaskState.RETURNED.value
            task.completed_at = now
            task.completed_by = actor_id
            task.acting_for = acting_for
            task.return_reason = reason
            created = self._save(session, inst, wf, parsed, actor_id, open_rows=open_rows)
            reopened = next((r for r in created if r.spiff_task_id == str(previous.id)), None)
            if reopened is None:
                raise Conflict("Không mở lại được bước trước.", "Could not reopen the previous step.")
            reopened.return_reason = reason
            if prev_row is not None:
                reopened.assignee_id = prev_row.acting_for or prev_row.completed_by
            record(session, Action.TASK_RETURNED, now, instance_id=inst.id, task_id=task.id, actor_id=actor_id,
                   acting_for_id=acting_for, reason=reason, to_task=reopened.id, to_step=reopened.task_name)
            return reopened.id

    @staticmethod
    def _previous_human_step(spiff, parsed: ParsedDefinition):
        node = spiff.parent
        while node is not None:
            if node.task_spec.name in parsed.human_tasks and node.state == SpiffState.COMPLETED:
                return node
            node = node.parent
            if node is None and spiff.workflow.parent_task_id is not None:
                break
        return None

    def add_comment(self, actor_id: int, instance_id: int, body: str, task_id: str | None = None) -> int:
        body = (body or "").strip()
        if not body:
            raise InvalidInput("Ý kiến không được để trống.", "A comment cannot be empty.", {"body": "required"})
        if len(body) > 10000:
            raise InvalidInput("Ý kiến quá dài (tối đa 10.000 ký tự).", "Comment too long (10,000 max).",
                               {"body": "too long"})
        with self._action() as session:
            self._user(session, actor_id)
            inst = session.get(Instance, instance_id)
            if inst is None:
                raise NotFound("Không tìm thấy hồ sơ.", "Case not found.")
            if not self.may_view_instance(session, actor_id, inst):
                raise Forbidden("Bạn không có quyền xem hồ sơ này.", "You may not view this case.")
            comment = Comment(instance_id=inst.id, task_id=task_id, author_id=actor_id, body=body,
                              created_at=self.now())
            session.add(comment)
            session.flush()
            record(session, Action.COMMENT_ADDED, self.now(), instance_id=inst.id, task_id=task_id,
                   actor_id=actor_id, comment_id=comment.id)
            return comment.id

    # ------------------------------------------------------- administration
    def _admin_action(self, actor_id: int | None, instance_id: int, action: Action,
                      allowed_from: set[str], new_status: InstanceStatus, reason: str = "") -> None:
        with self._action() as session:
            if actor_id is not None and not self._user(session, actor_id).is_admin:
                raise Forbidden("Chỉ quản trị hệ thống được thực hiện thao tác này.",
                                "Only an administrator may do this.")
            inst = self._lock_instance(session, instance_id)
            if inst.status not in allowed_from:
                raise Conflict(f"Hồ sơ đang ở trạng thái '{inst.status}', không thể thực hiện.",
                               f"The case is '{inst.status}'; this is not possible now.")
            now = self.now()
            if new_status == InstanceStatus.CANCELLED:
                wf, parsed = self._load(session, inst)
                wf.cancel()
                inst.state = serialization.dumps(wf, parsed.dialect)
                for row in session.scalars(select(HumanTask).where(HumanTask.instance_id == inst.id,
                                                                   HumanTask.state == TaskState.OPEN.value)):
                    row.state = TaskState.CANCELLED.value
                    row.completed_at = now
                inst.next_timer_at = None
                inst.completed_at = now
                inst.message_waits = 0
                session.execute(delete(MessageSubscription).where(MessageSubscription.instance_id == inst.id))
            inst.status = new_status.value
            inst.updated_at = now
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

    def _deliver(self, session: Session, actor_id: int | None, name: str, correlations: dict, payload,
                 depth: int) -> list[int]:
        from engine.messages import deliver

        return deliver(self, session, actor_id, name, correlations, payload, depth)

    def _route_thrown_messages(self, session: Session, wf: BpmnWorkflow, actor_id: int | None, depth: int) -> None:
        events = wf.get_events()
        if not events or depth >= 5:
            return
        for event in events:
            definition = event.event_definition
            if type(definition).__name__ != "MessageEventDefinition":
                continue
            flat = projections.flatten_correlations(event.correlations)
            self._deliver(session, actor_id, definition.name, flat, event.payload, depth + 1)

    # ------------------------------------------------------------------ timers
    def fire_due_timers(self, limit: int = 100) -> int:
        """Tick every running instance whose next timer is due; one transaction each."""
        now = self.now()
        with self.db.read() as session:
            ids = list(session.scalars(
                select(Instance.id).where(Instance.next_timer_at <= now,
                                          Instance.status == InstanceStatus.RUNNING.value)
                .order_by(Instance.next_timer_at).limit(limit)
            ))
        fired = 0
        for instance_id in ids:
            try:
                with self._action() as session:
                    query = select(Instance).where(Instance.id == instance_id, Instance.next_timer_at <= now,
                                                   Instance.status == InstanceStatus.RUNNING.value)
                    if not self.db.is_sqlite:
                        query = query.with_for_update(skip_locked=True)
                    inst = session.scalar(query)
                    if inst is None:
                        continue
                    wf, parsed = self._load(session, inst)
                    wf.refresh_timers()
                    self._run_engine(wf, inst)
                    record(session, Action.TIMER_FIRED, now, instance_id=inst.id)
                    self._save(session, inst, wf, parsed)
                    fired += 1
            except Conflict:
                continue
            except EngineError as exc:
                log.warning("timer of instance %s failed: %s", instance_id, exc)
                self._timer_failed(instance_id, str(exc))
        return fired

    def _timer_failed(self, instance_id: int, error: str) -> None:
        with self._action() as session:
            inst = session.get(Instance, instance_id)
            if inst is None:
                return
            inst.error = error[:4000]
            inst.next_timer_at = self.now() + timedelta(minutes=5)
            record(session, Action.INSTANCE_FAILED, self.now(), instance_id=instance_id, error=error[:1000])

    # ----------------------------------------------------------------- reading
    def may_view_instance(self, session: Session, user_id: int, inst: Instance) -> bool:
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

    def organisation_exists(self, session: Session, code: str) -> bool:
        return session.get(Organisation, code) is not None
