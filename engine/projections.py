"""Tables kept in step with the workflow inside the same transaction: tasks, timers, subscriptions."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState as SpiffState

from engine import assignment, deadlines
from engine.definitions import ParsedDefinition
from engine.descriptor import INITIATOR_RULE, fold
from engine.models import InstanceStatus, TaskState
from engine.store import InstanceRow, Store, TaskRow, TimerStore
from engine.workdays import WorkingCalendar

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def render_title(template: str, data: dict) -> str:
    """`{field}` placeholders only: str.format would let a model read attributes."""
    def sub(match):
        value = assignment._lookup(data, match.group(1)) if "." in match.group(1) else data.get(match.group(1))
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(sub, template)[:500]


def display_title(stored: str | None, template: str | None, business: dict | None) -> str:
    """A case's title as lists show it. The engine renders the title when the case starts, often
    before the fields its template names are filled in ("Sửa đổi kế hoạch: "); once a task's
    business fields give every one of them a value, the fresh rendering is shown instead."""
    names = _PLACEHOLDER.findall(template or "")
    if names and business and all(business.get(n) not in (None, "") for n in names):
        return render_title(template, business)
    return stored or ""


# What the inbox search reads of a task, folded. The reader sees "<case id> <step title> <case title>
# <process title> <business values>"; the process title is in the reader's language, so it is not
# stored: engine.queries.search_condition joins it in where this separator stands. A folded needle
# never holds a newline (fold collapses whitespace), so no match crosses it by accident.
SEARCH_SEPARATOR = "\n"


def search_text(instance_id: int, title: str | None, case_title: str | None, business: dict | None) -> str:
    head = fold(" ".join([str(instance_id), title or "", case_title or ""]))
    return head + SEARCH_SEPARATOR + fold(" ".join(str(v) for v in (business or {}).values()))


def latest_title_template(store: Store, process_key: str, definition_id: int, own: str | None) -> str:
    """The title template lists use for a case: its process's latest version's (webui's catalogue),
    which is the case's own unless a newer version was deployed after the case started."""
    newer = store.scalar(
        "SELECT descriptor FROM definitions WHERE process_key = :key AND version > "
        "(SELECT version FROM definitions WHERE id = :id) ORDER BY version DESC LIMIT 1",
        key=process_key, id=definition_id)
    if newer is None:
        return own or ""
    descriptor = json.loads(newer) if isinstance(newer, str) else newer
    return (descriptor or {}).get("title_template") or ""


def business_fields(parsed: ParsedDefinition, data: dict) -> dict:
    fields = parsed.descriptor.get("list_fields") or {}
    out = {}
    for name in fields:
        value = data.get(name)
        if isinstance(value, (str, int, float, bool)) and value != "":
            out[name] = value if not isinstance(value, str) else value[:200]
    return out


def _definitions(definition):
    """The plain event definitions behind one (an event-based gateway waits on a Multiple of them)."""
    if isinstance(definition, MultipleEventDefinition):
        return list(definition.event_definitions)
    return [definition] if definition is not None else []


def timer_due(task, definition=None) -> datetime | None:
    definition = definition or task.task_spec.event_definition
    value = task.internal_data.get("event_value")
    if value is None:
        return None
    if isinstance(definition, CycleTimerEventDefinition):
        return None if value["cycles"] == 0 else datetime.fromisoformat(value["next"])
    if isinstance(definition, DurationTimerEventDefinition):
        return TimerEventDefinition.get_datetime(value)
    if isinstance(definition, TimeDateEventDefinition):
        return TimerEventDefinition.parse_time_or_duration(value)
    return None


def next_timer_at(wf: BpmnWorkflow, now: datetime) -> datetime | None:
    dues = []
    for task in list(wf.event_manager.tasks.values()):
        for definition in _definitions(getattr(task.task_spec, "event_definition", None)):
            if not isinstance(definition, TimerEventDefinition):
                continue
            due = timer_due(task, definition)
            if due is None and isinstance(definition, CycleTimerEventDefinition):
                due = now  # finished cycle still WAITING: a tick completes it
            if due is not None:
                dues.append(due if due.tzinfo else due.replace(tzinfo=now.tzinfo))
    return min(dues) if dues else None


def flatten_correlations(value, only: set[str] | None = None) -> dict:
    """{key: {property: value}} -> {property: value}, optionally only for some properties."""
    flat = {}
    if isinstance(value, dict):
        for props in value.values():
            if isinstance(props, dict):
                flat.update({p: v for p, v in props.items() if only is None or p in only})
    return flat


def correlation_key(flat: dict) -> str:
    return json.dumps(flat, sort_keys=True, ensure_ascii=False, default=str) if flat else ""


def summarise(inst: InstanceRow, wf: BpmnWorkflow, parsed: ParsedDefinition, now: datetime) -> None:
    """The instance row's own projections: business fields, next timer, completion."""
    completed = wf.is_completed()
    last = wf.last_task
    if completed:
        data = wf.data
    elif last is not None and last.workflow is wf and not last.task_spec.name.endswith(" [child]"):
        data = last.data
    else:
        data = {}  # a step inside a called process or of one multi-instance item speaks for itself only
    if not inst.business:
        inst.business = business_fields(parsed, wf.task_tree.data)
    inst.business = {**inst.business, **business_fields(parsed, data)}
    inst.next_timer_at = None if completed else next_timer_at(wf, now)
    if completed and inst.status == InstanceStatus.RUNNING.value:
        inst.status = InstanceStatus.COMPLETED.value
        inst.completed_at = now


def sync_tasks(store: Store, inst: InstanceRow, wf: BpmnWorkflow, parsed: ParsedDefinition, now: datetime,
               open_rows: list[TaskRow], cal: WorkingCalendar | None = None, tz: ZoneInfo | None = None,
               newest: bool = False) -> list[TaskRow]:
    """Open a row for each new READY human task, close rows whose task left READY; returns the new rows.

    `newest`: the case runs its process's newest version, whose title template is its own.

    A new task whose step has a deadline in the descriptor gets its due time, and its
    reminder and escalation timers are scheduled in the same transaction.
    """
    ready = {str(t.id): t for t in wf.get_tasks(state=SpiffState.READY, manual=True)}
    still_open = set()
    for row in open_rows:
        if row.state != TaskState.OPEN.value:
            continue  # closed by the action itself (completed, returned)
        if row.spiff_task_id in ready:
            still_open.add(row.spiff_task_id)
        else:  # left READY without a person's action: interrupted by a timer, a message or a cancel
            row.set(state=TaskState.CANCELLED.value, completed_at=now)
            store.save_task(row)
    created, timers = [], []
    template = None
    lanes = parsed.descriptor.get("lanes") or {}
    task_specs = parsed.descriptor.get("tasks") or {}
    for spiff_id, task in ready.items():
        if spiff_id in still_open:
            continue
        spec = parsed.human_tasks.get(task.task_spec.name)
        name = spec.bpmn_id if spec else task.task_spec.name
        lane = task.task_spec.lane
        rule = lanes.get(lane) if lane is not None else parsed.descriptor.get("default_lane", INITIATOR_RULE)
        target = assignment.resolve(
            store, rule or INITIATOR_RULE, owner_org=inst.owner_org, initiator_id=inst.initiator_id, data=task.data
        )
        plan = deadlines.schedule(cal, task_specs.get(name), now, task.data, tz) if cal is not None else None
        if template is None:
            own = parsed.descriptor.get("title_template")
            template = (own or "") if newest else latest_title_template(store, inst.process_key,
                                                                          inst.definition_id, own)
        title = (spec.title if spec else task.task_spec.name)[:500]
        business = business_fields(parsed, task.data)
        row = TaskRow(
            id=uuid.uuid4().hex, instance_id=inst.id, spiff_task_id=spiff_id, process_key=inst.process_key,
            task_name=name, title=title, lane=lane,
            org_code=target.org_code, role=target.role, candidate_user_id=target.candidate_user_id,
            assignee_id=None, state=TaskState.OPEN.value, form_key=spec.form_key if spec else None,
            business=business, return_reason=None, created_at=now,
            due_at=plan.due_at if plan else None,
            search_text=search_text(inst.id, title, display_title(inst.title, template, business), business),
        )
        created.append(row)
        if plan and plan.due_at is not None:
            timers.extend(_deadline_timers(inst.id, row.id, plan, now))
    store.insert_tasks(created)
    if timers:
        TimerStore(store.session).add(timers)
    return created


def _deadline_timers(instance_id: int, task_id: str, plan: deadlines.Schedule, now: datetime) -> list[dict]:
    base = {"iid": instance_id, "task_id": task_id, "now": now}
    rows = []
    if plan.remind_at is not None:
        rows.append({**base, "kind": "remind", "key": f"remind:{task_id}", "level": 0, "due": plan.remind_at,
                     "payload": {}})
    for level, when, step in plan.escalations:
        rows.append({**base, "kind": "escalate", "key": f"escalation:{task_id}:{level}", "level": level,
                     "due": when, "payload": {"step": step}})
    return rows


# The correlation key of a signal's subscription row: a message's key is '' or a JSON object, never this.
SIGNAL_KEY = "signal"


def waiting_messages(wf: BpmnWorkflow) -> set[tuple[str, str]]:
    """(message name, correlation key) pairs the workflow is waiting for, event gateways included,
    and (signal name, SIGNAL_KEY) for the signals it is waiting for."""
    if wf.is_completed():
        return set()
    wanted = set()
    for task in list(wf.event_manager.tasks.values()):
        for definition in _definitions(getattr(task.task_spec, "event_definition", None)):
            if isinstance(definition, SignalEventDefinition):
                wanted.add((definition.name, SIGNAL_KEY))
            elif isinstance(definition, MessageEventDefinition):
                props = {cp.name for cp in definition.correlation_properties}
                # The waiting task's own (sub)process holds the correlation its messages must match.
                flat = flatten_correlations(task.workflow.correlations, props) if props else {}
                wanted.add((definition.name, correlation_key(flat)))
    return wanted


def sync_subscriptions(store: Store, instance_id: int, wanted: set[tuple[str, str]], had_any: bool) -> None:
    """Index the messages the instance waits for, so delivery never loads instances to find them."""
    if (wanted or had_any) and wanted != store.subscriptions(instance_id):
        store.replace_subscriptions(instance_id, wanted)
