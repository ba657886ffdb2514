"""The case page (diagram, history, data, comments), the case list, and starting a case."""

from __future__ import annotations

import re

from tests.webui.views_helpers import PROPOSAL, only_task, text_of

pytest_plugins = ("tests.webui.views_fixtures",)


def _through_approval(browser_for, engine, proposal):
    draft = only_task(engine, proposal, "soan_de_xuat")
    browser_for("nn.cv").post(f"/tasks/{draft.id}/complete", data={**PROPOSAL, "kinh_phi_de_xuat": "350.000.000"})
    approve = only_task(engine, proposal, "lanh_dao_duyet")
    browser_for("nn.ld").post(f"/tasks/{approve.id}/complete", data={"quyet_dinh": "phe_duyet"})
    return approve


def test_case_page_shows_history_data_and_current_step(browser_for, engine, proposal):
    _through_approval(browser_for, engine, proposal)
    page = browser_for("nn.cv").get(f"/instances/{proposal}")
    assert page.status_code == 200
    text = text_of(page)
    assert "Lịch sử xử lý" in text and "Hoàn thành bước" in text
    assert "Nn Ld" in text and "Nn Cv" in text
    assert re.search(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}", text)
    assert "30/11/2026 09:00" in text  # stored in UTC (02:00), shown in Asia/Ho_Chi_Minh
    assert "Số văn bản" in text and "125/SNN-KH" in text  # labels from the forms' titles
    assert "Kinh phí đề xuất (đồng)" in text and "350.000.000 đ" in text
    assert "Phê duyệt, trình Sở KH&CN" in text  # the option's label, not its code
    assert "Bước hiện tại" in text and "Sở KH&CN cho ý kiến" in text


def test_diagram_markers_show_the_completed_path_and_the_current_step(browser_for, engine, proposal):
    _through_approval(browser_for, engine, proposal)
    body = browser_for("nn.cv").get(f"/instances/{proposal}").get_data(as_text=True)
    done = re.search(r'data-done="([^"]*)"', body).group(1).split(",")
    current = re.search(r'data-current="([^"]*)"', body).group(1).split(",")
    assert {"soan_de_xuat", "lanh_dao_duyet"} <= set(done)
    assert current == ["y_kien_khcn"]
    xml = browser_for("nn.cv").get(f"/instances/{proposal}/diagram.bpmn")
    assert xml.status_code == 200 and xml.mimetype == "application/xml"
    assert b"bpmndi:BPMNDiagram" in xml.data or b"BPMNDiagram" in xml.data


def test_case_page_works_without_the_diagram_library(browser_for, engine, proposal, monkeypatch):
    from webui import views

    monkeypatch.setattr(views, "STATIC", views.STATIC / "khong-co")
    page = browser_for("nn.cv").get(f"/instances/{proposal}")
    assert page.status_code == 200
    assert "Chưa cài thư viện hiển thị sơ đồ" in text_of(page)
    assert "bpmn-navigated-viewer" not in page.get_data(as_text=True)


def test_another_unit_cannot_see_the_case(browser_for, proposal):
    intruder = browser_for("yt.cv")
    assert intruder.get(f"/instances/{proposal}").status_code == 404
    assert intruder.get(f"/instances/{proposal}/diagram.bpmn").status_code == 404
    assert intruder.get("/instances/999999").status_code == 404
    assert "Sửa đổi kế hoạch" not in text_of(intruder.get("/instances"))


def test_case_list_shows_my_units_cases(browser_for, proposal):
    page = browser_for("nn.cv2").get("/instances")
    assert page.status_code == 200
    assert f'href="/instances/{proposal}"' in page.get_data(as_text=True)
    assert "Đang xử lý" in text_of(page)


def test_comments_appear_on_the_case(browser_for, proposal):
    browser_for("nn.cv").post(f"/instances/{proposal}/comments", data={"body": "Cần ý kiến Sở Tài chính"})
    text = text_of(browser_for("nn.ld").get(f"/instances/{proposal}"))
    assert "Cần ý kiến Sở Tài chính" in text and "Nn Cv" in text


