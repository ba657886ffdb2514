"""`dieuphoi seed`: the directory and the bundled processes; with --demo, people and an office a few weeks in."""

from __future__ import annotations

import json
from uuid import UUID

import pytest
from sqlalchemy import func, select

from engine import directory, serialization
from engine.models import (
    AuditEvent,
    Comment,
    Definition,
    HumanTask,
    Instance,
    InstanceStatus,
    Organisation,
    OutboxMessage,
    TaskState,
    Timer,
    TimerState,
    User,
)
from engine.seed import seed, tax_code
from workflows import WORKFLOWS_DIR, process_folders

ORGS = json.loads((WORKFLOWS_DIR / "organisations.json").read_text(encoding="utf-8"))
USERS = json.loads((WORKFLOWS_DIR / "demo_users.json").read_text(encoding="utf-8"))["users"]
PROCESSES = {folder.name for folder in process_folders()}
_HELD = {(org, role) for user in USERS for org, role in user["positions"]}
# Every department, district, association and media organisation with demo people, but not UBND tỉnh or Sở KH&CN.
UNITS = {o["code"] for o in ORGS if o["kind"] in {"department", "district", "association", "media"}
         and o["code"] not in {"UBND_TINH", "SO_KHCN"} and {(o["code"], "staff"), (o["code"], "supervisor")} <= _HELD}
OPEN, RETURNED = TaskState.OPEN.value, TaskState.RETURNED.value


def _counts(engine) -> dict[str, int]:
    with engine.db.read() as session:
        return {model.__name__: session.scalar(select(func.count()).select_from(model))
                for model in (Organisation, User, Definition, Instance, HumanTask, Timer, OutboxMessage, AuditEvent,
                              Comment)}


def _tasks(engine, process_key: str, state: str | None = None) -> list[HumanTask]:
    with engine.db.read() as session:
        query = select(HumanTask).where(HumanTask.process_key == process_key)
        if state is not None:
            query = query.where(HumanTask.state == state)
        return list(session.scalars(query.order_by(HumanTask.created_at)))


def _instances(engine, process_key: str) -> list[Instance]:
    with engine.db.read() as session:
        return list(session.scalars(select(Instance).where(Instance.process_key == process_key)))


def _data(engine, task: HumanTask) -> dict:
    """The workflow data an open task sees (what its form and instructions show)."""
    with engine.db.read() as session:
        inst = session.get(Instance, task.instance_id)
        parsed = engine.definitions.get(session, inst.definition_id)
    wf = serialization.loads(inst.state, parsed.dialect, inst.definition_id, parsed.spec_pair)
    return wf.get_task_from_id(UUID(task.spiff_task_id)).data


def test_tax_codes_carry_their_check_digit():
    assert tax_code("590078123") == "5900781235"
    assert tax_code("590123456") == "5901234563"
    with pytest.raises(ValueError):
        tax_code("590034567")  # no check digit fits
    with pytest.raises(ValueError):
        tax_code("59003456")


def test_plain_seed_loads_organisations_and_processes_once(engine):
    report = seed(engine)
    assert report[0] == f"Đơn vị / organisations: {len(ORGS)}"
    assert sum("(mới / new)" in line for line in report) == len(PROCESSES) == 6
    before = _counts(engine)
    assert (before["Organisation"], before["Definition"], before["User"], before["Instance"]) == (len(ORGS), 6, 0, 0)
    with engine.db.read() as session:
        assert set(session.scalars(select(Definition.process_key))) == PROCESSES

    again = seed(engine)
    assert sum("(không đổi / unchanged)" in line for line in again) == 6
    assert _counts(engine) == before


