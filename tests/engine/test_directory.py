"""The org directory: merging one organisation into another while cases are running."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import directory
from engine.definitions import Bundle
from engine.errors import InvalidInput, NotFound
from engine.models import AuditEvent, HumanTask, Organisation, Position
from tests.engine import bpmn_samples as samples
from tests.engine.helpers import instance, only_open_task


@pytest.fixture
def cases(engine, people):
    """Two running cases owned by Sở TT&TT: one at the staff step, one waiting for Sở TT&TT's supervisor."""
    tt_cv = people.add("tt.cv", ("SO_TTTT", "staff"))
    people.add("tt.ld", ("SO_TTTT", "supervisor"))
    b = Bundle(key="duyet")
    b.xml = {"duyet.bpmn": samples.approval()}
    engine.deploy_bundle(b)
    first = engine.start_instance(tt_cv, "duyet")
    second = engine.start_instance(tt_cv, "duyet")
    engine.complete_task(tt_cv, only_open_task(engine, second).id, {})
    return first, second


def merge(engine, source="SO_TTTT", target="SO_KHCN"):
    with engine.db.write() as session:
        return directory.merge_organisation(session, source, target, actor_id=None, at=engine.now())


def test_merge_moves_people_open_tasks_and_running_cases_in_one_audited_operation(engine, people, cases):
    first, second = cases
    summary = merge(engine)
    assert summary == {"source": "SO_TTTT", "target": "SO_KHCN", "positions": 2, "open_tasks": 2, "cases": 2}
    assert only_open_task(engine, first).org_code == "SO_KHCN"
    assert (only_open_task(engine, second).org_code, only_open_task(engine, second).role) == ("SO_KHCN", "supervisor")
    assert instance(engine, first).owner_org == "SO_KHCN"
    with engine.db.read() as session:
        old = session.get(Organisation, "SO_TTTT")
        assert (old.active, old.merged_into) == (False, "SO_KHCN")  # still in the directory for history
        assert session.scalar(select(Position.org_code).where(Position.user_id == people["tt.cv"])) == "SO_KHCN"
        done = session.scalars(select(HumanTask).where(HumanTask.instance_id == second,
                                                       HumanTask.state == "completed")).one()
        assert done.org_code == "SO_TTTT"  # history keeps where the work was done
        assert session.scalar(select(AuditEvent.action).where(AuditEvent.action == "organisation_merged"))


def test_the_merged_unit_staff_finish_work_that_started_before_the_merge(engine, people, cases):
    first, second = cases
    merge(engine)
    engine.complete_task(people["tt.cv"], only_open_task(engine, first).id, {})
    assert only_open_task(engine, first, "approve").org_code == "SO_KHCN"
    engine.complete_task(people["khcn.ld"], only_open_task(engine, second).id, {})
    assert instance(engine, second).status == "completed"


def test_rules_naming_the_old_organisation_route_to_its_successor(engine, people):
    b = Bundle(key="lien_so", descriptor={"key": "lien_so", "lanes": {
        "Chuyên viên": {"org": "$owner", "role": "staff"}, "Lãnh đạo": {"org": "SO_TTTT", "role": "supervisor"}}})
    b.xml = {"lien_so.bpmn": samples.approval("lien_so")}
    engine.deploy_bundle(b)
    merge(engine)
    iid = engine.start_instance(people["nn.cv"], "lien_so")
    engine.complete_task(people["nn.cv"], only_open_task(engine, iid).id, {})
    assert only_open_task(engine, iid, "approve").org_code == "SO_KHCN"


def test_bad_merges_are_refused_and_change_nothing(engine, people, cases):
    with pytest.raises(InvalidInput):
        merge(engine, "SO_TTTT", "SO_TTTT")
    with pytest.raises(NotFound):
        merge(engine, "SO_TTTT", "KHONG_CO")
    assert only_open_task(engine, cases[0]).org_code == "SO_TTTT"
    merge(engine)
    with pytest.raises(InvalidInput):
        merge(engine, "SO_TTTT", "SO_TC")
    with pytest.raises(InvalidInput):
        merge(engine, "SO_TC", "SO_TTTT")  # into an organisation that no longer exists as such
