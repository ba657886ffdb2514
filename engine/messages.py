"""Routing BPMN messages between instances by an indexed (name, correlation key) subscription table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition as BpmnMessage
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition as CamundaMessage
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition as SpiffMessage
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import projections
from engine.audit import Action, record
from engine.errors import NotFound
from engine.models import Definition, InstanceStatus
from engine.store import Store

if TYPE_CHECKING:
    from engine.runtime import Engine

_CLASSES = {"spiff": SpiffMessage, "camunda": CamundaMessage, "bpmn": BpmnMessage}


def message_event_class(dialect: str) -> type[BpmnMessage]:
    return _CLASSES.get(dialect, SpiffMessage)


def _event_for(wf, dialect: str, name: str, flat: dict, payload) -> BpmnEvent:
    """Build the event with the class of the definition actually waiting (Spiff matches by exact class)."""
    cls, known = message_event_class(dialect), dict(wf.correlations or {})
    for task in list(wf.event_manager.tasks.values()):
        for definition in projections._definitions(getattr(task.task_spec, "event_definition", None)):
            if isinstance(definition, BpmnMessage) and definition.name == name:
                cls = type(definition)
                known.update(task.workflow.correlations or {})  # a waiting subprocess keeps its own
    correlations = {
        key: props for key, props in known.items()
        if isinstance(props, dict) and props and all(flat.get(p) == v for p, v in props.items())
    }
    return BpmnEvent(cls(name), payload, correlations=correlations)


def _start_message_names(parsed) -> set[str]:
    names = set()
    for ts in parsed.spec.task_specs.values():
        definition = getattr(ts, "event_definition", None)
        if isinstance(ts, StartEvent) and isinstance(definition, BpmnMessage):
            names.add(definition.name)
    return names


def deliver(engine: "Engine", session: Session, actor_id: int | None, name: str, flat: dict, payload,
            depth: int) -> list[int]:
    key = projections.correlation_key(flat)
    store = Store(session)
    instance_ids = [r["instance_id"] for r in store.rows(
        "SELECT DISTINCT instance_id FROM message_subscriptions WHERE message_name = :name "
        "AND (correlation_key = :key OR correlation_key = '') ORDER BY instance_id", name=name, key=key,
    )]
    delivered = []
    for instance_id in instance_ids:
        inst = engine._lock_instance(store, instance_id)
        if inst.status != InstanceStatus.RUNNING.value:
            continue
        wf, parsed = engine._load(session, inst)
        try:
            wf.send_event(_event_for(wf, parsed.dialect, name, flat, payload))
        except WorkflowException:
            continue  # the stored key matched but the instance's own correlation did not
        engine._run_engine(wf, inst)
        record(session, Action.MESSAGE_DELIVERED, engine.now(), instance_id=inst.id, actor_id=actor_id,
               message=name, correlations=flat)
        engine._save(session, inst, wf, parsed, actor_id, depth)
        delivered.append(inst.id)
    if delivered:
        return delivered
    for definition in _latest_definitions(session):
        parsed = engine._parsed(session, definition.id)
        if name not in _start_message_names(parsed):
            continue
        inst, wf = engine._start(session, actor_id, definition, {}, None)
        wf.send_event(BpmnEvent(message_event_class(parsed.dialect)(name), payload))
        engine._run_engine(wf, inst)
        record(session, Action.MESSAGE_DELIVERED, engine.now(), instance_id=inst, actor_id=actor_id,
               message=name, correlations=flat, started=True)
        engine._save(session, inst, wf, parsed, actor_id, depth)
        delivered.append(inst.id)
    if not delivered and depth == 0:
        raise NotFound(
            f"Không có hồ sơ nào đang chờ thông điệp '{name}'.",
            f"No case is waiting for message '{name}'.",
            {"message": name, "correlations": flat},
        )
    return delivered


def _latest_definitions(session: Session) -> list[Definition]:
    rows = session.scalars(select(Definition).order_by(Definition.process_key, Definition.version.desc()))
    latest: dict[str, Definition] = {}
    for row in rows:
        latest.setdefault(row.process_key, row)
    return list(latest.values())
