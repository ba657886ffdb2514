"""Routing BPMN messages and signals to instances by an indexed (name, correlation key) subscription table.

A message goes to the cases waiting for its name whose correlation matches, or else starts a
process with that message start event. A signal is a broadcast: every case waiting for its
name catches it (or only the one case asked for), and every process with that signal start
event starts. Signals thrown by a case and not caught inside it are broadcast the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition as BpmnSignal
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition as BpmnMessage
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition as CamundaMessage
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition as SpiffMessage
from SpiffWorkflow.spiff.specs.event_definitions import SignalEventDefinition as SpiffSignal
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
_SIGNAL_CLASSES = {"spiff": SpiffSignal}  # the Camunda and plain BPMN parsers use the base class


def message_event_class(dialect: str) -> type[BpmnMessage]:
    return _CLASSES.get(dialect, SpiffMessage)


def _event_class(base: type, dialect: str) -> type:
    return message_event_class(dialect) if base is BpmnMessage else _SIGNAL_CLASSES.get(dialect, BpmnSignal)


def _waiting(wf, base: type, name: str):
    """The tasks of `wf` waiting for an event of kind `base` named `name`, with the definition waiting."""
    for task in list(wf.event_manager.tasks.values()):
        for definition in projections._definitions(getattr(task.task_spec, "event_definition", None)):
            if isinstance(definition, base) and definition.name == name:
                yield task, definition


def _event_for(wf, dialect: str, name: str, flat: dict, payload) -> BpmnEvent:
    """Build the event with the class of the definition actually waiting (Spiff matches by exact class)."""
    cls, known = message_event_class(dialect), dict(wf.correlations or {})
    for task, definition in _waiting(wf, BpmnMessage, name):
        cls = type(definition)
        known.update(task.workflow.correlations or {})  # a waiting subprocess keeps its own
    correlations = {
        key: props for key, props in known.items()
        if isinstance(props, dict) and props and all(flat.get(p) == v for p, v in props.items())
    }
    return BpmnEvent(cls(name), payload, correlations=correlations)


def signal_event(wf, dialect: str, name: str, payload) -> BpmnEvent:
    cls = next((type(d) for _task, d in _waiting(wf, BpmnSignal, name)), _event_class(BpmnSignal, dialect))
    return BpmnEvent(cls(name), payload)


def _start_names(parsed, base: type) -> set[str]:
    names = set()
    for ts in parsed.spec.task_specs.values():
        definition = getattr(ts, "event_definition", None)
        if isinstance(ts, StartEvent) and isinstance(definition, base):
            names.add(definition.name)
    return names


def _wake(engine: "Engine", session: Session, actor_id: int | None, instance_ids: list[int], make_event,
          action: Action, depth: int, **details) -> list[int]:
    """Hand the event to each running case in `instance_ids` that catches it; one save each."""
    store, woken = Store(session), []
    for instance_id in instance_ids:
        inst = engine._lock_instance(store, instance_id)
        if inst.status != InstanceStatus.RUNNING.value:
            continue
        wf, parsed = engine._load(session, inst)
        try:
            wf.send_event(make_event(wf, parsed))
        except WorkflowException:
            continue  # the stored key matched but the instance's own correlation did not
        engine._run_engine(wf, inst)
        record(session, action, engine.now(), instance_id=inst.id, actor_id=actor_id, **details)
        engine._save(session, inst, wf, parsed, actor_id, depth)
        woken.append(inst.id)
    return woken


def _start_on(engine: "Engine", session: Session, actor_id: int | None, base: type, name: str, payload,
              action: Action, depth: int, **details) -> list[int]:
    """Start a case of every process (its newest version) whose start event catches this event."""
    started = []
    for definition in _latest_definitions(session):
        parsed = engine._parsed(session, definition.id)
        if name not in _start_names(parsed, base):
            continue
        inst, wf = engine._start(session, actor_id, definition, {}, None)
        wf.send_event(BpmnEvent(_event_class(base, parsed.dialect)(name), payload))
        engine._run_engine(wf, inst)
        record(session, action, engine.now(), instance_id=inst, actor_id=actor_id, started=True, **details)
        engine._save(session, inst, wf, parsed, actor_id, depth)
        started.append(inst.id)
    return started


def deliver(engine: "Engine", session: Session, actor_id: int | None, name: str, flat: dict, payload,
            depth: int) -> list[int]:
    key = projections.correlation_key(flat)
    instance_ids = [r["instance_id"] for r in Store(session).rows(
        "SELECT DISTINCT instance_id FROM message_subscriptions WHERE message_name = :name "
        "AND (correlation_key = :key OR correlation_key = '') ORDER BY instance_id", name=name, key=key,
    )]
    details = {"message": name, "correlations": flat}
    delivered = _wake(engine, session, actor_id, instance_ids,
                      lambda wf, parsed: _event_for(wf, parsed.dialect, name, flat, payload),
                      Action.MESSAGE_DELIVERED, depth, **details)
    if not delivered:
        delivered = _start_on(engine, session, actor_id, BpmnMessage, name, payload, Action.MESSAGE_DELIVERED,
                              depth, **details)
    if not delivered and depth == 0:
        raise NotFound(
            f"Không có hồ sơ nào đang chờ thông điệp '{name}'.",
            f"No case is waiting for message '{name}'.",
            {"message": name, "correlations": flat},
        )
    return delivered


def signal(engine: "Engine", session: Session, actor_id: int | None, name: str, payload, depth: int,
           instance_id: int | None = None) -> list[int]:
    """Broadcast a signal (or send it to one case): the cases that caught it, then any it started."""
    if instance_id is not None:
        instance_ids = [instance_id]
    else:
        instance_ids = [r["instance_id"] for r in Store(session).rows(
            "SELECT DISTINCT instance_id FROM message_subscriptions WHERE message_name = :name "
            "AND correlation_key = :signal ORDER BY instance_id", name=name, signal=projections.SIGNAL_KEY)]
    caught = _wake(engine, session, actor_id, instance_ids,
                   lambda wf, parsed: signal_event(wf, parsed.dialect, name, payload),
                   Action.SIGNAL_RECEIVED, depth, signal=name)
    if instance_id is None:
        caught += _start_on(engine, session, actor_id, BpmnSignal, name, payload, Action.SIGNAL_RECEIVED, depth,
                            signal=name)
    if not caught and depth == 0:
        where = f" (hồ sơ / case {instance_id})" if instance_id is not None else ""
        raise NotFound(
            f"Không có hồ sơ nào đang chờ tín hiệu '{name}'{where}.",
            f"No case is waiting for signal '{name}'{where}.",
            {"signal": name, **({"instance": instance_id} if instance_id is not None else {})},
        )
    return caught


def _latest_definitions(session: Session) -> list[Definition]:
    rows = session.scalars(select(Definition).order_by(Definition.process_key, Definition.version.desc()))
    latest: dict[str, Definition] = {}
    for row in rows:
        latest.setdefault(row.process_key, row)
    return list(latest.values())
