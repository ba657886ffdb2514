"""Case routes: start, list with filters and pages, detail with data and history, comments, admin actions."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from engine.models import HumanTask
from tests.webui.conftest import GOOD, error_of, only_task


def test_staff_start_a_case_and_get_its_first_task(api, duyet):
    response = api("nn.cv").post("/instances", json={"process": "duyet", "data": {"ghi_chu": "Đợt 1"}})
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "running" and body["process"] == "duyet"
    assert body["owner_org"]["code"] == "SO_NNPTNT" and body["initiator"]["username"] == "nn.cv"
    assert [t["name"] for t in body["open_tasks"]] == ["submit"]
    assert api("nn.cv").get(f"/instances/{body['id']}").get_json()["data"] == {"ghi_chu": "Đợt 1"}
    task = api("nn.cv").get(f"/tasks/{body['open_tasks'][0]['id']}").get_json()
    assert task["data"] == {"ghi_chu": "Đợt 1"}  # what the form is prefilled with


def test_start_refusals(api, duyet):
    assert api("nn.cv").post("/instances", json={"process": "khong_co"}).status_code == 404
    assert api("nn.cv").post("/instances", json={"process": "duyet", "owner_org": "SO_YT"}).status_code == 403
    unknown_org = api("nn.cv").post("/instances", json={"process": "duyet", "owner_org": "KHONG_CO"})
    assert unknown_org.status_code == 400 and "owner_org" in error_of(unknown_org)["details"]
    no_process = api("nn.cv").post("/instances", json={"data": {}})
    assert error_of(no_process)["details"] == {"process": "Trường này là bắt buộc. / This field is required."}
    reserved = api("nn.cv").post("/instances", json={"process": "duyet", "data": {"a": [{"typename": "x"}]}})
    assert reserved.status_code == 400 and "/a/0/typename" in error_of(reserved)["details"]
    assert api(None).post("/instances", json={"process": "duyet"}).status_code == 401


def test_the_list_shows_only_cases_the_caller_may_see(api, engine, people, duyet):
    nn = engine.start_instance(people["nn.cv"], "duyet")
    yt = engine.start_instance(people["yt.cv"], "duyet")
    assert [i["id"] for i in api("nn.cv2").get("/instances").get_json()["items"]] == [nn]
    assert [i["id"] for i in api("yt.ld").get("/instances").get_json()["items"]] == [yt]
    assert api("khcn.cv").get("/instances").get_json()["items"] == []
    assert [i["id"] for i in api("admin").get("/instances").get_json()["items"]] == [yt, nn]


def test_instance_filters_and_pages(api, engine, people, duyet, clock):
    ids = []
    for _ in range(3):
        ids.append(engine.start_instance(people["nn.cv"], "duyet"))
        clock.advance(minutes=5)
    admin = api("admin")
    assert len(admin.get("/instances?process=duyet&status=running").get_json()["items"]) == 3
    assert admin.get("/instances?status=completed").get_json()["items"] == []
    assert len(admin.get("/instances?organisation=SO_NNPTNT").get_json()["items"]) == 3
    assert admin.get("/instances?organisation=SO_YT").get_json()["items"] == []
    task_id = only_task(engine, ids[0])
    api("nn.cv2").post(f"/tasks/{task_id}/claim")
    assert [i["id"] for i in admin.get("/instances?assignee=nn.cv2").get_json()["items"]] == [ids[0]]
    with engine.db.write() as session:
        session.execute(update(HumanTask).where(HumanTask.id == task_id)
                        .values(due_at=engine.now() - timedelta(hours=1)))
    assert [i["id"] for i in admin.get("/instances?overdue=true").get_json()["items"]] == [ids[0]]
    assert [i["id"] for i in admin.get("/instances?overdue=false").get_json()["items"]] == [ids[2], ids[1]]
    first = admin.get("/instances?limit=2").get_json()
    second = admin.get(f"/instances?limit=2&cursor={first['next_cursor']}").get_json()
    assert [i["id"] for i in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None
    assert admin.get("/instances?status=unknown").status_code == 400


def test_detail_has_data_open_tasks_history_with_names_and_comments(api, engine, people, case, clock):
    task_id = only_task(engine, case)
    clock.advance(minutes=30)
    api("nn.cv").post(f"/tasks/{task_id}/complete", json={"data": GOOD})
    comment = api("nn.ld").post(f"/instances/{case}/comments", json={"body": "Đề nghị bổ sung báo giá."})
    assert comment.status_code == 201
    assert comment.get_json()["author"]["username"] == "nn.ld"
    detail = api("nn.cv").get(f"/instances/{case}").get_json()
    assert detail["data"]["noi_dung"] == GOOD["noi_dung"] and detail["data"]["so_tien"] == GOOD["so_tien"]
    assert [t["name"] for t in detail["open_tasks"]] == ["approve"]
    assert [t["name"] for t in detail["tasks"]] == ["submit", "approve"]
    actions = [e["action"] for e in detail["history"]]
    assert actions[:2] == ["instance_started", "task_created"] and "task_completed" in actions
    completed = next(e for e in detail["history"] if e["action"] == "task_completed")
    assert completed["actor"] == {"id": people["nn.cv"], "username": "nn.cv", "full_name": "Nn Cv"}
    assert completed["acting_for"] is None
    assert [c["body"] for c in detail["comments"]] == ["Đề nghị bổ sung báo giá."]
    assert detail["error"] is None


def test_guessing_another_units_case_id_is_404_like_a_missing_one(api, engine, case):
    for name in ("yt.cv", "yt.ld", "khcn.cv"):
        hidden = api(name).get(f"/instances/{case}")
        missing = api(name).get("/instances/999999")
        assert hidden.status_code == missing.status_code == 404
        assert error_of(hidden)["message"] == error_of(missing)["message"]
        assert api(name).post(f"/instances/{case}/comments", json={"body": "xem thử"}).status_code == 404
    assert api("yt.ld").post(f"/instances/{case}/cancel", json={}).status_code == 404
    assert api("nn.cv").get(f"/instances/{case}").status_code == 200


def test_bad_case_ids_are_not_found(api, case):
    for bad in ("abc", "0", "-1", "1.5", "99999999999999999999"):
        assert api("admin").get(f"/instances/{bad}").status_code == 404


def test_comment_validation(api, engine, case):
    assert api("nn.cv").post(f"/instances/{case}/comments", json={"body": ""}).status_code == 400
    assert api("nn.cv").post(f"/instances/{case}/comments", json={"body": "x" * 10001}).status_code == 400
    wrong_task = api("nn.cv").post(f"/instances/{case}/comments", json={"body": "về việc", "task_id": "a" * 32})
    assert error_of(wrong_task)["details"] == {"task_id": "Không thuộc hồ sơ. / Not in this case."}
    task_id = only_task(engine, case)
    ok = api("nn.cv").post(f"/instances/{case}/comments", json={"body": "về việc", "task_id": task_id})
    assert ok.status_code == 201 and ok.get_json()["task_id"] == task_id


def test_only_administrators_cancel_suspend_and_resume(api, engine, case):
    for action in ("cancel", "suspend", "resume"):
        response = api("nn.ld").post(f"/instances/{case}/{action}", json={"reason": "thử"})
        assert response.status_code == 403, action
    admin = api("admin")
    assert admin.post(f"/instances/{case}/resume").status_code == 409  # it is running
    assert admin.post(f"/instances/{case}/suspend", json={"reason": "Chờ chỉ đạo"}).get_json()["status"] == "suspended"
    assert admin.post(f"/instances/{case}/resume").get_json()["status"] == "running"
    cancelled = admin.post(f"/instances/{case}/cancel", json={"reason": "Trùng"})
    assert cancelled.get_json()["status"] == "cancelled" and cancelled.get_json()["open_tasks"] == []
    assert admin.post(f"/instances/{case}/cancel").status_code == 409
    actions = [e["action"] for e in admin.get(f"/instances/{case}").get_json()["history"]]
    assert actions[-3:] == ["instance_suspended", "instance_resumed", "instance_cancelled"]
