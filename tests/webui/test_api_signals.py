"""BPMN signals through the API: an administrator's broadcast, and a step's own signal buttons."""

from __future__ import annotations

from tests.engine import bpmn_samples as samples
from tests.engine.helpers import deploy_xml
from tests.webui.conftest import error_of, only_task


def test_an_administrator_broadcasts_a_signal_to_the_waiting_cases(api, engine, people):
    deploy_xml(engine, "cho_dc", samples.signal_wait())
    cases = [engine.start_instance(people["nn.cv"], "cho_dc") for _ in range(2)]
    refused = api("nn.cv").post("/signals", json={"name": "ke_hoach_dieu_chinh"})
    assert refused.status_code == 403 and "quản trị" in error_of(refused)["message"]
    one = api("admin").post("/signals", json={"name": "ke_hoach_dieu_chinh", "instance_id": cases[0]})
    assert one.status_code == 200 and one.get_json() == {"instances": [cases[0]]}
    rest = api("admin").post("/signals", json={"name": "ke_hoach_dieu_chinh", "payload": {"dot": 2}})
    assert rest.get_json() == {"instances": [cases[1]]}
    detail = api("nn.cv").get(f"/instances/{cases[1]}").get_json()
    assert "signal_received" in [e["action"] for e in detail["history"]]
    nobody = api("admin").post("/signals", json={"name": "ke_hoach_dieu_chinh"})
    assert nobody.status_code == 404 and "tín hiệu" in error_of(nobody)["message"]
    assert api("admin").post("/signals", json={}).status_code == 400
    assert api("admin").post("/signals", json={"name": "x", "payload": {"typename": "y"}}).status_code == 400
    assert api("admin").post("/signals", json={"name": "x", "instance_id": "one"}).status_code == 400


def test_a_steps_signal_button_is_listed_and_pressed_by_whoever_may_act(api, engine, people):
    deploy_xml(engine, "nut", samples.signal_button())
    iid = engine.start_instance(people["nn.cv"], "nut")
    task_id = only_task(engine, iid)
    detail = api("nn.cv").get(f"/tasks/{task_id}").get_json()
    assert detail["signals"] == [{"name": "ke_hoach_dieu_chinh", "label": "Sửa lại"}]
    assert api("nn.ld").get(f"/tasks/{task_id}").get_json()["signals"] == []  # may see it, may not act
    assert api("yt.cv").post(f"/tasks/{task_id}/signal", json={"name": "ke_hoach_dieu_chinh"}).status_code == 404
    wrong = api("nn.cv").post(f"/tasks/{task_id}/signal", json={"name": "khong_co"})
    assert wrong.status_code == 400 and "tín hiệu" in error_of(wrong)["message"]
    pressed = api("nn.cv").post(f"/tasks/{task_id}/signal", json={"name": "ke_hoach_dieu_chinh"})
    assert pressed.status_code == 200
    body = pressed.get_json()
    assert body["task"]["state"] == "cancelled"
    assert [t["name"] for t in body["next_tasks"]] == ["sua"]
    again = api("nn.cv").post(f"/tasks/{task_id}/signal", json={"name": "ke_hoach_dieu_chinh"})
    assert again.status_code == 409  # the step is closed
