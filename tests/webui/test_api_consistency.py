"""The API's SQL visibility rules agree with the engine's, and racing writers get a 409, never a 500."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import update

from engine import queries
from engine.models import HumanTask, Instance, User
from tests.webui.conftest import GOOD, only_task

USERS = ("nn.cv", "nn.cv2", "nn.ld", "yt.cv", "yt.ld", "khcn.cv", "khcn.ld", "ubnd.ld", "admin")


def test_list_and_detail_visibility_match_the_engines_rule(api, engine, people, duyet):
    cases = [engine.start_instance(people[name], "duyet") for name in ("nn.cv", "yt.cv", "yt.ld")]
    engine.complete_task(people["nn.cv"], only_task(engine, cases[0]), GOOD)  # now with the supervisor too
    with engine.db.read() as session:
        for name in USERS:
            user = session.get(User, people[name])
            expected = {iid for iid in cases if engine.may_view_instance(session, user.id, session.get(Instance, iid))}
            listed = {i["id"] for i in queries.instance_list(session, user, engine.now(),
                                                             queries.InstanceQuery(limit=100)).items}
            detail = {iid for iid in cases if queries.may_view_instance(session, user, iid, engine.today())}
            assert listed == detail == expected, name
            assert {i["id"] for i in api(name).get("/instances").get_json()["items"]} == expected, name


def test_two_people_completing_the_same_task_at_once_get_one_success_and_one_409(api, engine, case):
    task_id = only_task(engine, case)
    callers = [api("nn.cv"), api("nn.cv2")]
    barrier = threading.Barrier(len(callers))
    statuses = []

    def complete(caller):
        barrier.wait()
        statuses.append(caller.post(f"/tasks/{task_id}/complete", json={"data": GOOD}).status_code)

    threads = [threading.Thread(target=complete, args=(c,)) for c in callers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(statuses) == [200, 409]
    detail = api("nn.cv").get(f"/instances/{case}").get_json()
    assert [t["name"] for t in detail["open_tasks"]] == ["approve"]
    assert [e["action"] for e in detail["history"]].count("task_completed") == 1


def test_action_answers_read_in_sql_match_the_detail_endpoints(api, engine, people, duyet, clock):
    """The answers of start and of an action are read in plain SQL (queries.task_result and
    instance_brief); they must say exactly what the ORM-read detail endpoints say."""
    started = api("nn.cv").post("/instances", json={"process": "duyet"})
    assert started.status_code == 201, started.get_json()
    brief = started.get_json()
    detail = api("nn.cv").get(f"/instances/{brief['id']}").get_json()
    assert brief["open_tasks"] == detail["open_tasks"] and len(brief["open_tasks"]) == 1
    assert {k: v for k, v in brief.items() if k != "open_tasks"} == {k: detail[k] for k in brief if k != "open_tasks"}

    submit = brief["open_tasks"][0]["id"]
    with engine.db.write() as session:  # a deadline already passed: `due_at` and `overdue` in the answer
        session.execute(update(HumanTask).where(HumanTask.id == submit).values(due_at=engine.now() - timedelta(days=1)))
    clock.advance(hours=30)
    answer = api("nn.cv").post(f"/tasks/{submit}/complete", json={"data": GOOD}).get_json()
    [following] = answer["next_tasks"]
    for shown in (answer["task"], following):
        task = api("nn.ld").get(f"/tasks/{shown['id']}").get_json()
        assert shown == {k: task[k] for k in shown}, shown["name"]
    case = api("nn.ld").get(f"/instances/{brief['id']}").get_json()
    assert answer["instance"] == {k: case[k] for k in answer["instance"]}
    assert answer["task"]["completed_by"]["username"] == "nn.cv" and answer["task"]["state"] == "completed"
    assert answer["task"]["overdue"] is True and answer["task"]["due_at"]
    assert following["organisation"]["code"] and answer["instance"]["initiator"]["username"] == "nn.cv"

    finished = api("nn.ld").post(f"/tasks/{following['id']}/complete",
                                 json={"data": {"duyet": True}}).get_json()
    assert finished["next_tasks"] == [] and finished["instance"]["status"] == "completed"
    assert api("nn.cv").get(f"/instances/{brief['id']}").get_json()["open_tasks"] == []
