"""Technology-transfer support: one-stop desk, supplement with a 30-day timeout, appraisal, council, director,
UBND tỉnh above 500 million đồng, funding, contract, acceptance."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.errors import InvalidInput
from engine.models import HumanTask, InstanceStatus, TaskState
from tests.conftest import T0
from tests.engine.helpers import audit_actions

KEY = "ho_tro_chuyen_giao_cong_nghe"
DOSSIER = {
    "ten_doanh_nghiep": "Công ty TNHH Dược liệu Tây Nguyên",
    "ma_so_thue": "5900123456",
    "dia_chi": "Phường Hội Thương, TP Pleiku",
    "cong_nghe": "Chiết xuất cao dược liệu bằng CO2 siêu tới hạn",
    "linh_vuc_uu_tien": "cong_nghiep_duoc_lieu",
    "so_tien_de_nghi": 800_000_000,
    "tep_dinh_kem": ["don-de-nghi.pdf", "thuyet-minh-cong-nghe.pdf", "giay-chung-nhan-dkkd.pdf"],
}
TAX_MESSAGE = "Mã số thuế phải gồm 10 hoặc 13 chữ số."


@pytest.fixture
def registered(run, staff):
    run.deploy(KEY)
    run.start(staff["khcn.cv"], KEY, DOSSIER)
    return run


def _complete_check(run, staff):
    check = run.only("kiem_tra_ho_so")
    assert (check.org_code, check.role) == ("SO_KHCN", "staff")
    run.complete(staff["khcn.cv"], check, {"ket_qua_kiem_tra": "day_du"})


def _to_director(run, staff):
    _complete_check(run, staff)
    run.complete(staff["khcn.cv"], run.only("tham_dinh_ho_so"), {
        "bao_cao_tham_dinh": "Công nghệ phù hợp định hướng phát triển dược liệu của tỉnh.",
        "de_xuat_tham_dinh": "de_nghi_ho_tro", "so_tien_tham_dinh_de_xuat": 700_000_000})
    run.complete(staff["khcn.cv"], run.only("y_kien_hoi_dong"), {
        "ket_luan_hoi_dong": "thong_qua", "y_kien_hoi_dong": "Hội đồng thống nhất đề nghị hỗ trợ.",
        "so_tien_hoi_dong_de_xuat": 650_000_000})
    decision = run.only("quyet_dinh_giam_doc")
    assert (decision.org_code, decision.role) == ("SO_KHCN", "supervisor")
    return decision


def _fund_contract_accept(run, staff):
    funding = run.only("xac_nhan_kinh_phi")
    assert (funding.org_code, funding.role) == ("SO_TC", "staff")
    run.complete(staff["tc.cv"], funding, {"nguon_kinh_phi": "su_nghiep_khcn", "so_van_ban_xac_nhan": "77/STC-HCSN"})
    contract = run.only("ky_hop_dong")
    assert (contract.org_code, contract.role) == ("SO_KHCN", "staff")
    run.complete(staff["khcn.cv"], contract, {"so_hop_dong": "05/2027/HĐ-KHCN", "ngay_ky_hop_dong": "2027-02-15",
                                              "thoi_gian_thuc_hien_thang": 12})
    run.complete(staff["khcn.cv"], run.only("nghiem_thu"), {"ket_qua_nghiem_thu": "dat",
                                                            "ngay_nghiem_thu": "2028-02-20"})


# 9 and 11 digits, the branch suffix with a hyphen, letter O for zero, empty, full-width digits (\d would take them)
BAD_TAX_CODES = ["590012345", "59001234567", "5900123456-001", "59OO123456", "", "５９００１２３４５６"]


@pytest.mark.parametrize("tax_code", BAD_TAX_CODES)
def test_tax_code_must_have_10_or_13_digits(run, staff, tax_code):
    run.deploy(KEY)
    with pytest.raises(InvalidInput) as err:
        run.start(staff["khcn.cv"], KEY, {**DOSSIER, "ma_so_thue": tax_code})
    assert err.value.details["ma_so_thue"].startswith(TAX_MESSAGE)
    assert run.instance_count() == 0


def test_registration_checks_the_whole_dossier(run, staff):
    run.deploy(KEY)
    bad = {**DOSSIER, "linh_vuc_uu_tien": "bat_dong_san", "so_tien_de_nghi": 0, "tep_dinh_kem": []}
    del bad["ten_doanh_nghiep"]
    with pytest.raises(InvalidInput) as err:
        run.start(staff["khcn.cv"], KEY, bad)
    assert set(err.value.details) == {"ten_doanh_nghiep", "linh_vuc_uu_tien", "so_tien_de_nghi", "tep_dinh_kem"}
    iid = run.start(staff["khcn.cv"], KEY, {**DOSSIER, "ma_so_thue": "5900123456001"})
    assert run.instance().title == "Hỗ trợ chuyển giao công nghệ: Công ty TNHH Dược liệu Tây Nguyên (MST 5900123456001)"
    assert iid and run.only("kiem_tra_ho_so").business["ma_so_thue"] == "5900123456001"


def test_above_the_threshold_ubnd_approves_then_funding_contract_and_acceptance(registered, staff):
    run = registered
    decision = _to_director(run, staff)
    run.complete(staff["khcn.ld"], decision, {"quyet_dinh_giam_doc": "ho_tro", "so_tien_ho_tro": 650_000_000,
                                              "so_quyet_dinh": "112/TTr-SKHCN"})
    approval = run.only("ubnd_phe_duyet")
    assert (approval.org_code, approval.role) == ("UBND_TINH", "leader")
    run.complete(staff["ubnd.ld"], approval, {"quyet_dinh_ubnd": "phe_duyet", "so_quyet_dinh_ubnd": "456/QĐ-UBND"})
    _fund_contract_accept(run, staff)
    inst = run.instance()
    assert inst.status == InstanceStatus.COMPLETED.value
    assert inst.business["so_tien_ho_tro"] == 650_000_000 and inst.business["ma_so_thue"] == "5900123456"
    assert run.data()["ket_qua_nghiem_thu"] == "dat"


@pytest.mark.parametrize("amount, needs_ubnd", [(500_000_001, True), (500_000_000, False), (300_000_000, False)])
def test_the_amount_decides_whether_ubnd_approves(registered, staff, amount, needs_ubnd):
    run = registered
    decision = _to_director(run, staff)
    run.complete(staff["khcn.ld"], decision, {"quyet_dinh_giam_doc": "ho_tro", "so_tien_ho_tro": amount,
                                              "so_quyet_dinh": "113/QĐ-SKHCN"})
    assert [t.task_name for t in run.open()] == ["ubnd_phe_duyet" if needs_ubnd else "xac_nhan_kinh_phi"]


def test_refusals_end_the_case(registered, staff):
    run = registered
    decision = _to_director(run, staff)
    run.complete(staff["khcn.ld"], decision, {"quyet_dinh_giam_doc": "ho_tro", "so_tien_ho_tro": 800_000_000,
                                              "so_quyet_dinh": "114/TTr-SKHCN"})
    with pytest.raises(InvalidInput) as err:
        run.complete(staff["ubnd.ld"], run.only("ubnd_phe_duyet"), {"quyet_dinh_ubnd": "khong_phe_duyet"})
    assert "y_kien_ubnd" in err.value.details
    run.complete(staff["ubnd.ld"], run.only("ubnd_phe_duyet"),
                 {"quyet_dinh_ubnd": "khong_phe_duyet", "y_kien_ubnd": "Chưa bố trí được nguồn kinh phí"})
    assert run.instance().status == InstanceStatus.COMPLETED.value
    assert run.open() == []


def test_unsupplemented_dossier_closes_itself_after_30_days(registered, staff, clock):
    run = registered
    run.complete(staff["khcn.cv"], run.only("kiem_tra_ho_so"), {
        "ket_qua_kiem_tra": "yeu_cau_bo_sung", "noi_dung_yeu_cau_bo_sung": "Bổ sung hợp đồng chuyển giao công nghệ"})
    supplement = run.only("bo_sung_ho_so")
    assert (supplement.org_code, supplement.role) == ("SO_KHCN", "staff")
    assert run.instance().next_timer_at == T0 + timedelta(days=30)

    clock.advance(days=29)
    assert run.step().fire_due_timers() == 0
    assert run.only("bo_sung_ho_so").id == supplement.id

    clock.advance(days=2)
    assert run.step().fire_due_timers() == 1
    inst = run.instance()
    assert inst.status == InstanceStatus.COMPLETED.value and inst.next_timer_at is None
    assert run.open() == []
    with run.engine.db.read() as session:
        assert session.get(HumanTask, supplement.id).state == TaskState.CANCELLED.value
    data = run.data()
    assert data["ho_so_bi_dong"] is True
    assert data["ly_do_dong_ho_so"].startswith("Quá 30 ngày")
    assert "timer_fired" in audit_actions(run.engine, run.instance_id)


def test_supplement_in_time_goes_back_to_the_check_and_disarms_the_timeout(registered, staff, clock):
    run = registered
    run.complete(staff["khcn.cv"], run.only("kiem_tra_ho_so"), {
        "ket_qua_kiem_tra": "yeu_cau_bo_sung", "noi_dung_yeu_cau_bo_sung": "Bổ sung báo cáo tài chính năm 2025"})
    clock.advance(days=10)
    with pytest.raises(InvalidInput):  # at least one document
        run.complete(staff["khcn.cv"], run.only("bo_sung_ho_so"), {"tep_bo_sung": []})
    run.complete(staff["khcn.cv"], run.only("bo_sung_ho_so"), {"tep_bo_sung": ["bao-cao-tai-chinh-2025.pdf"]})

    check = run.only("kiem_tra_ho_so")
    assert run.data(check)["tep_dinh_kem"] == [*DOSSIER["tep_dinh_kem"], "bao-cao-tai-chinh-2025.pdf"]
    assert run.instance().next_timer_at is None  # the 30-day timeout went with the supplement step
    clock.advance(days=31)
    run.step().fire_due_timers()  # only the check's own deadline (3 working days) fires: it escalates
    assert run.instance().status == InstanceStatus.RUNNING.value
    assert run.only("kiem_tra_ho_so").id == check.id and run.only("kiem_tra_ho_so").escalation_level == 1
    assert "timer_fired" not in audit_actions(run.engine, run.instance_id)
    run.complete(staff["khcn.cv"], check, {"ket_qua_kiem_tra": "day_du"})
    assert run.only("tham_dinh_ho_so").org_code == "SO_KHCN"
