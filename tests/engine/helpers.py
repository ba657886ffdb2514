"""Small readers over the projections, used by engine tests."""

from __future__ import annotations

import json

from sqlalchemy import select

from engine import serialization
from engine.models import AuditEvent, HumanTask, Instance, TaskState
from engine.runtime import Engine


def open_tasks(engine: Engine, instance_id: int) -> list[HumanTask]:
    with engine.db.read() as session:
        return list(session.scalars(
            select(HumanTask).where(HumanTask.instance_id == instance_id, HumanTask.state == TaskState.OPEN.value)
            .order_by(HumanTask.created_at, HumanTask.task_name)
        ))


def only_open_task(engine: Engine, instance_id: int, name: str | None = None) -> HumanTask:
    tasks = open_tasks(engine, instance_id)
    assert len(tasks) == 1, [t.task_name for t in tasks]
    if name is not None:
        assert tasks[0].task_name == name
    return tasks[0]


def deploy_xml(engine: Engine, key: str, xml: bytes, descriptor: dict | None = None) -> None:
    """Deploy one BPMN document as process `key` (with a descriptor, if given)."""
    from engine.definitions import Bundle

    bundle = Bundle(key=key, descriptor=descriptor)
    bundle.xml = {f"{key}.bpmn": xml}
    engine.deploy_bundle(bundle)


def case_on_approval_with_timer(engine: Engine, staff_id: int, boundary: str = "PT1H") -> int:
    """Deploy the sample approval with a boundary timer on its approval step, start a case and submit it."""
    from tests.engine import bpmn_samples

    deploy_xml(engine, "duyet", bpmn_samples.approval(boundary=boundary))
    iid = engine.start_instance(staff_id, "duyet")
    engine.complete_task(staff_id, only_open_task(engine, iid).id, {})
    return iid


def instance(engine: Engine, instance_id: int) -> Instance:
    with engine.db.read() as session:
        return session.get(Instance, instance_id)


def audit_actions(engine: Engine, instance_id: int) -> list[str]:
    with engine.db.read() as session:
        return list(session.scalars(
            select(AuditEvent.action).where(AuditEvent.instance_id == instance_id).order_by(AuditEvent.id)
        ))


def round_trip(engine: Engine, instance_id: int) -> None:
    """Deserialize the stored state with a fresh definition cache and check it serializes back the same."""
    from engine.definitions import DefinitionCache

    inst = instance(engine, instance_id)
    cache = DefinitionCache(engine.settings.max_upload_bytes)
    with engine.db.read() as session:
        parsed = cache.get(session, inst.definition_id)
    wf = serialization.loads(inst.state, parsed.dialect, inst.definition_id, parsed.spec_pair)
    assert json.loads(serialization.dumps(wf, parsed.dialect)) == json.loads(inst.state)
