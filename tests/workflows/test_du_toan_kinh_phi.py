"""Annual S&T budget estimate: unit → supervisor → Sở KH&CN → Sở TC ‖ Sở KH&ĐT → UBND tỉnh; rejections loop back."""

from __future__ import annotations

import pytest
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select

from engine.errors import Forbidden, InvalidInput
from engine.models import Definition, InstanceStatus

KEY = "du_toan_kinh_phi"
ITEMS = [
    {"noi_dung": "Đề tài ứng dụng công nghệ sinh học nhân giống cây dược liệu", "so_tien": 850_000_000},
    {"noi_dung": "Hội thảo khoa học chuyên đề nông nghiệp công nghệ cao", "so_tien": 150_000_000},
]
ESTIMATE = {"so_van_ban": "45/DT-SNN", "cac_khoan_chi": ITEMS, "tong_so_tien": 1_000_000_000}


@pytest.fixture
def drafting(run, staff):
    run.deploy(KEY)
    run.start(staff["nn.cv"], KEY, {"nam_ngan_sach": 2027})
    return run


def _submit(run, staff, estimate=ESTIMATE):
    draft = run.only("lap_du_toan")
    assert (draft.org_code, draft.role) == ("SO_NNPTNT", "staff")
    run.complete(staff["nn.cv"], draft, estimate)


def _to_appraisal(run, staff):
    _submit(run, staff)
    run.complete(staff["nn.ld"], run.only("lanh_dao_duyet"), {"quyet_dinh_lanh_dao": "trinh"})
    balance = run.only("can_doi")
    assert (balance.org_code, balance.role) == ("SO_KHCN", "staff")
    run.complete(staff["khcn.cv"], balance, {"ket_qua_can_doi": "dong_y", "so_tien_can_doi": 950_000_000})


def test_estimate_goes_through_four_levels_and_ubnd_allocates(drafting, staff):
    run = drafting
    assert run.instance().title == "Dự toán kinh phí KH&CN năm 2027"
    _submit(run, staff)
    approval = run.only("lanh_dao_duyet")
    assert (approval.org_code, approval.role) == ("SO_NNPTNT", "supervisor")
    run.complete(staff["nn.ld"], approval, {"quyet_dinh_lanh_dao": "trinh"})
    run.complete(staff["khcn.cv"], run.only("can_doi"), {"ket_qua_can_doi": "dong_y", "so_tien_can_doi": 950_000_000})

    appraisals = {t.task_name: t for t in run.open()}
    assert sorted(appraisals) == ["tham_dinh_khdt", "tham_dinh_tc"]
    assert (appraisals["tham_dinh_tc"].org_code, appraisals["tham_dinh_tc"].role) == ("SO_TC", "staff")
    assert (appraisals["tham_dinh_khdt"].org_code, appraisals["tham_dinh_khdt"].role) == ("SO_KHDT", "staff")
    run.complete(staff["khdt.cv"], appraisals["tham_dinh_khdt"], {"ket_qua_tham_dinh_khdt": "dong_y"})
    assert [t.task_name for t in run.open()] == ["tham_dinh_tc"]  # both appraisals are needed
    run.complete(staff["tc.cv"], appraisals["tham_dinh_tc"], {"ket_qua_tham_dinh_tc": "dong_y",
                                                              "so_van_ban_tc": "1020/STC-HCSN"})

    decision = run.only("quyet_dinh_phan_bo")
    assert (decision.org_code, decision.role) == ("UBND_TINH", "leader")
    with pytest.raises(InvalidInput) as err:  # allocating needs the amount and the decision number
        run.complete(staff["ubnd.ld"], decision, {"quyet_dinh_ubnd": "phan_bo"})
    assert {"so_tien_phan_bo", "so_quyet_dinh"} <= set(err.value.details)
    run.complete(staff["ubnd.ld"], decision, {"quyet_dinh_ubnd": "phan_bo", "so_tien_phan_bo": 900_000_000,
                                              "so_quyet_dinh": "1234/QĐ-UBND"})
    inst = run.instance()
    assert inst.status == InstanceStatus.COMPLETED.value
    assert inst.business["tong_so_tien"] == 1_000_000_000
    assert inst.business["so_tien_phan_bo"] == 900_000_000


def test_total_that_does_not_match_the_line_items_is_sent_back_with_the_difference(drafting, staff):
    run = drafting
    first = run.only("lap_du_toan")
    _submit(run, staff, {**ESTIMATE, "tong_so_tien": 1_100_000_000})

    again = run.only("lap_du_toan")  # the supervisor never sees an inconsistent estimate
    assert again.id != first.id and (again.org_code, again.role) == ("SO_NNPTNT", "staff")
    data = run.data(again)
    assert data["buoc_tra_lai"] == "Kiểm tra tổng dự toán"
    assert data["ly_do_tra_lai"] == ("Tổng số tiền kê khai (1100000000 đồng) không bằng tổng các khoản chi "
                                     "(1000000000 đồng).")
    _submit(run, staff)
    run.only("lanh_dao_duyet")