def test_demo_is_an_office_a_few_weeks_into_the_campaign_and_seeding_again_adds_nothing(engine):
    now = engine.now()
    report = seed(engine, demo=True)
    assert f"Người dùng mẫu mới / new demo users: {len(USERS)}" in report
    counts = _counts(engine)
    assert (counts["Organisation"], counts["User"], counts["Definition"]) == (len(ORGS), len(USERS), 6)
    with engine.db.read() as session:
        assert set(session.scalars(select(User.username))) == {u["username"] for u in USERS}
        assert set(session.scalars(select(Instance.process_key))) == PROCESSES  # every process has cases

    # One campaign to every unit with people, launched by Sở KH&CN staff; every unit has had its draft.
    [campaign] = _instances(engine, "ke_hoach_hanh_dong")
    assert campaign.status == InstanceStatus.RUNNING.value and campaign.owner_org == "SO_KHCN"
    with engine.db.read() as session:
        initiator = session.get(User, campaign.initiator_id)
        assert {(p.org_code, p.role) for p in initiator.positions} == {("SO_KHCN", "staff")}
    plan_tasks = [t for t in _tasks(engine, "ke_hoach_hanh_dong") if t.instance_id == campaign.id]
    assert {t.org_code for t in plan_tasks if t.task_name == "soan_ke_hoach"} == UNITS
    open_tasks = [t for t in plan_tasks if t.state == OPEN]
    units_working = {t.business["don_vi"] for t in open_tasks}
    accepted = UNITS - units_working  # their unit subprocess ended: plan accepted by Sở KH&CN
    assert len(accepted) >= 5
    reviews_done = {t.business["don_vi"] for t in plan_tasks
                    if t.task_name == "xem_xet_ke_hoach" and t.state == TaskState.COMPLETED.value}
    assert accepted <= reviews_done
    stages = {name: {t.business["don_vi"] for t in open_tasks if t.task_name == name}
              for name in ("soan_ke_hoach", "lanh_dao_phe_duyet", "xem_xet_ke_hoach")}
    assert all(len(units) >= 2 for units in stages.values()), stages
    assert [t.task_name for t in open_tasks if t.task_name == "tong_hop_ke_hoach"] == []  # not every unit is done

    # Sent back: by unit supervisors and Sở KH&CN with return_task, and by the model's "request revision" path.
    returned = [t for t in plan_tasks if t.state == RETURNED]
    assert len(returned) >= 3 and all(t.return_reason for t in returned)
    reopened = [t for t in open_tasks if t.return_reason]
    assert {t.task_name for t in reopened} == {"soan_ke_hoach", "lanh_dao_phe_duyet"}
    assert all(t.assignee_id for t in reopened)  # back to the person who submitted it
    revisions = [t for t in open_tasks if t.task_name == "soan_ke_hoach"
                 and _data(engine, t).get("ket_qua_xem_xet") == "yeu_cau_chinh_sua"]
    assert revisions and all(_data(engine, t)["y_kien_xem_xet"] for t in revisions)

    # Past the campaign deadline: the drafts still open are overdue and were escalated, twice, with emails.
    drafts = [t for t in open_tasks if t.task_name == "soan_ke_hoach"]
    assert drafts and all(t.due_at < now for t in drafts)
    assert all(t.escalation_level == 2 for t in drafts)
    with engine.db.read() as session:
        escalations = set(session.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.kind == "escalation")))
        reminders = session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.kind == "reminder"))
    overdue = [t for t in open_tasks if t.due_at is not None and t.due_at < now]
    assert len(overdue) > len(drafts)  # supervisors and Sở KH&CN reviewers are late too
    for task in overdue:
        assert task.escalation_level >= 1
        assert {f"escalation:{task.id}:{level}" for level in range(1, task.escalation_level + 1)} <= escalations
    assert reminders > 0
    on_time = [t for t in open_tasks if t.due_at is not None and t.due_at >= now]
    assert on_time and all(t.escalation_level == 0 for t in on_time)

    # Budget estimates, one per stage.
    estimates = _instances(engine, "du_toan_kinh_phi")
    open_budget = [t for t in _tasks(engine, "du_toan_kinh_phi", OPEN)]
    assert {"lap_du_toan", "lanh_dao_duyet", "can_doi", "tham_dinh_tc", "quyet_dinh_phan_bo"} <= {
        t.task_name for t in open_budget}
    assert len({e.owner_org for e in estimates}) == len(estimates) >= 6
    [allocated] = [e for e in estimates if e.status == InstanceStatus.COMPLETED.value]
    assert allocated.business["so_tien_phan_bo"] > 0
    sent_back = [t for t in open_budget if t.task_name == "lap_du_toan" and _data(engine, t).get("ly_do_tra_lai")]
    assert len(sent_back) == 1 and _data(engine, sent_back[0])["buoc_tra_lai"] == "Sở KH&CN"

    # Technology transfer: one dossier waiting for its supplement (the 30-day limit still running), one further.
    transfer = {t.task_name: t for t in _tasks(engine, "ho_tro_chuyen_giao_cong_nghe", OPEN)}
    assert {"bo_sung_ho_so", "ubnd_phe_duyet"} <= set(transfer)
    with engine.db.read() as session:
        waiting = session.get(Instance, transfer["bo_sung_ho_so"].instance_id)
    assert waiting.business["ten_doanh_nghiep"] == "Công ty TNHH Nông nghiệp công nghệ cao Gia Lai"
    assert waiting.next_timer_at > now
    for dossier in _instances(engine, "ho_tro_chuyen_giao_cong_nghe"):
        code = dossier.business["ma_so_thue"]
        assert len(code) == 10 and tax_code(code[:9]) == code

    # Amendments, a dissemination campaign and a periodic report in progress.
    amendments = _instances(engine, "sua_doi_ke_hoach")
    assert len(amendments) >= 2 and all(a.status == InstanceStatus.RUNNING.value for a in amendments)
    assert [t.return_reason for t in _tasks(engine, "sua_doi_ke_hoach", RETURNED)]
    assert {"chi_dao_bao_chi", "bao_cao_don_vi"} <= {t.task_name for t in _tasks(engine, "tuyen_truyen", OPEN)}
    assert {"soan_bao_cao", "ky_duyet_bao_cao"} <= {t.task_name for t in _tasks(engine, "bao_cao_dinh_ky", OPEN)}
    for key in ("tuyen_truyen", "bao_cao_dinh_ky"):
        assert [i.status for i in _instances(engine, key)] == [InstanceStatus.RUNNING.value]

    # The replayed weeks end now: nothing in the future, nothing due left unfired, nothing failed.
    with engine.db.read() as session:
        for column in (Instance.created_at, HumanTask.created_at, AuditEvent.at, OutboxMessage.created_at,
                       Definition.deployed_at):
            assert session.scalar(select(func.max(column))) <= now
        assert session.scalar(select(func.min(Instance.created_at))) < now  # and they began weeks ago
        assert session.scalar(select(func.count(Timer.id)).where(
            Timer.state == TimerState.PENDING.value, Timer.due_at <= now)) == 0
        assert session.scalar(select(func.count(Timer.id)).where(Timer.state == TimerState.FAILED.value)) == 0
    assert (now - min(i.created_at for i in _instances(engine, "ke_hoach_hanh_dong"))).days >= 14

    again = seed(engine, demo=True)
    assert "Người dùng mẫu mới / new demo users: 0" in again
    assert "Hồ sơ mẫu đã có, không thêm / demo cases already present, nothing added" in again
    assert _counts(engine) == counts


def test_demo_cases_are_not_added_to_a_database_already_in_use(engine):
    seed(engine)
    with engine.db.write() as session:
        uid = directory.create_user(session, "so.yt.cv", "Hồ Minh Linh", positions=[("SO_YT", "staff")], at=engine.now()).id
    engine.start_instance(uid, "sua_doi_ke_hoach", {"noi_dung_de_xuat": "Điều chỉnh tiến độ đề tài cấp tỉnh"})

    report = seed(engine, demo=True)
    assert f"Người dùng mẫu mới / new demo users: {len(USERS) - 1}" in report
    assert any("không thêm hồ sơ mẫu" in line for line in report)
    assert _counts(engine)["Instance"] == 1
