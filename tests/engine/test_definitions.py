"""Deploying models: validation, versioning by content hash, hostile XML, other modelers' dialects."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from engine.definitions import Bundle
from engine.errors import EngineError, InvalidModel, TooLarge
from engine.models import Definition, Instance
from tests.engine import bpmn_samples as samples
from tests.engine.helpers import only_open_task

FORM = {"type": "object", "required": ["noi_dung"], "properties": {"noi_dung": {"type": "string", "minLength": 3}}}


def bundle(key="duyet", xml=None, forms=None, descriptor=None) -> Bundle:
    b = Bundle(key=key, descriptor=descriptor)
    b.xml = {f"{key}.bpmn": xml if xml is not None else samples.approval(key)}
    b.forms = dict(forms or {})
    return b


def count_definitions(engine) -> int:
    with engine.db.read() as session:
        return session.scalar(select(func.count(Definition.id)))


def test_identical_content_is_a_no_op_and_new_content_a_new_version(engine, orgs):
    first = engine.deploy_bundle(bundle())
    again = engine.deploy_bundle(bundle())
    assert (first.version, first.created) == (1, True)
    assert (again.definition_id, again.version, again.created) == (first.definition_id, 1, False)
    changed = engine.deploy_bundle(bundle(xml=samples.approval(extra='<bpmn:endEvent id="spare"/>')))
    assert (changed.version, changed.created) == (2, True)
    assert count_definitions(engine) == 2


def test_each_instance_stays_pinned_to_the_version_it_started_with(engine, people):
    v1 = engine.deploy_bundle(bundle())
    old = engine.start_instance(people["nn.cv"], "duyet")
    v2 = engine.deploy_bundle(bundle(xml=samples.approval(extra='<bpmn:endEvent id="spare"/>')))
    new = engine.start_instance(people["nn.cv"], "duyet")
    with engine.db.read() as session:
        assert session.get(Instance, old).definition_id == v1.definition_id
        assert session.get(Instance, new).definition_id == v2.definition_id
    task = only_open_task(engine, old, "submit")
    engine.complete_task(people["nn.cv"], task.id, {})
    assert only_open_task(engine, old, "approve").org_code == "SO_NNPTNT"


def test_lanes_without_a_descriptor_map_by_name_to_roles_and_organisations(engine, people):
    xml = samples.approval("lien_so", staff_lane="Chuyên viên", boss_lane="Sở Tài chính")
    engine.deploy_bundle(bundle("lien_so", xml))
    iid = engine.start_instance(people["nn.cv"], "lien_so")
    submit = only_open_task(engine, iid, "submit")
    assert (submit.org_code, submit.role) == ("SO_NNPTNT", "staff")
    engine.complete_task(people["nn.cv"], submit.id, {})
    approve = only_open_task(engine, iid, "approve")
    assert (approve.org_code, approve.role) == ("SO_TC", "staff")


def test_an_unmapped_lane_is_rejected_with_its_name_and_nothing_is_stored(engine, orgs):
    xml = samples.approval(boss_lane="Phòng Không Tồn Tại")
    with pytest.raises(InvalidModel) as err:
        engine.deploy_bundle(bundle(xml=xml))
    assert "Phòng Không Tồn Tại" in err.value.message
    assert count_definitions(engine) == 0


def test_a_missing_form_file_is_rejected(engine, orgs):
    with pytest.raises(InvalidModel) as err:
        engine.deploy_bundle(bundle(xml=samples.approval(form="trinh.json")))
    assert "trinh.json" in err.value.message
    assert count_definitions(engine) == 0


def test_an_invalid_json_schema_is_rejected(engine, orgs):
    bad = {"type": "object", "properties": {"x": {"type": "khong-phai-kieu"}}}
    with pytest.raises(InvalidModel) as err:
        engine.deploy_bundle(bundle(xml=samples.approval(form="trinh.json"), forms={"trinh.json": bad}))
    assert "JSON Schema" in err.value.message


def test_a_call_activity_to_a_missing_process_is_rejected(engine, orgs):
    with pytest.raises(InvalidModel) as err:
        engine.deploy_bundle(bundle("cha", xml=samples.call_activity("quy_trinh_con")))
    assert "quy_trinh_con" in err.value.message


@pytest.mark.parametrize("raw, expected", [
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', "DOCTYPE"),
    (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><l>&lol2;</l>',
     "DOCTYPE"),
    (b'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>', "DOCTYPE"),
    (b"<bpmn:definitions><unclosed>", "XML"),
    (b"", "XML"),
    (b"khong phai xml", "XML"),
    (b'<?xml version="1.0"?><a xmlns="urn:x"/>', "BPMN"),
])
def test_hostile_or_broken_xml_is_rejected_cleanly(engine, orgs, raw, expected):
    with pytest.raises(EngineError) as err:
        engine.deploy_bundle(bundle(xml=raw))
    assert expected in err.value.message
    assert count_definitions(engine) == 0


def test_an_oversize_upload_is_rejected_before_parsing(engine, orgs):
    limit = engine.settings.max_upload_bytes
    huge = samples.approval() + b"<!--" + b"x" * limit + b"-->"
    b = Bundle(key="duyet")
    with pytest.raises(TooLarge):
        b.add_file("duyet.bpmn", huge, limit)


def test_bare_iso_timer_literals_run_as_modelers_write_them(engine, people, clock):
    engine.deploy_bundle(bundle(xml=samples.approval(boundary="PT48H")))
    iid = engine.start_instance(people["nn.cv"], "duyet")
    engine.complete_task(people["nn.cv"], only_open_task(engine, iid).id, {})
    with engine.db.read() as session:
        due = session.get(Instance, iid).next_timer_at
    assert due == clock.now() + __import__("datetime").timedelta(hours=48)
    clock.advance(hours=47)
    assert engine.fire_due_timers() == 0
    clock.advance(hours=2)
    assert engine.fire_due_timers() == 1
    with engine.db.read() as session:
        inst = session.get(Instance, iid)
    assert inst.status == "completed"


def test_camunda_dialect_models_run_with_their_form_data(engine, people):
    b = Bundle(key="nghi_phep")
    b.xml = {"nghi_phep.bpmn": samples.CAMUNDA}
    engine.deploy_bundle(b)
    iid = engine.start_instance(people["nn.cv"], "nghi_phep")
    task = only_open_task(engine, iid, "dien")
    assert task.form_key == "camunda:dien.json"
    with pytest.raises(EngineError) as err:
        engine.complete_task(people["nn.cv"], task.id, {"ly_do": "ốm"})
    assert "so_ngay" in err.value.details
    engine.complete_task(people["nn.cv"], task.id, {"so_ngay": 5, "ly_do": "ốm"})
    assert only_open_task(engine, iid, "duyet").role == "supervisor"


def test_descriptor_errors_are_reported_with_their_location(engine, orgs):
    with pytest.raises(InvalidModel) as err:
        engine.deploy_bundle(bundle(descriptor={"key": "duyet", "lanes": {"Chuyên viên": {"org": "$owner", "role": "boss"}}}))
    assert "lanes/Chuyên viên/role" in err.value.message or "lanes" in err.value.message


def test_deploy_path_reads_a_folder_with_descriptor_and_forms(engine, orgs, tmp_path):
    folder = tmp_path / "trinh_duyet"
    folder.mkdir()
    (folder / "trinh_duyet.bpmn").write_bytes(samples.approval("trinh_duyet", form="trinh.json"))
    (folder / "trinh.json").write_text(json.dumps(FORM), encoding="utf-8")
    (folder / "process.json").write_text(json.dumps({
        "key": "trinh_duyet", "title": {"vi": "Trình duyệt", "en": "Submit"},
        "lanes": {"Chuyên viên": {"org": "$owner", "role": "staff"}, "Lãnh đạo": {"org": "SO_KHCN", "role": "supervisor"}},
    }), encoding="utf-8")
    result = engine.deploy_path(folder)
    assert (result.process_key, result.version) == ("trinh_duyet", 1)
    with engine.db.read() as session:
        row = session.get(Definition, result.definition_id)
        assert row.title_vi == "Trình duyệt"
        assert row.forms == {"trinh.json": FORM}
