"""What people do to tasks: complete, claim, release, reassign, return with a reason, comment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from SpiffWorkflow.util.task import TaskState as SpiffState

from engine import assignment, forms, serialization
from engine.audit import Action, record
from engine.errors import Conflict, Forbidden, InvalidInput, NotFound
from engine.models import Comment, InstanceStatus, TaskState
from engine.store import InstanceRow, Store, TaskRow

if TYPE_CHECKING:
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

    from engine.definitions import ParsedDefinition

MAX_REASON = 2000
MAX_COMMENT = 10_000


@dataclass
class _Step:
    """An open task about to be acted on, its case locked and its workflow loaded."""

    store: Store
    task: TaskRow
    inst: InstanceRow
    open_rows: list[TaskRow]
    acting_for: int | None
    wf: BpmnWorkflow
    parsed: ParsedDefinition


class TaskActions:
    """Mixed into `Engine`; every public method is one transaction."""

    def _step(self, session, actor_id: int, task_id: str, expected_version: int | None = None) -> _Step:
        """Lock the task's case, check the task is open and the actor may act on it, load the workflow."""
        store = Store(session)
        task, inst, open_rows = self._open_task(store, task_id)
        acting_for = self._check_actor(store, actor_id, task)
        self._check_version(inst, expected_version)
        wf, parsed = self._load(session, inst)
        return _Step(store, task, inst, open_rows, acting_for, wf, parsed)

    def _open_task(self, store: Store, task_id: str) -> tuple[TaskRow, InstanceRow, list[TaskRow]]:
        """Lock the task's instance, then read the task with the instance's other open tasks.

        The tasks are read after the lock, so on PostgreSQL a writer that waited sees the
        winner's committed rows; on SQLite the write transaction holds the database lock.
        """
        task_id = str(task_id)
        inst = store.instance_of_task(task_id, lock=True)
        if inst is None:
            raise NotFound("Không tìm thấy công việc.", "Task not found.", {"task": task_id})
        rows = store.tasks_for_action(inst.id, task_id)
        task = next(r for r in rows if r.id == task_id)
        if task.state != TaskState.OPEN.value:
            raise Conflict("Công việc này đã được xử lý, không còn mở.", "This task is no longer open.",
                           {"task": task_id, "state": task.state})
        if inst.status == InstanceStatus.SUSPENDED.value:
            raise Conflict("Hồ sơ đang tạm dừng.", "The case is suspended.", {"instance": inst.id})
        if inst.status != InstanceStatus.RUNNING.value:
            raise Conflict("Hồ sơ đã kết thúc.", "The case has ended.", {"instance": inst.id})
        return task, inst, [r for r in rows if r.state == TaskState.OPEN.value]

    def _check_actor(self, store: Store, actor_id: int, task: TaskRow) -> int | None:
        allowed, acting_for = assignment.may_act(store, actor_id, task, self.today())
        if not allowed:
            raise Forbidden("Bạn không được giao xử lý công việc này.", "You are not assigned to this task.",
                            {"task": task.id})
        return acting_for

    @staticmethod
    def _check_version(inst: InstanceRow, expected_version: int | None) -> None:
        if expected_version is not None and inst.version != expected_version:
            raise Conflict("Người khác vừa xử lý hồ sơ này. Vui lòng tải lại trang.",
                           "Someone else has just changed this case. Please reload.",
                           {"expected_version": expected_version, "version": inst.version})

    @staticmethod
    def _spiff_task(wf: BpmnWorkflow, task: TaskRow):
        spiff = wf.get_task_from_id(UUID(task.spiff_task_id))
        if spiff is None or spiff.state != SpiffState.READY:
            raise Conflict("Bước này không còn ở trạng thái sẵn sàng.", "This step is not ready.", {"task": task.id})
        return spiff

    def complete_task(self, actor_id: int, task_id: str, data: dict | None = None,
                      expected_version: int | None = None) -> list[str]:
        """Validate the form, run the step and everything after it; returns the ids of the next tasks."""
        data = dict(data or {})
        serialization.check_submitted_data(data)
        with self._action() as session:
            step = self._step(session, actor_id, task_id, expected_version)
            store, task, inst, open_rows, acting_for, wf, parsed = (
                step.store, step.task, step.inst, step.open_rows, step.acting_for, step.wf, step.parsed)
            forms.validate(parsed.forms.get(task.form_key) if task.form_key else None, data)
            spiff = self._spiff_task(wf, task)
            if hasattr(spiff.task_spec, "add_data_from_form"):
                spiff.task_spec.add_data_from_form(spiff, data)
            else:
                spiff.set_data(**data)
            try:
                spiff.run()
            except Exception as exc:  # noqa: BLE001 - e.g. a failing postScript: the action rolls back
                from engine.runtime import model_failure

                raise model_failure(exc, inst.id) from None
            self._run_engine(wf, inst)
            now = self.now()
            task.set(state=TaskState.COMPLETED.value, completed_at=now, completed_by=actor_id, acting_for=acting_for,
                     assignee_id=task.assignee_id or acting_for or actor_id)
            store.save_task(task)
            record(session, Action.TASK_COMPLETED, now, instance_id=inst.id, task_id=task.id, actor_id=actor_id,
                   acting_for_id=acting_for, task=task.task_name, fields=sorted(data)[:50])
            created = self._save(session, inst, wf, parsed, actor_id, open_rows=open_rows)
            return [row.id for row in created]

    def _touch(self, store: Store, inst: InstanceRow) -> None:
        """Claims and reassignments change no workflow state but still take the instance's version."""
        inst.updated_at = self.now()
        store.update_instance(inst, "updated_at")

    def claim(self, actor_id: int, task_id: str) -> None:
        with self._action() as session:
            store = Store(session)
            task, inst, _ = self._open_task(store, task_id)
            if task.assignee_id == actor_id:
                return
            if task.assignee_id is not None:
                raise Conflict("Công việc đã được người khác nhận xử lý.", "Someone else has claimed this task.",
                               {"assignee": task.assignee_id})
            acting_for = self._check_actor(store, actor_id, task)
            task.set(assignee_id=actor_id)
            store.save_task(task)
            self._touch(store, inst)
            record(session, Action.TASK_CLAIMED, self.now(), instance_id=inst.id, task_id=task.id,
                   actor_id=actor_id, acting_for_id=acting_for)

    def unclaim(self, actor_id: int, task_id: str) -> None:
        with self._action() as session:
            store = Store(session)
            self._check_active(store, actor_id)
            task, inst, _ = self._open_task(store, task_id)
            if task.assignee_id is None:
                return
            if task.assignee_id != actor_id and not assignment.is_supervisor(store, actor_id, task.org_code):
                raise Forbidden("Chỉ người đang xử lý hoặc lãnh đạo đơn vị mới trả công việc về đơn vị.",
                                "Only the assignee or a supervisor may release this task.")
            task.set(assignee_id=None)
            store.save_task(task)
            self._touch(store, inst)
            record(session, Action.TASK_UNCLAIMED, self.now(), instance_id=inst.id, task_id=task.id,
                   actor_id=actor_id)

    def reassign(self, actor_id: int, task_id: str, to_user_id: int, note: str = "") -> None:
        """A supervisor moves a task to another member of the same organisation (chuyển xử lý)."""
        with self._action() as session:
            store = Store(session)
            actor = self._user(session, actor_id)
            task, inst, _ = self._open_task(store, task_id)
            if not (actor.is_admin or assignment.is_supervisor(store, actor_id, task.org_code)):
                raise Forbidden("Chỉ lãnh đạo đơn vị mới được chuyển xử lý.", "Only a supervisor may reassign.")
            if task.org_code is None or not store.member(to_user_id, task.org_code):
                raise InvalidInput("Người nhận phải thuộc cùng đơn vị.",
                                   "The new assignee must be an active member of the same organisation.",
                                   {"to_user": to_user_id})
            previous = task.assignee_id
            task.set(assignee_id=to_user_id)
            store.save_task(task)
            self._touch(store, inst)
            record(session, Action.TASK_REASSIGNED, self.now(), instance_id=inst.id, task_id=task.id,
                   actor_id=actor_id, from_user=previous, to_user=to_user_id, note=(note or "")[:MAX_REASON])

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
            step = self._step(session, actor_id, task_id, expected_version)
            store, task, inst, open_rows, acting_for, wf, parsed = (
                step.store, step.task, step.inst, step.open_rows, step.acting_for, step.wf, step.parsed)
            previous = self._previous_human_step(self._spiff_task(wf, task), parsed)
            if previous is None:
                raise Conflict("Không có bước trước để trả lại.", "There is no previous step to return to.")
            submitter = store.last_completer(inst.id, str(previous.id))
            submitted = dict(previous.data)
            wf.reset_from_task_id(previous.id)
            # The reopened step keeps what was submitted, so the form comes back filled in.
            wf.get_task_from_id(previous.id).data.update(submitted)
            self._run_engine(wf, inst)
            now = self.now()
            task.set(state=TaskState.RETURNED.value, completed_at=now, completed_by=actor_id, acting_for=acting_for,
                     return_reason=reason)
            store.save_task(task)
            created = self._save(session, inst, wf, parsed, actor_id, open_rows=open_rows,
                                 quiet=frozenset({str(previous.id)}))
            reopened = next((r for r in created if r.spiff_task_id == str(previous.id)), None)
            if reopened is None:
                raise Conflict("Không mở lại được bước trước.", "Could not reopen the previous step.")
            reopened.set(return_reason=reason, assignee_id=submitter)
            store.save_task(reopened)
            actor_name = store.scalar("SELECT full_name FROM users WHERE id = :id", id=actor_id) or ""
            self.notifier.returned(store, reopened, inst, parsed.title, reason, actor_name, now)
            record(session, Action.TASK_RETURNED, now, instance_id=inst.id, task_id=task.id, actor_id=actor_id,
                   acting_for_id=acting_for, reason=reason, to_task=reopened.id, to_step=reopened.task_name)
            return reopened.id

    def signal_task(self, actor_id: int, task_id: str, name: str, payload: dict | None = None) -> list[str]:
        """Send the signal of one of the task's own signal boundary events (its button, e.g. "Sửa lại").

        Whoever may complete the task may press it; the case catches the signal (interrupting
        the task, or not, as modelled) and runs on. Returns the ids of the tasks it opened."""
        from engine import messages

        payload = dict(payload or {})
        serialization.check_submitted_data(payload)
        with self._action() as session:
            step = self._step(session, actor_id, task_id)
            task, inst, wf, parsed = step.task, step.inst, step.wf, step.parsed
            spiff = self._spiff_task(wf, task)
            if name not in {s["name"] for s in task_signals(spiff)}:
                raise InvalidInput(f"Công việc này không có tín hiệu '{name}'.", f"This task has no signal '{name}'.",
                                   {"name": name})
            wf.send_event(messages.signal_event(wf, parsed.dialect, name, payload))
            self._run_engine(wf, inst)
            now = self.now()
            record(session, Action.SIGNAL_RECEIVED, now, instance_id=inst.id, task_id=task.id, actor_id=actor_id,
                   acting_for_id=step.acting_for, signal=name)
            created = self._save(session, inst, wf, parsed, actor_id, open_rows=step.open_rows)
            return [row.id for row in created]

    @staticmethod
    def _previous_human_step(spiff, parsed: ParsedDefinition):
        """The nearest completed human step above this one, crossing out of called processes."""
        node, workflow = spiff.parent, spiff.workflow
        while True:
            while node is not None:
                if node.task_spec.name in parsed.human_tasks and node.state == SpiffState.COMPLETED:
                    return node
                node = node.parent
            if workflow.parent_task_id is None:
                return None
            caller = workflow.top_workflow.get_task_from_id(workflow.parent_task_id)
            node, workflow = caller.parent, caller.workflow

    def add_comment(self, actor_id: int, instance_id: int, body: str, task_id: str | None = None) -> int:
        body = (body or "").strip()
        if not body:
            raise InvalidInput("Ý kiến không được để trống.", "A comment cannot be empty.", {"body": "required"})
        if len(body) > MAX_COMMENT:
            raise InvalidInput("Ý kiến quá dài (tối đa 10.000 ký tự).", "Comment too long (10,000 max).",
                               {"body": "too long"})
        with self._action() as session:
            store = Store(session)
            self._check_active(store, actor_id)
            inst = store.instance(instance_id)
            if inst is None or not self.may_view_instance(session, actor_id, inst):
                raise NotFound("Không tìm thấy hồ sơ.", "Case not found.", {"instance": instance_id})
            comment = Comment(instance_id=inst.id, task_id=task_id, author_id=actor_id, body=body,
                              created_at=self.now())
            session.add(comment)
            session.flush()
            record(session, Action.COMMENT_ADDED, self.now(), instance_id=inst.id, task_id=task_id,
                   actor_id=actor_id, comment_id=comment.id)
            return comment.id


def task_signals(spiff) -> list[dict]:
    """The signals a READY task offers as buttons: its signal boundary events still waiting, with
    the modeller's label (`spiffworkflow:signalButtonLabel`) or the signal's name."""
    from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition

    found = []
    parent = spiff.parent  # a task with boundary events sits under a split with them as siblings
    for sibling in (parent.children if parent is not None else []):
        definition = getattr(sibling.task_spec, "event_definition", None)
        if sibling is spiff or sibling.state != SpiffState.WAITING or not isinstance(definition, SignalEventDefinition):
            continue
        label = (getattr(sibling.task_spec, "extensions", None) or {}).get("signalButtonLabel")
        found.append({"name": definition.name, "label": label or sibling.task_spec.bpmn_name or definition.name})
    return found
