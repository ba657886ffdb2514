"""Runtime actions: permissions, claims, reassignment, substitutes, admin actions, messages, bad input."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from engine import directory, serialization
from engine.definitions import Bundle
from engine.errors import Conflict, Forbidden, InvalidInput, NotFound
from engine.models import AuditEvent, HumanTask, Instance, MessageSubscription
from tests.engine import bpmn_samples as samples
from tests.engine.helpers import audit_actions, instance, only_open_task, open_tasks

FORM = {
    "type": "object",
    "required": ["noi_dung", "so_tien"],
    "properties": {
        "noi_dung": {"type": "string", "title": "Nội dung", "minLength": 3},
        "so_tien": {"type": "integer", "title": "Số tiền", "minimum": 0},
    },
}


@pytest.fixture
def duyet(engine, people):
    b = Bundle(key="duyet")
    b.xml = {"duyet.bpmn": samples.approval(form="trinh.json")}
    b.forms = {"trinh.json": FORM}
    engine.deploy_bundle(b)
    return engine.start_instance(people["nn.cv"], "duyet")


def snapshot(engine, iid):
    inst = instance(engine, iid)
    tasks = [(t.id, t.state, t.assignee_id) for t in open_tasks(engine, iid)]
    return inst.version, inst.state, tasks, len(audit_actions(engine, iid))


def test_invalid_form_data_gets_a_message_per_field_and_changes_nothing(engine, people, duyet):
    task = only_open_task(engine, duyet, "submit")
    before = snapshot(engine, duyet)
    with pytest.raises(InvalidInput) as err:
        engine.complete_task(people["nn.cv"], task.id, {"noi_dung": "ab", "so_tien": -5})
    assert set(err.value.details) == {"noi_dung", "so_tien"}
    assert "ít nhất 3 ký tự" in err.value.details["noi_dung"]
    assert "từ 0 trở lên" in err.value.details["so_tien"]
    with pytest.raises(InvalidInput) as err:
        engine.complete_task(people["nn.cv"], task.id, {"noi_dung": "đủ dài"})
    assert "bắt buộc" in err.value.details["so_tien"]
    assert snapshot(engine, duyet) == before


def test_a_typename_key_is_refused_because_it_would_make_the_case_unloadable(engine, people, duyet):
    task = only_open_task(engine, duyet, "submit")
    before = snapshot(engine, duyet)
    with pytest.raises(InvalidInput) as err:
        engine.complete_task(people["nn.cv"], task.id, {"noi_dung": "abc", "so_tien": 1,
                                                        "kem_theo": [{"typename": "Invoice"}]})
    assert "/kem_theo/0/typename" in err.value.details
    assert snapshot(engine, duyet) == before


def test_unknown_task_id_is_not_found(engine, people, duyet):
    with pytest.raises(NotFound):
        engine.complete_task(people["nn.cv"], "0" * 32, {})


def test_another_units_staff_cannot_complete_the_task(engine, people, duyet):
    task = only_open_task(engine, duyet, "submit")
    before = snapshot(engine, duyet)
    with pytest.raises(Forbidden):
        engine.complete_task(people["yt.cv"], task.id, {"noi_dung": "abc", "so_tien": 1})
    with pytest.raises(Forbidden):  # a supervisor is not staff: the lane says staff
        engine.complete_task(people["nn.ld"], task.id, {"noi_dung": "abc", "so_tien": 1})
    assert snapshot(engine, duyet) == before


def test_a_completed_task_cannot_be_completed_again(engine, people, duyet):
    task = only_open_task(engine, duyet, "submit")
    engine.complete_task(people["nn.cv"], task.id, {"noi_dung": "abc", "so_tien": 1})
    with pytest.raises(Conflict):
        engine.complete_task(people["nn.cv"], task.id, {"noi_dung": "abc", "so_tien": 1})


def test_a_stale_expected_version_is_a_conflict(engine, people, duyet):
    task = only_open_task(engine, duyet, "submit")
    version = instance(engine, duyet).version
    engine.claim(people["nn.cv"], task.id)  # someone's change in between bumps the version? no: claims touch the task
    with pytest.raises(Conflict):
        engine.complete_task(people["nn.cv"], task.id, {"noi_dung": "abc", "so_tien": 1}, expected_version=version - 1)
    engine.complete_task(people["nn.cv"], task.id, {"noi_dung": "abc", "so_tien": 1},
                         expected_version=instance(engine, duyet).version)


def test_claim_makes_the_task_mine_and_others_in_the_unit_get_a_conflict(engine, people, duyet):
    task = only_open_task(engine, duyet, "submit")
    engine.claim(people["nn.cv"], task.id)
    with pytest.raises(Conflict):
        engine.claim(people["nn.cv2"], task.id)
    with pytest.raises(Forbidden):
        engine.complete_task(people["nn.cv2"], task.id, {"noi_dung": "abc", "so_tien": 1})
    engine.unclaim(people["nn.cv"], task.id)
    engine.claim(people["nn.cv2"], task.id)
    assert only_open_task(engine, duyet).assignee_id == people["nn.cv2"]
    assert audit_actions(engine, duyet).count("task_claimed") == 2


def test_only_a_supervisor_reassigns_and_only_within_the_organisation(engine, people, duyet):
    task = only_open_task(engine, duyet, "submit")
    with pytest.raises(Forbidden):
        engine.reassign(people["nn.cv"], task.id, people["nn.cv2"])
    with pytest.raises(InvalidInput):
        engine.reassign(people["nn.ld"], task.id, people["yt.cv"])
    engine.reassign(people["nn.ld"], task.id, people["nn.cv2"], note="Đồng chí Hà phụ trách")
    assert only_open_task(engine, duyet).assignee_id == people["nn.cv2"]
    with pytest.raises(Forbidden):
        engine.complete_task(people["nn.cv"], task.id, {"noi_dung": "abc", "so_tien": 1})
    engine.complete_task(people["nn.cv2"], task.id, {"noi_dung": "abc", "so_tien": 1})


def test_a_substitute_acts_for_the_absent_supervisor_and_the_audit_says_so(engine, people, duyet):
    engine.complete_task(people["nn.cv"], only_open_task(engine, duyet).id, {"noi_dung": "abc", "so_tien": 1})
    approve = only_open_task(engine, duyet, "approve")
    deputy = people.add("nn.pho", ("SO_NNPTNT", "staff"))
    with pytest.raises(Forbidden):
        engine.complete_task(deputy, approve.id, {})
    today = engine.today()
    with engine.db.write() as session:
        directory.add_substitute(session, people["nn.ld"], deputy, today - timedelta(days=1), today + timedelta(days=5), at=engine.now())
    engine.complete_task(deputy, approve.id, {})
    with engine.db.read() as session:
        row = session.get(HumanTask, approve.id)
        event = session.scalars(select(AuditEvent).where(AuditEvent.task_id == approve.id,
                                                         AuditEvent.action == "task_completed")).one()
    assert (row.completed_by, row.acting_for) == (deputy, people["nn.ld"])
    assert (event.actor_id, event.acting_for_id) == (deputy, people["nn.ld"])


def test_an_expired_substitution_no_longer_grants_anything(engine, people, duyet):
    engine.complete_task(people["nn.cv"], only_open_task(engine, duyet).id, {"noi_dung": "abc", "so_tien": 1})
    approve = only_open_task(engine, duyet, "approve")
    deputy = people.add("nn.pho", ("SO_NNPTNT", "staff"))
    with engine.db.write() as session:
        directory.add_substitute(session, people["nn.ld"], deputy, date(2026, 1, 1), date(2026, 1, 31), at=engine.now())
    with pytest.raises(Forbidden):
        engine.complete_task(deputy, approve.id, {})


def test_candidates_follow_membership_changes_after_the_task_was_created(engine, people, duyet):
    task = only_open_task(engine, duyet, "submit")
    newcomer = people.add("nn.moi")
    with pytest.raises(Forbidden):
        engine.complete_task(newcomer, task.id, {"noi_dung": "abc", "so_tien": 1})
    with engine.db.write() as session:
        from engine.models import User

        directory.add_position(session, session.get(User, newcomer), "SO_NNPTNT", "staff", at=engine.now())
    engine.complete_task(newcomer, task.id, {"noi_dung": "abc", "so_tien": 1})


def test_admin_suspends_resumes_and_cancels_and_others_may_not(engine, people, duyet):
    task = only_open_task(engine, duyet, "submit")
    with pytest.raises(Forbidden):
        engine.suspend(people["nn.ld"], duyet)
    engine.suspend(people["admin"], duyet, "Chờ chỉ đạo")
    with pytest.raises(Conflict) as err:
        engine.complete_task(people["nn.cv"], task.id, {"noi_dung": "abc", "so_tien": 1})
    assert "tạm dừng" in err.value.message
    engine.resume(people["admin"], duyet)
    engine.cancel(people["admin"], duyet, "Trùng hồ sơ")
    inst = instance(engine, duyet)
    assert inst.status == "cancelled"
    assert open_tasks(engine, duyet) == []
    with pytest.raises(Conflict):
        engine.complete_task(people["nn.cv"], task.id, {"noi_dung": "abc", "so_tien": 1})
    assert audit_actions(engine, duyet)[-3:] == ["instance_suspended", "instance_resumed", "instance_cancelled"]


def test_date_and_decimal_values_survive_the_database_round_trip(engine, people, duyet):
    iid = duyet
    with engine.db.read() as session:
        inst = session.get(Instance, iid)
        wf, parsed = engine._load(session, inst)
    wf.get_tasks()[0].data.update(han=date(2027, 2, 10), so_tien=Decimal("1500000.50"))
    state = serialization.dumps(wf, parsed.dialect)
    again = serialization.loads(state, parsed.dialect, inst.definition_id, parsed.spec_pair)
    assert again.get_tasks()[0].data["han"] == date(2027, 2, 10)
    assert again.get_tasks()[0].data["so_tien"] == Decimal("1500000.50")


def test_the_serialized_state_does_not_embed_the_spec(engine, people, duyet):
    state = instance(engine, duyet).state
    assert '"spec"' not in state and '"definition_id"' in state


def test_a_message_reaches_only_the_instance_with_the_matching_correlation(engine, people):
    b = Bundle(key="cho_tin")
    b.xml = {"cho_tin.bpmn": samples.message_wait()}
    engine.deploy_bundle(b)
    ids = {}
    for code in ("HS-001", "HS-002"):
        iid = engine.start_instance(people["nn.cv"], "cho_tin")
        engine.complete_task(people["nn.cv"], only_open_task(engine, iid).id, {"ma_ho_so": code})
        ids[code] = iid
    with engine.db.read() as session:
        subs = session.scalars(select(MessageSubscription).order_by(MessageSubscription.instance_id)).all()
    assert [(s.message_name, s.correlation_key) for s in subs] == [
        ("ket_qua", '{"ma_ho_so": "HS-001"}'), ("ket_qua", '{"ma_ho_so": "HS-002"}')]

    delivered = engine.deliver_message(None, "ket_qua", {"ma_ho_so": "HS-002"}, {"ma_ho_so": "HS-002", "dat": True})
    assert delivered == [ids["HS-002"]]
    assert only_open_task(engine, ids["HS-002"], "xu_ly")
    assert open_tasks(engine, ids["HS-001"]) == []  # still waiting
    with pytest.raises(NotFound):
        engine.deliver_message(None, "ket_qua", {"ma_ho_so": "HS-999"}, {})


def test_workflows_kept_live_between_actions_never_serve_a_stale_or_rolled_back_state(engine, people, duyet):
    from engine.db import Database
    from engine.runtime import Engine

    other = Engine(Database.from_settings(engine.settings), engine.settings, engine.clock)
    submit = only_open_task(engine, duyet, "submit")
    with pytest.raises(InvalidInput):  # loads (and takes) the live workflow, then rolls back
        engine.complete_task(people["nn.cv"], submit.id, {"noi_dung": "ab", "so_tien": 1})
    engine.complete_task(people["nn.cv"], submit.id, {"noi_dung": "đủ dài", "so_tien": 5})
    approve = only_open_task(engine, duyet, "approve")
    other.claim(people["nn.ld"], approve.id)  # another process changes the case meanwhile
    engine.complete_task(people["nn.ld"], approve.id, {})
    assert instance(engine, duyet).status == "completed"
    from tests.engine.helpers import round_trip

    round_trip(engine, duyet)
    other.db.dispose()
