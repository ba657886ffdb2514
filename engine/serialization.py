"""Workflow state <-> JSON, without the embedded spec (the definition row holds it once)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import UUID

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.config import DEFAULT_CONFIG
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG

from engine.errors import InvalidInput

# The specs a deserialization may need, keyed by definition id; filled by the definition cache.
SPEC_SOURCE: dict[int, tuple] = {}


class SpeclessWorkflowConverter(BpmnWorkflowConverter):
    """Writes `definition_id` instead of the spec and subprocess specs."""

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["definition_id"] = workflow.definition_id
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct):
        definition_id = dct.pop("definition_id")
        spec, subprocess_specs = SPEC_SOURCE[definition_id]
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.definition_id = definition_id
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _make(config: dict) -> BpmnWorkflowSerializer:
    config = dict(config)
    config[BpmnWorkflow] = SpeclessWorkflowConverter
    registry = BpmnWorkflowSerializer.configure(config)
    registry.register(Decimal, lambda v: {"value": str(v)}, lambda v: Decimal(v["value"]), "Decimal")
    registry.register(date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"]), "date")
    return BpmnWorkflowSerializer(registry)


SERIALIZERS = {"spiff": _make(SPIFF_CONFIG), "camunda": _make(CAMUNDA_CONFIG), "bpmn": _make(DEFAULT_CONFIG)}
SERIALIZER_VERSION = SERIALIZERS["spiff"].VERSION


def dumps(workflow: BpmnWorkflow, dialect: str) -> str:
    return SERIALIZERS[dialect].serialize_json(workflow)


def loads(state: str, dialect: str, definition_id: int, spec_pair: tuple) -> BpmnWorkflow:
    SPEC_SOURCE[definition_id] = spec_pair
    return SERIALIZERS[dialect].deserialize_json(state)


def check_submitted_data(value, path: str = "") -> None:
    """Refuse data the serializer could not load back (a `typename` key makes an instance unloadable)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput("Khóa dữ liệu phải là chuỗi.", "Data keys must be strings.", {path or "/": "key"})
            if key == "typename":
                where = f"{path}/{key}"
                raise InvalidInput(
                    "Tên trường 'typename' được dành riêng cho hệ thống.",
                    "The field name 'typename' is reserved.",
                    {where: "reserved"},
                )
            check_submitted_data(item, f"{path}/{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_submitted_data(item, f"{path}/{index}")
