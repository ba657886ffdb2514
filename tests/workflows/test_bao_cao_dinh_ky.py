"""Periodic report: Sở KH&CN opens a reporting period; every unit drafts and signs off; Sở KH&CN aggregates;
UBND tỉnh receives (or asks for more)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from engine.errors import Forbidden, InvalidInput
from engine.models import HumanTask, Instance, InstanceStatus
from workflows import WORKFLOWS_DIR

KEY = "bao_cao_dinh_ky"
UNITS = ["SO_NNPTNT", "SO_YT", "UBND_TP_PLEIKU"]
PEOPLE = {"SO_NNPTNT": ("nn.cv", "nn.ld"), "SO_YT": ("yt.cv", "yt.ld"), "UBND_TP_PLEIKU": ("pleiku.cv", "pleiku.ld")}
PERIOD = {"ten_ky_bao_cao": "6 tháng đầu năm 2026", "so_van_ban": "520/SKHCN-VP", "han_nop": "2026-12-18",
          "don_vi_bao_cao": UNITS}


def report(unit: str) -> dict:
    return {"so_van_ban_bao_cao": f"31/BC-{unit}",
            "ket_qua_thuc_hien": f"{unit} đã triển khai các nhiệm vụ theo kế hoạch.",
            "so_nhiem_vu_hoan_thanh": 4, "so_nhiem_vu_dang_thuc_hien": 2, "kinh_phi_da_su_dung": 320_000_000}


@pytest.fixture
def opened(run, staff):
    run.deploy(KEY)
    run.start(staff["khcn.cv"], KEY, PERIOD)
    return run


def _draft_and_sign(run, staff, unit):
    cv, ld = PEOPLE[unit]
    run.complete(staff[cv], run.one("soan_bao_cao", unit), report(unit))
    sign = run.one("ky_duyet_bao_cao", unit)
    assert sign.role == "supervisor"
    run.complete(staff[ld], sign, {"y_kien_ky_duyet": "Đồng ý gửi Sở KH&CN."})


def test_each_unit_drafts_and_signs_off_then_khcn_aggregates_and_ubnd_receives(opened, staff):
    run = opened
    drafts = run.open("soan_bao_cao")
    assert sorted((t.org_code, t.role) for t in drafts) == sorted((u, "staff") for u in UNITS)
    assert {t.due_at for t in drafts} == {datetime(2026, 12, 18, 10, 0, tzinfo=timezone.utc)}  # han_nop 17:00
    assert run.instance().title == "Báo cáo định kỳ: 6 tháng đầu năm 2026"
    for unit in ["UBND_TP_PLEIKU", "SO_NNPTNT"]:
        _draft_and_sign(run, staff, unit)
    assert [t.org_code for t in run.open()] == ["SO_YT"]  # Sở KH&CN waits for the last unit
    _draft_and_sign(run, staff, "SO_YT")

    aggregate = run.only("tong_hop_bao_cao")
    assert (aggregate.org_code, aggregate.role) == ("SO_KHCN", "staff")
    reports = run.data(aggregate)["bao_cao_cac_don_vi"]
    assert {r["don_vi"]: r["so_van_ban"] for r in reports} == {u: f"31/BC-{u}" for u in UNITS}
    run.complete(staff["khcn.cv"], aggregate, {"so_van_ban_tong_hop": "600/BC-SKHCN",
                                               "noi_dung_tong_hop": "Tổng hợp báo cáo 6 tháng đầu năm 2026."})
    receipt = run.only("tiep_nhan_bao_cao")
    assert (receipt.org_code, receipt.role) == ("UBND_TINH", "leader")
    run.complete(staff["ubnd.ld"], receipt, {"ket_qua_tiep_nhan": "tiep_nhan"})
    assert run.instance().status == InstanceStatus.COMPLETED.value


def test_supervisor_return_reopens_only_that_units_draft(opened, staff):
    run = opened
    run.complete(staff["yt.cv"], run.one("soan_bao_cao", "SO_YT"), report("SO_YT"))
    others = {t.id for t in run.open() if t.org_code != "SO_YT"}
    reopened = run.step().return_task(staff["yt.ld"], run.one("ky_duyet_bao_cao", "SO_YT").id,
                                      "Bổ sung số liệu kinh phí")
    draft = run.one("soan_bao_cao", "SO_YT")
    assert (draft.id, draft.return_reason, draft.assignee_id) == (reopened, "Bổ sung số liệu kinh phí", staff["yt.cv"])
    assert {t.id for t in run.open() if t.org_code != "SO_YT"} == others
    with pytest.raises(Forbidden):  # the unit's other staff cannot take over a returned draft
        run.complete(staff["nn.cv"], draft, report("SO_YT"))


def test_ubnd_asks_for_more_and_khcn_aggregates_again(run, staff):
    run.deploy(KEY)
    run.start(staff["khcn.cv"], KEY, {**PERIOD, "don_vi_bao_cao": ["SO_NNPTNT"]})
    _draft_and_sign(run, staff, "SO_NNPTNT")
    first = run.only("tong_hop_bao_cao")
    run.complete(staff["khcn.cv"], first, {"so_van_ban_tong_hop": "600/BC-SKHCN",
                                           "noi_dung_tong_hop": "Tổng hợp báo cáo 6 tháng đầu năm 2026."})
    with pytest.raises(InvalidInput) as err:
        run.complete(staff["ubnd.ld"], run.only("tiep_nhan_bao_cao"), {"ket_qua_tiep_nhan": "yeu_cau_bo_sung"})
    assert "y_kien_ubnd" in err.value.details
    run.complete(staff["ubnd.ld"], run.only("tiep_nhan_bao_cao"),
                 {"ket_qua_tiep_nhan": "yeu_cau_bo_sung", "y_kien_ubnd": "Bổ sung đánh giá chỉ tiêu đổi mới công nghệ"})
    again = run.only("tong_hop_bao_cao")
    assert again.id != first.id and (again.org_code, again.role) == ("SO_KHCN", "staff")
    assert run.data(again)["y_kien_ubnd"] == "Bổ sung đánh giá chỉ tiêu đổi mới công nghệ"


def test_only_khcn_staff_open_a_period_for_valid_units(run, staff):
    run.deploy(KEY)
    with pytest.raises(Forbidden):
        run.start(staff["yt.ld"], KEY, PERIOD)
    with pytest.raises(InvalidInput) as err:
        run.start(staff["khcn.cv"], KEY, {**PERIOD, "don_vi_bao_cao": ["so_yt"], "han_nop": "20/06/2026"})
    assert set(err.value.details) == {"don_vi_bao_cao/0", "han_nop"}
    assert run.instance_count() == 0


def test_the_report_opens_a_period_every_six_months_and_can_be_started_by_hand(engine, staff, clock):
    """The bundled model's start event carries the R/P6M cycle; scheduled cases take the descriptor's data."""
    engine.deploy_path(WORKFLOWS_DIR / KEY)
    clock.advance(days=150)
    assert engine.fire_due_timers() == 0  # the first period ends after six months
    clock.advance(days=50)
    assert engine.fire_due_timers() >= 1
    with engine.db.read() as session:
        cases = list(session.scalars(select(Instance).where(Instance.process_key == KEY)))
        drafts = session.scalars(select(HumanTask.org_code).where(HumanTask.state == "open")).all()
    assert [(c.owner_org, c.initiator_id) for c in cases] == [("SO_KHCN", None)]
    assert "SO_YT" in drafts and "UBND_TP_PLEIKU" in drafts and "SO_KHCN" not in drafts
    manual = engine.start_instance(staff["khcn.cv"], KEY, PERIOD)  # a manual start does not wait for the cycle
    with engine.db.read() as session:
        assert session.scalar(select(func.count(HumanTask.id)).where(
            HumanTask.instance_id == manual, HumanTask.state == "open")) == len(UNITS)
