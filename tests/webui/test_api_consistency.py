"""The API's SQL visibility rules agree with the engine's, and racing writers get a 409, never a 500."""

from __future__ import annotations

import threading

from engine import queries
from engine.models import Instance, User
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
