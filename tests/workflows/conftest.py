"""Fixtures for the process-model scenarios: more people, and a runner that can reload between steps."""

from __future__ import annotations

import json
from uuid import UUID

import pytest
from sqlalchemy import func, select

from engine import serialization
from engine.db import Database
from engine.models import HumanTask, Instance
from engine.runtime import Engine
from tests.engine.helpers import instance, open_tasks
from workflows import WORKFLOWS_DIR


def _load(engine: Engine, instance_id: int):
    inst = instance(engine, instance_id)
    with engine.db.read() as session:
        parsed = engine.definitions.get(session, inst.definition_id)
    return inst, parsed, serialization.loads(inst.state, parsed.dialect, inst.definition_id, parsed.spec_pair)


def round_trip(engine: Engine, instance_id: int) -> None:
    """Load the stored state with `engine`'s definitions; it must serialize back to the same JSON value.

    Compared as JSON values, not text: after a multi-instance merge SpiffWorkflow rebuilds a task's
    data in another key order, so the `delta` dicts come out reordered (same content).
    """
    inst, parsed, wf = _load(engine, instance_id)
    assert json.loads(serialization.dumps(wf, parsed.dialect)) == json.loads(inst.state)


class Runner:
    """Drives one case; in `reload` mode every step uses a brand-new Engine after a DB round trip."""

    def __init__(self, engine: Engine, reload: bool):
        self.engine = engine
        self.reload = reload
        self.instance_id: int | None = None

    def step(self) -> Engine:
        if self.reload:
            old = self.engine
            self.engine = Engine(Database.from_settings(old.settings), old.settings, old.clock)
            old.db.dispose()
            if self.instance_id is not None:  # the new engine's cache is empty: specs are parsed afresh
                round_trip(self.engine, self.instance_id)
        return self.engine

    def deploy(self, key: str) -> None:
        self.step().deploy_path(WORKFLOWS_DIR / key)

    def start(self, actor_id: int, key: str, data: dict, **kwargs) -> int:
        self.instance_id = self.step().start_instance(actor_id, key, data, **kwargs)
        return self.instance_id

    def complete(self, actor_id: int, task: HumanTask, data: dict | None = None) -> list[str]:
        return self.step().complete_task(actor_id, task.id, data or {})

    # Reads below use the current engine: only actions (start, complete, return, timers) reload.
    def open(self, name: str | None = None) -> list[HumanTask]:
        tasks = open_tasks(self.engine, self.instance_id)
        return [t for t in tasks if name is None or t.task_name == name]

    def only(self, name: str) -> HumanTask:
        tasks = self.open()
        assert [t.task_name for t in tasks] == [name], [t.task_name for t in tasks]
        return tasks[0]

    def one(self, name: str, org_code: str) -> HumanTask:
        """The single open task `name` of organisation `org_code` (other organisations may have theirs)."""
        tasks = [t for t in self.open(name) if t.org_code == org_code]
        assert len(tasks) == 1, [(t.task_name, t.org_code) for t in self.open()]
        return tasks[0]

    def instance(self) -> Instance:
        return instance(self.engine, self.instance_id)

    def data(self, task: HumanTask | None = None) -> dict:
        """Workflow data: of an open task, or of the whole case once it has completed."""
        _, _, wf = _load(self.engine, self.instance_id)
        if task is not None:
            return wf.get_task_from_id(UUID(task.spiff_task_id)).data
        assert wf.is_completed()
        return wf.data

    def instance_count(self) -> int:
        with self.engine.db.read() as session:
            return session.scalar(select(func.count(Instance.id)))


@pytest.fixture
def staff(people):
    """The conftest people plus the organisations these processes route to."""
    people.add("pleiku.cv", ("UBND_TP_PLEIKU", "staff"))
    people.add("pleiku.ld", ("UBND_TP_PLEIKU", "supervisor"))
    people.add("tttt.cv", ("SO_TTTT", "staff"))
    people.add("tc.cv", ("SO_TC", "staff"))
    people.add("khdt.cv", ("SO_KHDT", "staff"))
    return people


@pytest.fixture(params=["straight", "reload"])
def run(request, engine, staff):
    runner = Runner(engine, request.param == "reload")
    yield runner
    runner.engine.db.dispose()
