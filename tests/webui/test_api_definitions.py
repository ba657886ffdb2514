"""Deploying and listing process definitions through the API."""

from __future__ import annotations

import io
import json

from tests.engine import bpmn_samples as samples
from tests.webui.conftest import FORM, error_of
from workflows import WORKFLOWS_DIR


def upload(*files: tuple[str, bytes], key: str | None = None) -> dict:
    data = {"files": [(io.BytesIO(raw), name) for name, raw in files]}
    if key:
        data["key"] = key
    return data


def folder(name: str) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted((WORKFLOWS_DIR / name).iterdir()) if p.is_file()]


def test_an_administrator_deploys_a_process_folder_and_redeploying_is_a_no_op(api):
    admin = api("admin")
    first = admin.post("/definitions", data=upload(*folder("sua_doi_ke_hoach")), content_type="multipart/form-data")
    assert first.status_code == 201
    assert first.get_json() == {"definition_id": first.get_json()["definition_id"], "process": "sua_doi_ke_hoach",
                                "version": 1, "created": True}
    again = admin.post("/definitions", data=upload(*folder("sua_doi_ke_hoach")), content_type="multipart/form-data")
    assert again.status_code == 200 and again.get_json()["created"] is False and again.get_json()["version"] == 1
    listed = api("nn.cv").get("/definitions").get_json()["items"]
    assert [(d["process"], d["version"], d["latest"]) for d in listed] == [("sua_doi_ke_hoach", 1, True)]
    assert listed[0]["title_vi"] == "Đề xuất sửa đổi, bổ sung kế hoạch"
    assert listed[0]["deployed_by"]["username"] == "admin"


def test_a_raw_bpmn_body_deploys_under_its_process_id_or_the_given_key(api):
    admin = api("admin")
    raw = admin.post("/definitions", data=samples.approval("phe_duyet"), content_type="application/xml")
    assert raw.status_code == 201 and raw.get_json()["process"] == "phe_duyet"
    keyed = admin.post("/definitions?key=quy_trinh_moi", data=samples.approval("khac"),
                       content_type="application/octet-stream")
    assert keyed.status_code == 201 and keyed.get_json()["process"] == "quy_trinh_moi"
    assert len(api("nn.cv").get("/definitions?process=phe_duyet").get_json()["items"]) == 1


def test_a_form_and_its_model_deploy_together_then_a_case_starts(api):
    admin = api("admin")
    response = admin.post("/definitions", data=upload(("duyet.bpmn", samples.approval(form="trinh.json")),
                                                      ("trinh.json", json.dumps(FORM).encode())),
                          content_type="multipart/form-data")
    assert response.status_code == 201 and response.get_json()["process"] == "duyet"
    assert api("nn.cv").post("/instances", json={"process": "duyet"}).status_code == 201


def test_staff_and_supervisors_may_not_deploy(api):
    for name in ("nn.cv", "nn.ld", "ubnd.ld"):
        response = api(name).post("/definitions", data=upload(*folder("sua_doi_ke_hoach")),
                                  content_type="multipart/form-data")
        assert response.status_code == 403, name
    assert api("admin").get("/definitions").get_json()["items"] == []


def test_an_invalid_model_is_422_with_the_reason_in_vietnamese(api):
    admin = api("admin")
    broken = admin.post("/definitions", data=b"<bpmn:definitions>khong dong", content_type="application/xml")
    assert broken.status_code == 422
    error = error_of(broken)
    assert error["code"] == "invalid_model" and "không phải XML hợp lệ" in error["message"]
    missing_form = admin.post("/definitions", data=upload(("duyet.bpmn", samples.approval(form="thieu.json"))),
                              content_type="multipart/form-data")
    assert missing_form.status_code == 422 and "thieu.json" in error_of(missing_form)["message"]
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    doctype = admin.post("/definitions?key=bom", data=bomb, content_type="application/xml")
    assert doctype.status_code == 422 and "DOCTYPE" in error_of(doctype)["message"]
    assert admin.get("/definitions").get_json()["items"] == []


def test_an_oversize_upload_is_413_and_stores_nothing(api, engine):
    limit = engine.settings.max_upload_bytes
    big = b"<x>" + b"a" * limit + b"</x>"
    admin = api("admin")
    raw = admin.post("/definitions?key=to", data=big, content_type="application/xml")
    assert raw.status_code == 413 and error_of(raw)["code"] == "too_large"
    multipart = admin.post("/definitions", data=upload(("to.bpmn", big)), content_type="multipart/form-data")
    assert multipart.status_code == 413
    json_body = admin.post("/instances", data=b'{"process": "' + b"x" * limit + b'"}',
                           content_type="application/json")
    assert json_body.status_code == 413 and error_of(json_body)["code"] == "too_large"
    assert admin.get("/definitions").get_json()["items"] == []


def test_upload_shape_errors(api):
    admin = api("admin")
    assert admin.post("/definitions", data={}, content_type="multipart/form-data").status_code == 400
    no_name = admin.post("/definitions", data={"files": [(io.BytesIO(b"<x/>"), "")]},
                         content_type="multipart/form-data")
    assert no_name.status_code == 400
    assert admin.post("/definitions", json={"files": []}).status_code == 415
    assert admin.post("/definitions", data=b"", content_type="application/xml").status_code == 400
    bad_key = admin.post("/definitions", data=upload(("a.bpmn", samples.approval()), key="khóa có dấu"),
                         content_type="multipart/form-data")
    assert "key" in error_of(bad_key)["details"]
    not_bpmn = admin.post("/definitions", data=upload(("ghi_chu.txt", b"abc")), content_type="multipart/form-data")
    assert not_bpmn.status_code == 422
