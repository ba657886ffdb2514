"""Task routes: lists and scopes, detail with form, and every action with its permission boundary."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from engine import directory
from engine.models import HumanTask
from tests.webui.conftest import API, FORM, GOOD, INSTRUCTIONS, error_of, only_task, open_task_ids


def test_staff_sees_the_unit_task_in_the_inbox_and_other_units_do_not(api, engine, case):
    task_id = only_task(engine, case)
    items = api("nn.cv").get("/tasks").get_json()["items"]
    assert [t["id"] for t in items] == [task_id]
    assert items[0]["organisation"]["code"] == "SO_NNPTNT"
    assert items[0]["instance_title"] and items[0]["instance_status"] == "running"
    assert api("nn.cv2").get("/tasks").get_json()["items"][0]["id"] == task_id
    assert api("yt.cv").get("/tasks").get_json()["items"] == []
    assert api("nn.ld").get("/tasks").get_json()["items"] == []  # a staff step is not the supervisor's
    assert [t["id"] for t in api("nn.ld").get("/tasks?scope=group").get_json()["items"]] == [task_id]


def test_scope_all_is_for_administrators_and_supervisors_of_the_unit(api, engine, case):
    task_id = only_task(engine, case)
    assert error_of(api("nn.cv").get("/tasks?scope=all"))["code"] == "forbidden"
    assert api("nn.cv").get("/tasks?scope=all").status_code == 403
    assert [t["id"] for t in api("nn.ld").get("/tasks?scope=all").get_json()["items"]] == [task_id]
    assert api("yt.ld").get("/tasks?scope=all").get_json()["items"] == []
    assert [t["id"] for t in api("admin").get("/tasks?scope=all").get_json()["items"]] == [task_id]


def test_done_tasks_are_listed_for_who_completed_them(api, engine, case):
    task_id = only_task(engine, case)
    assert api("nn.cv").post(f"/tasks/{task_id}/complete", json={"data": GOOD}).status_code == 200
    done = api("nn.cv").get("/tasks?status=done").get_json()["items"]
    assert [(t["id"], t["state"], t["completed_by"]["username"]) for t in done] == [(task_id, "completed", "nn.cv")]
    assert api("nn.cv2").get("/tasks?status=done").get_json()["items"] == []
    assert [t["id"] for t in api("nn.cv2").get("/tasks?status=done&scope=group").get_json()["items"]] == [task_id]


def test_filters_by_process_organisation_assignee_and_overdue(api, engine, people, case):
    task_id = only_task(engine, case)
    nn = api("nn.ld")
    assert len(nn.get("/tasks?scope=all&process=duyet").get_json()["items"]) == 1
    assert nn.get("/tasks?scope=all&process=khac").get_json()["items"] == []
    assert len(nn.get("/tasks?scope=all&organisation=SO_NNPTNT").get_json()["items"]) == 1
    assert nn.get("/tasks?scope=all&organisation=SO_YT").get_json()["items"] == []
    assert nn.get("/tasks?scope=all&assignee=nn.cv").get_json()["items"] == []
    api("nn.cv").post(f"/tasks/{task_id}/claim")
    assert [t["id"] for t in nn.get("/tasks?scope=all&assignee=nn.cv").get_json()["items"]] == [task_id]
    assert nn.get("/tasks?scope=all&assignee=khong.co.ai").get_json()["items"] == []
    assert nn.get("/tasks?scope=all&overdue=true").get_json()["items"] == []
    with engine.db.write() as session:
        session.execute(update(HumanTask).where(HumanTask.id == task_id)
                        .values(due_at=engine.now() - timedelta(days=1)))
    overdue = nn.get("/tasks?scope=all&overdue=true").get_json()["items"]
    assert [(t["id"], t["overdue"]) for t in overdue] == [(task_id, True)]
    assert nn.get("/tasks?scope=all&overdue=false").get_json()["items"] == []
    with engine.db.write() as session:
        session.execute(update(HumanTask).where(HumanTask.id == task_id)
                        .values(due_at=engine.now() + timedelta(days=2)))
    assert nn.get("/tasks?scope=all&overdue=true").get_json()["items"] == []
    assert [t["id"] for t in nn.get("/tasks?scope=all&overdue=false").get_json()["items"]] == [task_id]


def test_pages_follow_the_cursor_without_gaps_or_repeats(api, engine, people, duyet, clock):
    started = []
    for _ in range(5):
        started.append(engine.start_instance(people["nn.cv"], "duyet"))
        clock.advance(minutes=1)
    engine.start_instance(people["nn.cv"], "duyet")  # two tasks created at the same instant: ids break the tie
    expected = [tid for iid in sorted(started) for tid in open_task_ids(engine, iid)]
    seen, cursor = [], None
    while True:
        query = "/tasks?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = api("nn.cv").get(query).get_json()
        seen += [t["id"] for t in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen[:5] == expected and len(seen) == len(set(seen)) == 6


@pytest.mark.parametrize("query, field", [
    ("scope=everyone", "scope"), ("status=closed", "status"), ("limit=0", "limit"), ("limit=201", "limit"),
    ("limit=abc", "limit"), ("overdue=yes", "overdue"), ("cursor=%21%21not-a-cursor", "cursor"),
])
def test_bad_list_parameters_are_400_with_the_field_named(api, case, query, field):
    response = api("nn.cv").get(f"/tasks?{query}")
    assert response.status_code == 400
    assert field in error_of(response)["details"]


def test_task_detail_has_form_schema_instructions_case_summary_and_actions(api, engine, case):
    task_id = only_task(engine, case)
    detail = api("nn.cv").get(f"/tasks/{task_id}").get_json()
    assert detail["form_schema"] == FORM
    assert detail["instructions"] == INSTRUCTIONS
    assert detail["instance"]["id"] == case and detail["instance"]["status"] == "running"
    assert detail["actions"] == {"complete": True, "claim": True, "unclaim": False, "return": True}
    assert detail["return_reason"] is None
    supervisor_view = api("nn.ld").get(f"/tasks/{task_id}").get_json()  # same unit: may see, may not act
    assert supervisor_view["actions"]["complete"] is False


def test_guessing_another_units_task_id_is_404_on_every_route(api, engine, case):
    task_id = only_task(engine, case)
    before = api("nn.cv").get(f"/tasks/{task_id}").get_json()
    for name in ("yt.cv", "yt.ld", "khcn.ld"):
        caller = api(name)
        assert error_of(caller.get(f"/tasks/{task_id}"))["code"] == "not_found"
        for action, body in (("claim", None), ("unclaim", None), ("complete", {"data": GOOD}),
                             ("return", {"reason": "Sai"}), ("reassign", {"username": "yt.cv"})):
            response = caller.post(f"/tasks/{task_id}/{action}", json=body)
            assert response.status_code == 404, (name, action, response.get_json())
    unknown, hidden = api("yt.cv").get(f"/tasks/{'f' * 32}"), api("yt.cv").get(f"/tasks/{task_id}")
    assert unknown.status_code == hidden.status_code == 404
    assert error_of(unknown)["message"] == error_of(hidden)["message"]  # nothing tells the two apart
    after = api("nn.cv").get(f"/tasks/{task_id}").get_json()
    assert after == before


def test_a_malformed_task_id_is_simply_not_found(api, case):
    for bad in ("abc", "F" * 32, "0" * 33, "%00"):
        assert api("nn.cv").get(f"/tasks/{bad}").status_code == 404


def test_a_visible_task_the_caller_may_not_work_on_is_403(api, engine, case):
    task_id = only_task(engine, case)
    response = api("nn.ld").post(f"/tasks/{task_id}/complete", json={"data": GOOD})
    assert response.status_code == 403
    assert "không được giao" in error_of(response)["message"]


def test_complete_moves_the_case_on_and_a_second_completion_is_409(api, engine, case):
    task_id = only_task(engine, case)
    version = api("nn.cv").get(f"/instances/{case}").get_json()["version"]
    response = api("nn.cv").post(f"/tasks/{task_id}/complete", json={"data": GOOD, "expected_version": version})
    assert response.status_code == 200
    body = response.get_json()
    assert body["task"]["state"] == "completed"
    assert [t["name"] for t in body["next_tasks"]] == ["approve"]
    assert body["instance"]["version"] > version
    again = api("nn.cv").post(f"/tasks/{task_id}/complete", json={"data": GOOD})
    assert again.status_code == 409
    assert error_of(again)["code"] == "conflict"


def test_a_stale_expected_version_is_409_and_changes_nothing(api, engine, case):
    task_id = only_task(engine, case)
    version = api("nn.cv").get(f"/instances/{case}").get_json()["version"]
    response = api("nn.cv").post(f"/tasks/{task_id}/complete", json={"data": GOOD, "expected_version": version + 5})
    assert response.status_code == 409
    assert open_task_ids(engine, case) == [task_id]


def test_invalid_form_data_is_400_with_a_message_per_field(api, engine, case):
    task_id = only_task(engine, case)
    response = api("nn.cv").post(f"/tasks/{task_id}/complete", json={"data": {"noi_dung": "ab", "so_tien": -1}})
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert set(error["details"]) == {"noi_dung", "so_tien"}
    assert "ít nhất 3 ký tự" in error["details"]["noi_dung"]
    missing = api("nn.cv").post(f"/tasks/{task_id}/complete", json={"data": {"noi_dung": "đủ dài"}})
    assert "bắt buộc" in error_of(missing)["details"]["so_tien"]
    assert open_task_ids(engine, case) == [task_id]


def test_wrong_body_types_are_400_per_field(api, engine, case):
    task_id = only_task(engine, case)
    response = api("nn.cv").post(f"/tasks/{task_id}/complete", json={"data": [1, 2], "expected_version": "một"})
    error = error_of(response)
    assert response.status_code == 400
    assert set(error["details"]) == {"data", "expected_version"}
    unknown = api("nn.cv").post(f"/tasks/{task_id}/complete", json={"data": GOOD, "dư": 1})
    assert error_of(unknown)["details"] == {"dư": "Trường không được phép. / Unexpected field."}


def test_claim_and_unclaim(api, engine, case):
    task_id = only_task(engine, case)
    claimed = api("nn.cv").post(f"/tasks/{task_id}/claim")
    assert claimed.status_code == 200
    assert claimed.get_json()["task"]["assignee"]["username"] == "nn.cv"
    assert api("nn.cv2").post(f"/tasks/{task_id}/claim").status_code == 409
    assert api("nn.cv2").get("/tasks").get_json()["items"] == []
    assert api("nn.cv2").post(f"/tasks/{task_id}/unclaim").status_code == 403
    released = api("nn.cv").post(f"/tasks/{task_id}/unclaim", json={})
    assert released.status_code == 200 and released.get_json()["task"]["assignee"] is None
    assert api("nn.cv2").post(f"/tasks/{task_id}/claim").status_code == 200


def test_return_sends_the_work_back_with_the_reason_shown_on_the_reopened_task(api, engine, case):
    submit = only_task(engine, case)
    api("nn.cv").post(f"/tasks/{submit}/complete", json={"data": GOOD})
    approve = only_task(engine, case)
    assert api("nn.ld").post(f"/tasks/{approve}/return", json={}).status_code == 400
    assert "reason" in error_of(api("nn.ld").post(f"/tasks/{approve}/return", json={"reason": ""}))["details"]
    response = api("nn.ld").post(f"/tasks/{approve}/return", json={"reason": "Bổ sung báo giá"})
    assert response.status_code == 200
    reopened = response.get_json()["next_tasks"][0]
    assert reopened["name"] == "submit" and reopened["return_reason"] == "Bổ sung báo giá"
    assert response.get_json()["task"]["state"] == "returned"
    detail = api("nn.cv").get(f"/tasks/{reopened['id']}").get_json()
    assert detail["return_reason"] == "Bổ sung báo giá"
    assert isinstance(detail["data"], dict)


def test_reassign_by_the_units_supervisor_within_the_unit(api, engine, people, case):
    task_id = only_task(engine, case)
    assert api("nn.cv").post(f"/tasks/{task_id}/reassign", json={"username": "nn.cv2"}).status_code == 403
    outsider = api("nn.ld").post(f"/tasks/{task_id}/reassign", json={"username": "yt.cv"})
    assert outsider.status_code == 400
    unknown = api("nn.ld").post(f"/tasks/{task_id}/reassign", json={"username": "khong.co"})
    assert error_of(unknown)["details"] == {"username": "Không có người dùng 'khong.co'. / No such user."}
    both = api("nn.ld").post(f"/tasks/{task_id}/reassign", json={"username": "nn.cv2", "user_id": 1})
    assert both.status_code == 400
    ok = api("nn.ld").post(f"/tasks/{task_id}/reassign", json={"user_id": people["nn.cv2"], "note": "Anh Hà làm"})
    assert ok.status_code == 200 and ok.get_json()["task"]["assignee"]["username"] == "nn.cv2"
    assert api("nn.cv").post(f"/tasks/{task_id}/complete", json={"data": GOOD}).status_code == 403
    assert api("nn.cv2").post(f"/tasks/{task_id}/complete", json={"data": GOOD}).status_code == 200


def test_a_substitute_sees_and_completes_the_absent_supervisors_task(api, engine, people, case):
    api("nn.cv").post(f"/tasks/{only_task(engine, case)}/complete", json={"data": GOOD})
    approve = only_task(engine, case)
    deputy = people.add("yt.pho", ("SO_YT", "staff"))  # another unit: sees nothing of the case by default
    assert api("yt.pho").get(f"/tasks/{approve}").status_code == 404
    today = engine.today()
    with engine.db.write() as session:
        directory.add_substitute(session, people["nn.ld"], deputy, today, today + timedelta(days=3), at=engine.now())
    assert [t["id"] for t in api("yt.pho").get("/tasks").get_json()["items"]] == [approve]
    assert api("yt.pho").get(f"/tasks/{approve}").get_json()["actions"]["complete"] is True
    assert api("yt.pho").post(f"/tasks/{approve}/complete", json={}).status_code == 200
    history = api("admin").get(f"/instances/{case}").get_json()["history"]
    done = [e for e in history if e["action"] == "task_completed" and e["task_id"] == approve][0]
    assert done["actor"]["username"] == "yt.pho" and done["acting_for"]["username"] == "nn.ld"


def test_actions_on_a_suspended_case_are_409(api, engine, case):
    task_id = only_task(engine, case)
    assert api("admin").post(f"/instances/{case}/suspend", json={"reason": "Chờ"}).status_code == 200
    response = api("nn.cv").post(f"/tasks/{task_id}/complete", json={"data": GOOD})
    assert response.status_code == 409 and "tạm dừng" in error_of(response)["message"]


# ------------------------------------------------------------------ drafts
def _put(caller, path, **kw):
    return caller.client.put(API + path, headers=caller._headers(kw.pop("headers", None)), **kw)


def test_draft_routes_save_read_and_discard_without_validating(api, engine, people, case, clock):
    task_id = only_task(engine, case)
    empty = api("nn.cv").get(f"/tasks/{task_id}/draft")
    assert empty.status_code == 200
    assert empty.get_json() == {"task_id": task_id, "data": None, "saved_at": None, "saved_by": None}
    half = {"noi_dung": "ng", "so_tien": "chưa rõ"}  # fails the form, and that is fine for a draft
    saved = _put(api("nn.cv"), f"/tasks/{task_id}/draft", json={"data": half})
    assert saved.status_code == 200, saved.get_json()
    body = saved.get_json()
    assert body["data"] == half and body["saved_by"]["username"] == "nn.cv"
    assert body["saved_at"] == clock.now().isoformat()
    assert open_task_ids(engine, case) == [task_id]  # nothing submitted
    read = api("nn.cv2").get(f"/tasks/{task_id}/draft").get_json()
    assert read["data"] == half and read["saved_by"]["username"] == "nn.cv"
    gone = api("nn.cv2").delete(f"/tasks/{task_id}/draft")
    assert gone.status_code == 200 and gone.get_json()["data"] is None
    assert api("nn.cv").get(f"/tasks/{task_id}/draft").get_json()["data"] is None


def test_draft_routes_refuse_typename_bad_bodies_and_strangers(api, engine, case):
    task_id = only_task(engine, case)
    for body in ({"data": {"typename": "Decimal"}}, {"data": {"a": [{"typename": 1}]}}, {"data": []},
                 {"data": "x"}, {}, {"data": {}, "extra": 1}):
        response = _put(api("nn.cv"), f"/tasks/{task_id}/draft", json=body)
        assert response.status_code == 400, (body, response.get_json())
    assert "typename" in error_of(_put(api("nn.cv"), f"/tasks/{task_id}/draft",
                                       json={"data": {"typename": "x"}}))["message"]
    big = _put(api("nn.cv"), f"/tasks/{task_id}/draft", json={"data": {"ghi_chu": "x" * 300_000}})
    assert big.status_code == 413
    for name in ("yt.cv", "khcn.ld"):  # cannot see the case: not found
        assert _put(api(name), f"/tasks/{task_id}/draft", json={"data": {}}).status_code == 404
        assert api(name).get(f"/tasks/{task_id}/draft").status_code == 404
        assert api(name).delete(f"/tasks/{task_id}/draft").status_code == 404
    supervisor = _put(api("nn.ld"), f"/tasks/{task_id}/draft", json={"data": {"noi_dung": "x"}})
    assert supervisor.status_code == 403  # sees the case, may not complete the step
    assert api("nn.ld").get(f"/tasks/{task_id}/draft").status_code == 403
    assert api("nn.cv").get(f"/tasks/{task_id}/draft").get_json()["data"] is None  # nothing was saved
    assert api(None).get(f"/tasks/{task_id}/draft").status_code == 401


def test_a_completed_tasks_draft_is_gone_and_cannot_be_saved_again(api, engine, case):
    task_id = only_task(engine, case)
    assert _put(api("nn.cv"), f"/tasks/{task_id}/draft", json={"data": {"noi_dung": "Mua"}}).status_code == 200
    assert api("nn.cv").post(f"/tasks/{task_id}/complete", json={"data": GOOD}).status_code == 200
    assert api("nn.cv").get(f"/tasks/{task_id}/draft").get_json()["data"] is None
    late = _put(api("nn.cv"), f"/tasks/{task_id}/draft", json={"data": {"noi_dung": "muộn"}})
    assert late.status_code == 409 and error_of(late)["code"] == "conflict"
    assert api("nn.cv").delete(f"/tasks/{task_id}/draft").status_code == 409
