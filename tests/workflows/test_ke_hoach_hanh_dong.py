"""Action plans: Sở KH&CN launches for N units; each unit drafts and approves; Sở KH&CN reviews each; aggregates."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from engine.errors import Forbidden, InvalidInput
from engine.models import HumanTask, InstanceStatus, OutboxMessage, TaskState

KEY = "ke_hoach_hanh_dong"
UNITS = ["SO_NNPTNT", "SO_YT", "UBND_TP_PLEIKU"]
PEOPLE = {"SO_NNPTNT": ("nn.cv", "nn.ld"), "SO_YT": ("yt.cv", "yt.ld"), "UBND_TP_PLEIKU": ("pleiku.cv", "pleiku.ld")}
LAUNCH = {
    "ten_ke_hoach": "Thực hiện Kết luận 50-KL/TW giai đoạn 2026–2030",
    "so_van_ban": "215/SKHCN-QLKH",
    "han_nop": "2026-12-31",
    "don_vi_thuc_hien": UNITS,
}


def plan(unit: str, version: int = 1) -> dict:
    return {
        "so_van_ban_don_vi": f"{version}2/KH-{unit}",
        "noi_dung_ke_hoach": f"Kế hoạch hành động của {unit}: ứng dụng khoa học và công nghệ vào sản xuất.",
        "nhiem_vu": [{"ten_nhiem_vu": "Chuyển giao quy trình nhân giống cây dược liệu", "thoi_han": "2027-06-30",
                      "kinh_phi_du_kien": 150_000_000}],
    }


@pytest.fixture
def launched(run, staff):
    run.deploy(KEY)
    run.start(staff["khcn.cv"], KEY, LAUNCH)
    return run


def _to_review(run, staff, unit: str):
    """Draft and approve the plan of `unit`; returns its review task at Sở KH&CN."""
    cv, ld = PEOPLE[unit]
    run.complete(staff[cv], run.one("soan_ke_hoach", unit), plan(unit))
    run.complete(staff[ld], run.one("lanh_dao_phe_duyet", unit), {"y_kien_lanh_dao": "Đồng ý trình."})
    review = [t for t in run.open("xem_xet_ke_hoach") if t.business.get("don_vi") == unit]
    assert len(review) == 1
    return review[0]


def test_launch_opens_one_draft_per_chosen_unit_for_its_staff(launched, staff):
    run = launched
    drafts = run.open("soan_ke_hoach")
    assert sorted((t.org_code, t.role) for t in drafts) == sorted((u, "staff") for u in UNITS)
    assert all(t.business["don_vi"] == t.org_code for t in drafts)
    assert run.instance().title == "Kế hoạch hành động: Thực hiện Kết luận 50-KL/TW giai đoạn 2026–2030"
    with pytest.raises(Forbidden):  # another unit's staff cannot write this unit's plan
        run.complete(staff["yt.cv"], run.one("soan_ke_hoach", "SO_NNPTNT"), plan("SO_NNPTNT"))


def test_every_unit_drafts_approves_and_is_accepted_then_khcn_aggregates(launched, staff):
    run = launched
    # The units work independently and in any order; supervisor tasks land in each unit.
    for unit in ["SO_YT", "UBND_TP_PLEIKU", "SO_NNPTNT"]:
        cv, _ = PEOPLE[unit]
        run.complete(staff[cv], run.one("soan_ke_hoach", unit), plan(unit))
        approval = run.one("lanh_dao_phe_duyet", unit)
        assert approval.role == "supervisor"
    for unit in UNITS:
        _, ld = PEOPLE[unit]
        run.complete(staff[ld], run.one("lanh_dao_phe_duyet", unit), {})
    reviews = run.open("xem_xet_ke_hoach")
    assert {(t.org_code, t.role) for t in reviews} == {("SO_KHCN", "staff")}
    assert sorted(t.business["don_vi"] for t in reviews) == sorted(UNITS)
    for index, review in enumerate(reviews):
        run.complete(staff["khcn.cv"], review, {"ket_qua_xem_xet": "chap_thuan"})
        if index < len(reviews) - 1:
            assert run.open("tong_hop_ke_hoach") == []  # aggregation waits for every unit

    aggregate = run.only("tong_hop_ke_hoach")
    assert (aggregate.org_code, aggregate.role) == ("SO_KHCN", "staff")
    plans = run.data(aggregate)["ke_hoach_cac_don_vi"]
    assert sorted(p["don_vi"] for p in plans) == sorted(UNITS)
    assert {p["don_vi"]: p["so_van_ban"] for p in plans} == {u: f"12/KH-{u}" for u in UNITS}
    run.complete(staff["khcn.cv"], aggregate, {"so_van_ban_tong_hop": "300/BC-SKHCN",
                                               "noi_dung_tong_hop": "Tổng hợp kế hoạch hành động của 3 đơn vị."})
    inst = run.instance()
    assert inst.status == InstanceStatus.COMPLETED.value
    assert run.open() == []


def test_supervisor_return_sends_only_that_units_plan_back(launched, staff):
    run = launched
    run.complete(staff["nn.cv"], run.one("soan_ke_hoach", "SO_NNPTNT"), plan("SO_NNPTNT"))
    run.complete(staff["yt.cv"], run.one("soan_ke_hoach", "SO_YT"), plan("SO_YT"))
    yt_approval = run.one("lanh_dao_phe_duyet", "SO_YT")
    pleiku_draft = run.one("soan_ke_hoach", "UBND_TP_PLEIKU")

    reopened = run.step().return_task(staff["nn.ld"], run.one("lanh_dao_phe_duyet", "SO_NNPTNT").id,
                                      "Bổ sung kinh phí từng nhiệm vụ")
    again = run.one("soan_ke_hoach", "SO_NNPTNT")
    assert again.id == reopened
    assert again.return_reason == "Bổ sung kinh phí từng nhiệm vụ"
    assert again.assignee_id == staff["nn.cv"]
    # The other units are untouched: same open tasks as before.
    assert run.one("lanh_dao_phe_duyet", "SO_YT").id == yt_approval.id
    assert run.one("soan_ke_hoach", "UBND_TP_PLEIKU").id == pleiku_draft.id

    run.complete(staff["nn.cv"], again, plan("SO_NNPTNT", version=2))
    approval = run.one("lanh_dao_phe_duyet", "SO_NNPTNT")
    assert run.data(approval)["so_van_ban_don_vi"] == "22/KH-SO_NNPTNT"


def test_revision_request_loops_back_to_that_units_drafting_with_the_reason(launched, staff):
    run = launched
    review = _to_review(run, staff, "SO_YT")
    with pytest.raises(InvalidInput) as err:  # a revision request needs its content
        run.complete(staff["khcn.cv"], review, {"ket_qua_xem_xet": "yeu_cau_chinh_sua"})
    assert "y_kien_xem_xet" in err.value.details

    run.complete(staff["khcn.cv"], review, {"ket_qua_xem_xet": "yeu_cau_chinh_sua",
                                            "y_kien_xem_xet": "Làm rõ sản phẩm đầu ra của nhiệm vụ 1"})
    redraft = run.one("soan_ke_hoach", "SO_YT")
    assert redraft.role == "staff"
    data = run.data(redraft)
    assert (data["don_vi"], data["y_kien_xem_xet"]) == ("SO_YT", "Làm rõ sản phẩm đầu ra của nhiệm vụ 1")
    assert run.open("xem_xet_ke_hoach") == []

    review = _to_review(run, staff, "SO_YT")
    run.complete(staff["khcn.cv"], review, {"ket_qua_xem_xet": "chap_thuan"})
    # Sở Y tế is done; the other two units are still drafting, so nothing is aggregated yet.
    assert sorted((t.task_name, t.org_code) for t in run.open()) == [("soan_ke_hoach", "SO_NNPTNT"),
                                                                     ("soan_ke_hoach", "UBND_TP_PLEIKU")]


def test_only_khcn_staff_launch_and_the_unit_list_is_checked(run, staff):
    run.deploy(KEY)
    with pytest.raises(Forbidden):
        run.start(staff["nn.cv"], KEY, LAUNCH)
    with pytest.raises(InvalidInput) as err:
        run.start(staff["khcn.cv"], KEY, {**LAUNCH, "don_vi_thuc_hien": []})
    assert "don_vi_thuc_hien" in err.value.details
    with pytest.raises(InvalidInput) as err:  # an organisation that is not in the directory
        run.start(staff["khcn.cv"], KEY, {**LAUNCH, "don_vi_thuc_hien": ["SO_YT", "SO_KHONG_CO"]})
    assert "SO_KHONG_CO" in err.value.message
    assert run.instance_count() == 0


def test_returned_task_row_keeps_its_reason(launched, staff):
    run = launched
    run.complete(staff["pleiku.cv"], run.one("soan_ke_hoach", "UBND_TP_PLEIKU"), plan("UBND_TP_PLEIKU"))
    approval = run.one("lanh_dao_phe_duyet", "UBND_TP_PLEIKU")
    run.step().return_task(staff["pleiku.ld"], approval.id, "Thiếu nhiệm vụ chuyển đổi số")
    with run.engine.db.read() as session:
        row = session.get(HumanTask, approval.id)
    assert (row.state, row.return_reason) == (TaskState.RETURNED.value, "Thiếu nhiệm vụ chuyển đổi số")


def _recipients(run, dedupe_key: str) -> list[str]:
    with run.engine.db.read() as session:
        return session.scalar(select(OutboxMessage.recipients).where(OutboxMessage.dedupe_key == dedupe_key))


def test_unit_draft_is_due_on_the_plan_deadline_then_escalates_to_the_unit_and_to_khcn(launched, staff, clock):
    run = launched
    draft = run.one("soan_ke_hoach", "SO_YT")
    assert draft.due_at == datetime(2026, 12, 31, 10, 0, tzinfo=timezone.utc)  # han_nop, 17:00 in Hanoi

    clock.set(datetime(2026, 12, 31, 10, 1, tzinfo=timezone.utc))
    run.step().fire_due_timers()
    assert run.one("soan_ke_hoach", "SO_YT").escalation_level == 1
    assert _recipients(run, f"escalation:{draft.id}:1") == ["yt.ld@dieuphoi.local"]

    clock.advance(days=10)  # more than 3 working days after the deadline
    run.step().fire_due_timers()
    assert run.one("soan_ke_hoach", "SO_YT").escalation_level == 2
    assert _recipients(run, f"escalation:{draft.id}:2") == ["khcn.ld@dieuphoi.local"]
