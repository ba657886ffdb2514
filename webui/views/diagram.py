"""The case's BPMN diagram and which of its elements are done or current, for bpmn-js markers.

Reads the stored state of ONE case (the detail page already does) and never writes.
"""

from __future__ import annotations

import logging
import re

from SpiffWorkflow.util.task import TaskState as SpiffState
from sqlalchemy.orm import Session

from engine import serialization
from engine.models import Definition, Instance

log = logging.getLogger(__name__)

_CURRENT = SpiffState.READY | SpiffState.WAITING | SpiffState.STARTED


def diagram_xml(definition: Definition) -> str | None:
    """The BPMN file that holds the definition's main process (with its layout)."""
    files = {n: body for n, body in (definition.files or {}).items() if n.lower().endswith((".bpmn", ".xml"))}
    if not files:
        return None
    marker = re.compile(r"<(?:\w+:)?process\b[^>]*\bid=\"" + re.escape(definition.process_id) + "\"")
    for body in files.values():
        if marker.search(body):
            return body
    return next(iter(files.values()))


def markers(engine, session: Session, inst: Instance) -> dict[str, list[str]]:
    """{"done": [bpmn ids], "current": [bpmn ids]}; empty lists if the state cannot be read."""
    done: set[str] = set()
    current: set[str] = set()
    try:
        parsed = engine.definitions.get(session, inst.definition_id)
        wf = serialization.loads(inst.state, parsed.dialect, inst.definition_id, parsed.spec_pair)
        for task in wf.get_tasks():
            bpmn_id = getattr(task.task_spec, "bpmn_id", None)
            if not bpmn_id:
                continue
            if task.state == SpiffState.COMPLETED:
                done.add(bpmn_id)
            elif task.state & _CURRENT:
                current.add(bpmn_id)
    except Exception:  # noqa: BLE001 - the page shows the rest of the case without markers
        log.exception("markers of instance %s could not be read", inst.id)
    if inst.status in ("completed", "cancelled"):
        current.clear()
    return {"done": sorted(done - current), "current": sorted(current)}
