"""Helpers private to test_conformance.py: where the corpus is, bundles, and a replay driver over the Engine.

The driver only goes through the public Engine API (deploy, start, complete, deliver, fire timers) and the
stored state; in "reload" mode every step runs on a brand-new Engine after a serializer round trip.
"""

from __future__ import annotations

import re
from pathlib import Path
from uuid import UUID

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy import select

from engine import assignment, directory, serialization
from engine.db import Database
from engine.definitions import Bundle, DefinitionCache, DeployResult
from engine.models import AuditEvent, HumanTask, Instance, MessageSubscription, Position, TaskState
from engine.runtime import Engine
from tests.conftest import SHARED
from tests.engine.helpers import round_trip

CORPUS = SHARED / "bpmn-corpus"
MIWG = CORPUS / "miwg"
SPIFF = CORPUS / "spiff" / "bpmn" / "data"
SPIFF_CAMUNDA = CORPUS / "spiff" / "camunda" / "data"
SPIFF_SPIFF = CORPUS / "spiff" / "spiff" / "data"
ARENA_TESTS = CORPUS / "spiff-arena" / "tests-data"
ARENA_SAMPLES = CORPUS / "spiff-arena" / "sample-process-models" / "misc"
MAX_BYTES = 5 * 1024 * 1024

# Letters that only Vietnamese text has (tones and ă/â/đ/ê/ô/ơ/ư): a message with none is not Vietnamese.
VIETNAMESE = re.compile(
    "[àáạảãâầấậẩẫăằắặẳẵèéẹẻẽêềếệểễìíịỉĩòóọỏõôồốộổỗơờớợởỡùúụủũưừứựửữỳýỵỷỹđ]", re.IGNORECASE
)


def bundle(key: str, *paths: Path, process_id: str | None = None, collaboration_id: str | None = None,
           forms: dict[str, dict] | None = None) -> Bundle:
    """A deployment of corpus files under `key`, choosing the process or collaboration to run."""
    descriptor: dict = {"key": key}
    if process_id:
        descriptor["process_id"] = process_id
    if collaboration_id:
        descriptor["collaboration_id"] = collaboration_id
    result = Bundle(key=key, descriptor=descriptor)
    for path in paths:
        result.add_file(path.name, path.read_bytes(), MAX_BYTES)
    result.forms.update(forms or {})
    return result


def state_name(task) -> str:
    return SpiffState.get_name(task.state)