def test_acting_for_is_shown_in_the_history(browser_for, engine, people, proposal, clock):
    from engine import directory

    draft = only_task(engine, proposal, "soan_de_xuat")
    browser_for("nn.cv").post(f"/tasks/{draft.id}/complete", data=PROPOSAL)
    with engine.db.write() as session:
        directory.add_substitute(session, people["nn.ld"], people["khcn.ld"], engine.today(), engine.today(), at=engine.now())
    approve = only_task(engine, proposal, "lanh_dao_duyet")
    substitute = browser_for("khcn.ld")
    assert substitute.get(f"/tasks/{approve.id}").status_code == 200
    assert substitute.post(f"/tasks/{approve.id}/complete", data={"quyet_dinh": "phe_duyet"}).status_code == 302
    text = text_of(browser_for("nn.cv").get(f"/instances/{proposal}"))
    assert "Khcn Ld (xử lý thay Nn Ld)" in text


def test_only_administrators_cancel_a_case(browser_for, engine, proposal):
    assert browser_for("nn.cv").post(f"/instances/{proposal}/cancel", data={"reason": "x"}).status_code == 403
    response = browser_for("admin").post(f"/instances/{proposal}/cancel", data={"reason": "Nhập nhầm"})
    assert response.status_code == 302
    text = text_of(browser_for("admin").get(f"/instances/{proposal}"))
    assert "Đã hủy" in text and "Nhập nhầm" in text
    again = browser_for("admin").post(f"/instances/{proposal}/cancel")
    assert again.status_code == 409


# ------------------------------------------------------------------ starting a case
def test_start_lists_only_what_i_may_start(browser_for, engine, amendment):
    from workflows import WORKFLOWS_DIR

    engine.deploy_path(WORKFLOWS_DIR / "du_toan_kinh_phi")  # staff only
    staff = text_of(browser_for("nn.cv").get("/start"))
    assert "Đề xuất sửa đổi, bổ sung kế hoạch" in staff and "Dự toán kinh phí" in staff
    leader = text_of(browser_for("ubnd.ld").get("/start"))
    assert "Đề xuất sửa đổi" not in leader and "Dự toán kinh phí" not in leader
    assert browser_for("ubnd.ld").get("/start/sua_doi_ke_hoach").status_code == 404


def test_start_goes_straight_to_my_first_step(browser_for, engine, amendment):
    response = browser_for("nn.cv").post("/start/sua_doi_ke_hoach", data={})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/tasks/")
    page = browser_for("nn.cv").get(response.headers["Location"])
    assert "Soạn đề xuất sửa đổi" in text_of(page)


def test_start_form_is_validated(browser_for, engine, people):
    from workflows import WORKFLOWS_DIR

    engine.deploy_path(WORKFLOWS_DIR / "du_toan_kinh_phi")
    staff = browser_for("nn.cv")
    form = staff.get("/start/du_toan_kinh_phi")
    assert 'name="nam_ngan_sach"' in form.get_data(as_text=True)
    bad = staff.post("/start/du_toan_kinh_phi", data={"nam_ngan_sach": "1999"})
    assert bad.status_code == 400
    assert re.search(r'id="f-nam_ngan_sach-err"[^>]*>Giá trị phải từ [\d.]+ trở lên', bad.get_data(as_text=True))
    good = staff.post("/start/du_toan_kinh_phi", data={"nam_ngan_sach": "2027"})
    assert good.status_code == 302
    assert "Lập dự toán kinh phí" in text_of(staff.get(good.headers["Location"]))


def test_case_title_follows_the_fields_its_template_names(browser_for, engine, proposal):
    assert "Sửa đổi kế hoạch: Bổ sung" not in text_of(browser_for("nn.cv").get(f"/instances/{proposal}"))
    _through_approval(browser_for, engine, proposal)
    text = text_of(browser_for("nn.cv").get(f"/instances/{proposal}"))
    assert "Sửa đổi kế hoạch: Bổ sung nhiệm vụ ứng dụng công nghệ sinh học" in text