def test_line_items_are_whole_non_negative_dong(drafting, staff):
    run = drafting
    draft = run.only("lap_du_toan")
    bad = {**ESTIMATE, "cac_khoan_chi": [{"noi_dung": "Mua sắm thiết bị", "so_tien": -5},
                                         {"noi_dung": "Công tác phí", "so_tien": 1500.5}]}
    with pytest.raises(InvalidInput) as err:
        run.complete(staff["nn.cv"], draft, bad)
    assert set(err.value.details) == {"cac_khoan_chi/0/so_tien", "cac_khoan_chi/1/so_tien"}
    with pytest.raises(InvalidInput) as err:
        run.complete(staff["nn.cv"], draft, {**ESTIMATE, "cac_khoan_chi": []})
    assert "cac_khoan_chi" in err.value.details
    with pytest.raises(Forbidden):  # another unit's staff
        run.complete(staff["yt.cv"], draft, ESTIMATE)


@pytest.mark.parametrize("level", ["lanh_dao", "so_khcn", "tham_dinh", "ubnd"])
def test_any_rejection_returns_to_unit_staff_with_its_reason(drafting, staff, level):
    run = drafting
    if level == "lanh_dao":
        _submit(run, staff)
        approval = run.only("lanh_dao_duyet")
        with pytest.raises(InvalidInput) as err:  # returning needs a reason
            run.complete(staff["nn.ld"], approval, {"quyet_dinh_lanh_dao": "tra_lai"})
        assert "y_kien_lanh_dao" in err.value.details
        run.complete(staff["nn.ld"], approval, {"quyet_dinh_lanh_dao": "tra_lai",
                                                "y_kien_lanh_dao": "Tách riêng chi phí hội thảo"})
        expected = ("Lãnh đạo đơn vị", "Tách riêng chi phí hội thảo")
    elif level == "so_khcn":
        _submit(run, staff)
        run.complete(staff["nn.ld"], run.only("lanh_dao_duyet"), {"quyet_dinh_lanh_dao": "trinh"})
        run.complete(staff["khcn.cv"], run.only("can_doi"), {"ket_qua_can_doi": "tra_lai",
                                                             "y_kien_can_doi": "Vượt định mức chi hội thảo"})
        expected = ("Sở KH&CN", "Vượt định mức chi hội thảo")
    elif level == "tham_dinh":
        _to_appraisal(run, staff)
        run.complete(staff["tc.cv"], run.one("tham_dinh_tc", "SO_TC"),
                     {"ket_qua_tham_dinh_tc": "khong_dong_y", "y_kien_tc": "Chưa có thuyết minh nguồn vốn"})
        assert run.open("lap_du_toan") == []  # the join waits for Sở KH&ĐT too
        run.complete(staff["khdt.cv"], run.one("tham_dinh_khdt", "SO_KHDT"),
                     {"ket_qua_tham_dinh_khdt": "khong_dong_y", "y_kien_khdt": "Trùng nhiệm vụ năm 2026"})
        expected = ("Thẩm định", "Sở Tài chính: Chưa có thuyết minh nguồn vốn; "
                                 "Sở Kế hoạch và Đầu tư: Trùng nhiệm vụ năm 2026")
    else:
        _to_appraisal(run, staff)
        run.complete(staff["tc.cv"], run.one("tham_dinh_tc", "SO_TC"), {"ket_qua_tham_dinh_tc": "dong_y"})
        run.complete(staff["khdt.cv"], run.one("tham_dinh_khdt", "SO_KHDT"), {"ket_qua_tham_dinh_khdt": "dong_y"})
        run.complete(staff["ubnd.ld"], run.only("quyet_dinh_phan_bo"),
                     {"quyet_dinh_ubnd": "tra_lai", "y_kien_ubnd": "Ưu tiên nhiệm vụ về dược liệu"})
        expected = ("UBND tỉnh", "Ưu tiên nhiệm vụ về dược liệu")

    draft = run.only("lap_du_toan")
    assert (draft.org_code, draft.role) == ("SO_NNPTNT", "staff")
    data = run.data(draft)
    assert (data["buoc_tra_lai"], data["ly_do_tra_lai"]) == expected
    assert data["cac_khoan_chi"] == ITEMS  # the previous estimate is there to be corrected
    assert run.instance().status == InstanceStatus.RUNNING.value
    _submit(run, staff)  # and the corrected estimate starts the approvals again
    assert run.only("lanh_dao_duyet").org_code == "SO_NNPTNT"


def test_draft_instructions_show_where_and_why_it_was_returned(drafting):
    engine = drafting.step()
    with engine.db.read() as session:
        definition_id = session.scalar(select(Definition.id).where(Definition.process_key == KEY))
        template = engine.definitions.get(session, definition_id).human_tasks["lap_du_toan"].instructions
    render = SandboxedEnvironment().from_string(template).render
    returned = render(nam_ngan_sach=2027, buoc_tra_lai="UBND tỉnh", ly_do_tra_lai="Ưu tiên nhiệm vụ về dược liệu")
    assert returned.startswith("Hồ sơ bị trả lại (UBND tỉnh): Ưu tiên nhiệm vụ về dược liệu\n")
    assert "năm 2027" in returned
    assert "trả lại" not in render(nam_ngan_sach=2027)