class Replay:
    """Drives one instance step by step.

    In `reload` mode each step first checks that the stored state survives a deserialize/serialize round
    trip, then runs on a brand-new Engine (empty definition cache, new connection pool), as a web worker
    that never saw the instance before would.
    """

    def __init__(self, engine: Engine, reload: bool):
        self.engine = engine
        self.reload = reload
        self.instance_id: int | None = None
        self.users: dict[str, int] = {}

    # ------------------------------------------------------------ set-up
    def step(self) -> Engine:
        if self.reload:
            if self.instance_id is not None:
                round_trip(self.engine, self.instance_id)
            old = self.engine
            self.engine = Engine(Database.from_settings(old.settings), old.settings, old.clock)
            old.db.dispose()
        return self.engine

    def org(self, code: str, name_vi: str, name_en: str = "") -> str:
        with self.engine.db.write() as session:
            directory.upsert_organisation(session, code, name_vi, name_en)
        return code

    def user(self, name: str, *positions: tuple[str, str]) -> int:
        with self.engine.db.write() as session:
            user = directory.create_user(session, name, name.title(), positions=list(positions), at=self.engine.now())
            self.users[name] = user.id
        return self.users[name]

    def deploy(self, bundle_: Bundle) -> DeployResult:
        return self.step().deploy_bundle(bundle_)

    def start(self, actor: str, key: str, data: dict | None = None) -> int:
        self.instance_id = self.step().start_instance(self.users[actor], key, data or {})
        return self.instance_id

    # ----------------------------------------------------------- actions
    def complete(self, name: str, data: dict | None = None, actor: str | None = None) -> list[str]:
        """Complete the one open task whose BPMN id or title is `name`, as someone allowed to."""
        row = self.task(name)
        actor_id = self.users[actor] if actor else self.actor_for(row)
        return self.step().complete_task(actor_id, row.id, data or {})

    def complete_row(self, row: HumanTask, data: dict | None = None) -> list[str]:
        return self.step().complete_task(self.actor_for(row), row.id, data or {})

    def tick(self, **delta) -> int:
        """Move the clock, then run the timer job once; returns how many instances it ticked."""
        self.engine.clock.advance(**delta)
        return self.step().fire_due_timers()

    def deliver(self, name: str, correlations: dict | None = None, payload: dict | None = None,
                actor: str | None = None) -> list[int]:
        return self.step().deliver_message(self.users[actor] if actor else None, name, correlations, payload)

    def signal(self, task_name: str, signal: str, actor: str | None = None) -> list[str]:
        """Press a signal button of the open task `task_name` (a signal boundary event on it)."""
        row = self.task(task_name)
        return self.step().signal_task(self.users[actor] if actor else self.actor_for(row), row.id, signal)

    # ------------------------------------------------------------ reading
    def open_tasks(self) -> list[HumanTask]:
        with self.engine.db.read() as session:
            return list(session.scalars(
                select(HumanTask).where(HumanTask.instance_id == self.instance_id,
                                        HumanTask.state == TaskState.OPEN.value)
                .order_by(HumanTask.created_at, HumanTask.task_name)
            ))

    def open_names(self) -> list[str]:
        return sorted(row.task_name for row in self.open_tasks())

    def open_titles(self) -> list[str]:
        return sorted(row.title for row in self.open_tasks())

    def task(self, name: str) -> HumanTask:
        rows = self.open_tasks()
        matches = [r for r in rows if r.task_name == name] or [r for r in rows if r.title == name]
        assert len(matches) == 1, f"expected one open task {name!r}, open: {[(r.task_name, r.title) for r in rows]}"
        return matches[0]

    def rows(self, state: str | None = None) -> list[HumanTask]:
        with self.engine.db.read() as session:
            query = select(HumanTask).where(HumanTask.instance_id == self.instance_id)
            if state is not None:
                query = query.where(HumanTask.state == state)
            return list(session.scalars(query.order_by(HumanTask.created_at, HumanTask.id)))

    def row(self, task_id: str) -> HumanTask:
        with self.engine.db.read() as session:
            return session.get(HumanTask, task_id)

    def actor_for(self, row: HumanTask) -> int:
        """Whoever the engine routed the task to: the claimant, the single candidate, or a holder of the role."""
        if row.assignee_id or row.candidate_user_id:
            return row.assignee_id or row.candidate_user_id
        with self.engine.db.read() as session:
            user_id = session.scalar(select(Position.user_id).where(
                Position.org_code == row.org_code, Position.role == row.role).order_by(Position.user_id).limit(1))
        assert user_id is not None, f"nobody holds {row.org_code}/{row.role} for task {row.task_name}"
        return user_id

    def visible_to(self, actor: str) -> list[str]:
        """The open tasks of this instance that `actor` would see in their inbox."""
        with self.engine.db.read() as session:
            condition = assignment.visible_task_filter(session, self.users[actor], self.engine.today())
            return sorted(session.scalars(select(HumanTask.task_name).where(
                HumanTask.instance_id == self.instance_id, HumanTask.state == TaskState.OPEN.value, condition)))

    def instance(self) -> Instance:
        with self.engine.db.read() as session:
            return session.get(Instance, self.instance_id)

    def status(self) -> str:
        return self.instance().status

    def subscriptions(self) -> list[tuple[str, str]]:
        with self.engine.db.read() as session:
            return sorted(session.execute(
                select(MessageSubscription.message_name, MessageSubscription.correlation_key)
                .where(MessageSubscription.instance_id == self.instance_id)).all())

    def audit(self, action: str) -> list[dict]:
        with self.engine.db.read() as session:
            return list(session.scalars(select(AuditEvent.details).where(
                AuditEvent.instance_id == self.instance_id, AuditEvent.action == action).order_by(AuditEvent.id)))

    def workflow(self) -> BpmnWorkflow:
        """The stored workflow, deserialized with a fresh definition cache (what another worker would see)."""
        inst = self.instance()
        cache = DefinitionCache(self.engine.settings.max_upload_bytes)
        with self.engine.db.read() as session:
            parsed = cache.get(session, inst.definition_id)
        return serialization.loads(inst.state, parsed.dialect, inst.definition_id, parsed.spec_pair)

    def data(self) -> dict:
        """The case data: the workflow's data once completed, else the data of the last completed task."""
        wf = self.workflow()
        if wf.is_completed():
            return wf.data
        return wf.last_task.data if wf.last_task else {}

    def task_data(self, row: HumanTask) -> dict:
        return self.workflow().get_task_from_id(UUID(row.spiff_task_id)).data

    def spiff_states(self, spec_name: str) -> list[str]:
        """States of every task of `spec_name`, in the top workflow and all its subprocesses."""
        wf = self.workflow()
        workflows = [wf, *wf.subprocesses.values()]
        return [state_name(t) for w in workflows for t in w.tasks.values() if t.task_spec.name == spec_name]
