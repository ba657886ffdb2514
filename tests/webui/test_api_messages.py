"""Delivering BPMN messages through the API: to waiting cases by correlation, or starting a process."""

from __future__ import annotations

from engine.definitions import Bundle
from tests.engine import bpmn_samples as samples
from tests.webui.conftest import error_of, only_task

MESSAGE_START = (
    samples.HEAD
    + '<bpmn:message id="m_moi" name="ho_so_moi"/>'
    '<bpmn:process id="nhan_ho_so" isExecutable="true">'
    '<bpmn:laneSet id="ls"><bpmn:lane id="l1" name="SO_KHCN / Chuyên viên">'
    '<bpmn:flowNodeRef>tiep_nhan</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>'
    '<bpmn:startEvent id="s"><bpmn:messageEventDefinition id="md" messageRef="m_moi"/></bpmn:startEvent>'
    '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="tiep_nhan"/>'
    '<bpmn:userTask id="tiep_nhan" name="Tiếp nhận hồ sơ"/>'
    '<bpmn:sequenceFlow id="f2" sourceRef="tiep_nhan" targetRef="e"/><bpmn:endEvent id="e"/>'
    '</bpmn:process></bpmn:definitions>'
).encode()


def deploy(engine, key: str, xml: bytes) -> None:
    bundle = Bundle(key=key)
    bundle.xml = {f"{key}.bpmn": xml}
    engine.deploy_bundle(bundle)


def test_a_message_reaches_the_case_waiting_with_the_same_correlation(api, engine, people):
    deploy(engine, "cho_tin", samples.message_wait())
    cases = {}
    for code in ("HS-001", "HS-002"):
        iid = engine.start_instance(people["nn.cv"], "cho_tin")
        engine.complete_task(people["nn.cv"], only_task(engine, iid), {"ma_ho_so": code})
        cases[code] = iid
    response = api("admin").post("/messages", json={"name": "ket_qua", "correlations": {"ma_ho_so": "HS-002"},
                                                   "payload": {"ma_ho_so": "HS-002", "dat": True}})
    assert response.status_code == 200 and response.get_json() == {"instances": [cases["HS-002"]]}
    detail = api("nn.cv").get(f"/instances/{cases['HS-002']}").get_json()
    assert [t["name"] for t in detail["open_tasks"]] == ["xu_ly"]
    assert "message_delivered" in [e["action"] for e in detail["history"]]
    assert api("nn.cv").get(f"/instances/{cases['HS-001']}").get_json()["open_tasks"] == []
    nobody = api("admin").post("/messages", json={"name": "ket_qua", "correlations": {"ma_ho_so": "HS-999"}})
    assert nobody.status_code == 404 and "ket_qua" in error_of(nobody)["message"]


def test_a_message_start_event_starts_a_case(api, engine, people):
    deploy(engine, "nhan_ho_so", MESSAGE_START)
    response = api("admin").post("/messages", json={"name": "ho_so_moi", "payload": {"doanh_nghiep": "Cty A"}})
    assert response.status_code == 200
    (started,) = response.get_json()["instances"]
    detail = api("khcn.cv").get(f"/instances/{started}").get_json()
    assert detail["process"] == "nhan_ho_so" and [t["name"] for t in detail["open_tasks"]] == ["tiep_nhan"]


def test_only_administrators_deliver_messages_and_bad_bodies_are_400(api, engine):
    deploy(engine, "cho_tin", samples.message_wait())
    assert api("nn.cv").post("/messages", json={"name": "ket_qua"}).status_code == 403
    admin = api("admin")
    assert error_of(admin.post("/messages", json={}))["details"] == {
        "name": "Trường này là bắt buộc. / This field is required."}
    nested = admin.post("/messages", json={"name": "ket_qua", "correlations": {"ma_ho_so": {"a": 1}}})
    assert nested.status_code == 400 and "correlations/ma_ho_so" in error_of(nested)["details"]
    assert admin.post("/messages", json={"name": "ket_qua", "payload": [1]}).status_code == 400
    assert admin.post("/messages", json={"name": "x", "payload": {"typename": "y"}}).status_code == 400
