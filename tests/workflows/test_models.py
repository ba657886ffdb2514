"""Static checks of the five process folders: schema-valid BPMN, a complete diagram, forms, lanes, templates."""

from __future__ import annotations

import json

import pytest
from jinja2.sandbox import SandboxedEnvironment
from lxml import etree
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser

from engine.definitions import Bundle, parse_bundle
from workflows import WORKFLOWS_DIR

KEYS = ["ke_hoach_hanh_dong", "tuyen_truyen", "du_toan_kinh_phi", "ho_tro_chuyen_giao_cong_nghe", "bao_cao_dinh_ky"]
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI"}
MAX_BYTES = 5_000_000


@pytest.fixture(params=KEYS)
def folder(request):
    return WORKFLOWS_DIR / request.param


def test_bpmn_is_valid_against_the_bpmn_20_schema(folder):
    SpiffBpmnParser(validator=VALIDATOR).add_bpmn_file(str(folder / f"{folder.name}.bpmn"))


def test_every_element_is_drawn_so_a_modeler_can_open_it(folder):
    root = etree.parse(str(folder / f"{folder.name}.bpmn")).getroot()
    drawable = {el.get("id") for tag in ("participant", "lane", "sequenceFlow", "startEvent", "endEvent", "userTask",
                                         "scriptTask", "callActivity", "subProcess", "exclusiveGateway",
                                         "parallelGateway", "boundaryEvent")
                for el in root.iterfind(f".//bpmn:{tag}", NS)}
    drawn = {el.get("bpmnElement") for el in root.iterfind(".//bpmndi:BPMNShape", NS)}
    drawn |= {el.get("bpmnElement") for el in root.iterfind(".//bpmndi:BPMNEdge", NS)}
    assert drawable - drawn == set()
    for edge in root.iterfind(".//bpmndi:BPMNEdge", NS):
        assert len(edge.findall("{http://www.omg.org/spec/DD/20100524/DI}waypoint")) >= 2, edge.get("id")


def test_steps_lanes_and_forms_are_complete_and_in_vietnamese(folder):
    parsed = parse_bundle(Bundle.from_path(folder, MAX_BYTES), MAX_BYTES)
    lanes = parsed.descriptor["lanes"]
    render = SandboxedEnvironment()
    for task in parsed.human_tasks.values():
        assert task.lane in lanes, task.bpmn_id
        assert task.form_key in parsed.forms, task.bpmn_id
        assert any(ord(c) > 127 for c in task.title), task.title  # written with diacritics
        if task.instructions:
            render.from_string(task.instructions)  # a Jinja syntax error would break the task page
    used = {t.lane for t in parsed.human_tasks.values()}
    assert set(lanes) == used  # no mapping for a lane that holds no step
    assert set(parsed.descriptor.get("tasks", {})) <= {t.bpmn_id for t in parsed.human_tasks.values()}


def test_forms_have_vietnamese_titles_limits_and_no_free_extra_fields(folder):
    for path in folder.glob("*.json"):
        if path.name == "process.json":
            continue
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["additionalProperties"] is False, path.name
        assert schema["title"] and all("title" in p for p in schema["properties"].values()), path.name
        for name, prop in schema["properties"].items():
            if prop.get("type") == "string" and "enum" not in prop and "format" not in prop:
                assert "maxLength" in prop or "pattern" in prop, f"{path.name}: {name}"
            if prop.get("type") == "integer":
                assert "minimum" in prop and "maximum" in prop, f"{path.name}: {name}"
            if prop.get("type") == "array":
                assert "maxItems" in prop or "uniqueItems" in prop, f"{path.name}: {name}"
