"""Dissemination campaign: draft and approve at Sở KH&CN; press (Sở TT&TT) and units report in parallel; aggregate."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from engine.errors import Forbidden, InvalidInput
from engine.models import InstanceStatus

KEY = "tuyen_truyen"
UNITS = ["SO_NNPTNT", "SO_YT", "UBND_TP_PLEIKU"]
STAFF_OF = {"SO_NNPTNT": "nn.cv", "SO_YT": "yt.cv", "UBND_TP_PLEIKU": "pleiku.cv"}
CONTENT = {
    "noi_dung_tuyen_truyen": "Quán triệt Kết luận 50-KL/TW về phát triển khoa học và công nghệ đến cán bộ, công chức.",
    "hinh_thuc": ["hoi_nghi", "bao_chi"],
    "thoi_gian_bat_dau": "2026-12-01",
    "thoi_gian_ket_thuc": "2027-03-31",
    "don_vi_tham_gia": UNITS,
}
PRESS = {"so_van_ban_chi_dao": "88/STTTT-TTBCXB", "co_quan_bao_chi": ["Báo Gia Lai", "Đài PT-TH Gia Lai"],
         "so_tin_bai": 12, "so_phong_su": 4}
REPORTS = {"SO_NNPTNT": (3, 120), "SO_YT": (5, 300), "UBND_TP_PLEIKU": (2, 80)}


@pytest.fixture
def approved(run, staff):
    """A campaign whose content the Sở KH&CN supervisor has approved."""
    run.deploy(KEY)
    run.start(staff["khcn.cv"], KEY, {"ten_dot_tuyen_truyen": "Quán triệt Kết luận 50 năm 2026", "nam": 2026})
    run.complete(staff["khcn.cv"], run.only("soan_noi_dung"), CONTENT)
    approval = run.only("phe_duyet_noi_dung")
    assert (approval.org_code, approval.role) == ("SO_KHCN", "supervisor")
    run.complete(staff["khcn.ld"], approval, {"y_kien_phe_duyet": "Đồng ý triển khai."})
    return run


def _report(run, staff, unit):
    sessions, attendees = REPORTS[unit]
    run.complete(staff[STAFF_OF[unit]], run.one("bao_cao_don_vi", unit),
                 {"so_buoi": sessions, "so_nguoi_tham_du": attendees})


def test_approval_opens_the_press_task_and_one_report_per_unit(approved, staff):
    run = approved
    press = run.one("chi_dao_bao_chi", "SO_TTTT")
    assert press.role == "staff"
    reports = run.open("bao_cao_don_vi")
    assert sorted((t.org_code, t.role) for t in reports) == sorted((u, "staff") for u in UNITS)
    end_of_campaign = datetime(2027, 3, 31, 10, 0, tzinfo=timezone.utc)  # 31/03/2027 17:00 in Hanoi
    assert {t.due_at for t in reports} == {press.due_at} == {end_of_campaign}
    assert sorted(t.task_name for t in run.open()) == ["bao_cao_don_vi"] * 3 + ["chi_dao_bao_chi"]
    with pytest.raises(Forbidden):  # a unit reports only for itself
        run.complete(staff["nn.cv"], run.one("bao_cao_don_vi", "SO_YT"), {"so_buoi": 1, "so_nguoi_tham_du": 10})


def test_press_and_units_report_then_khcn_aggregates_and_ubnd_acknowledges(approved, staff):
    run = approved
    _report(run, staff, "SO_YT")
    run.complete(staff["tttt.cv"], run.one("chi_dao_bao_chi", "SO_TTTT"), PRESS)
    _report(run, staff, "UBND_TP_PLEIKU")
    assert [t.task_name for t in run.open()] == ["bao_cao_don_vi"]  # the join waits for the last unit
    _report(run, staff, "SO_NNPTNT")

    aggregate = run.only("tong_hop_ket_qua")
    assert (aggregate.org_code, aggregate.role) == ("SO_KHCN", "staff")
    data = run.data(aggregate)
    assert (data["tong_so_buoi"], data["tong_nguoi_tham_du"], data["so_don_vi_bao_cao"]) == (10, 500, 3)
    assert (data["so_tin_bai"], data["so_phong_su"]) == (12, 4)
    assert {r["don_vi"]: (r["so_buoi"], r["so_nguoi_tham_du"]) for r in data["bao_cao_cac_don_vi"]} == REPORTS
    run.complete(staff["khcn.cv"], aggregate, {"so_van_ban_bao_cao": "410/BC-SKHCN",
                                               "noi_dung_bao_cao": "Kết quả tuyên truyền Kết luận 50-KL/TW năm 2026."})

    receipt = run.only("tiep_nhan_bao_cao")
    assert (receipt.org_code, receipt.role) == ("UBND_TINH", "leader")
    run.complete(staff["ubnd.ld"], receipt, {"y_kien_chi_dao": "Tiếp tục đẩy mạnh tuyên truyền."})
    inst = run.instance()
    assert inst.status == InstanceStatus.COMPLETED.value
    assert inst.business["tong_nguoi_tham_du"] == 500
    assert inst.title == "Tuyên truyền Kết luận 50: Quán triệt Kết luận 50 năm 2026"


def test_supervisor_return_sends_the_content_back_before_anything_is_dispatched(run, staff):
    run.deploy(KEY)
    run.start(staff["khcn.cv"], KEY, {"ten_dot_tuyen_truyen": "Quán triệt Kết luận 50 năm 2026", "nam": 2026})
    draft = run.only("soan_noi_dung")
    assert (draft.org_code, draft.role) == ("SO_KHCN", "staff")
    run.complete(staff["khcn.cv"], draft, CONTENT)
    approval = run.only("phe_duyet_noi_dung")
    reopened = run.step().return_task(staff["khcn.ld"], approval.id, "Bổ sung hình thức tuyên truyền trên mạng xã hội")

    again = run.only("soan_noi_dung")  # neither the press nor any unit has been asked yet
    assert again.id == reopened and again.return_reason.startswith("Bổ sung hình thức")
    run.complete(staff["khcn.cv"], again, {**CONTENT, "hinh_thuc": ["hoi_nghi", "bao_chi", "mang_xa_hoi"]})
    run.complete(staff["khcn.ld"], run.only("phe_duyet_noi_dung"), {})
    assert len(run.open("bao_cao_don_vi")) == 3 and len(run.open("chi_dao_bao_chi")) == 1


def test_report_figures_are_validated(approved, staff):
    run = approved
    task = run.one("bao_cao_don_vi", "SO_NNPTNT")
    with pytest.raises(InvalidInput) as err:
        run.complete(staff["nn.cv"], task, {"so_buoi": -1, "so_nguoi_tham_du": 2.5})
    assert set(err.value.details) == {"so_buoi", "so_nguoi_tham_du"}
    with pytest.raises(InvalidInput) as err:  # fields outside the form (here: posing as another unit) are refused
        run.complete(staff["nn.cv"], task, {"so_buoi": 1, "so_nguoi_tham_du": 10, "don_vi": "SO_YT"})
    assert err.value.details["don_vi"].startswith("Trường không được phép")  # named: the field itself is refused
    with pytest.raises(InvalidInput) as err:
        run.complete(staff["tttt.cv"], run.one("chi_dao_bao_chi", "SO_TTTT"), {**PRESS, "co_quan_bao_chi": []})
    assert "co_quan_bao_chi" in err.value.details
