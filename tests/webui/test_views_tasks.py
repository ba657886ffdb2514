"""The inbox and the task page: who sees what, the form, and every action on a task."""

from __future__ import annotations

import re

import pytest

from engine.models import HumanTask
from tests.webui.views_helpers import PROPOSAL, only_task, open_tasks, text_of
from workflows import WORKFLOWS_DIR

pytest_plugins = ("tests.webui.views_fixtures",)


def _draft(engine, proposal):
    return only_task(engine, proposal, "soan_de_xuat")


def _submit(browser_for, engine, proposal, who="nn.cv", **changes):
    task = _draft(engine, proposal)
    return browser_for(who).post(f"/tasks/{task.id}/complete", data={**PROPOSAL, **changes})


# ------------------------------------------------------------------ inbox
def test_inbox_shows_the_units_unclaimed_task_as_waiting(browser_for, engine, proposal):
    page = browser_for("nn.cv").get("/")
    assert page.status_code == 200
    text = text_of(page)
    assert "Việc cần xử lý" in text
    assert "Soạn đề xuất sửa đổi" in text and "Chờ nhận" in text
    unit_tab = text_of(browser_for("nn.cv").get("/?tab=unit"))
    assert "Soạn đề xuất sửa đổi" in unit_tab
    mine_tab = text_of(browser_for("nn.cv").get("/?tab=mine"))
    assert "Soạn đề xuất sửa đổi" not in mine_tab


def test_inbox_of_another_unit_does_not_show_it(browser_for, proposal):
    assert "Soạn đề xuất sửa đổi" not in text_of(browser_for("yt.cv").get("/"))
    assert "Không có việc nào đang chờ bạn xử lý." in text_of(browser_for("yt.cv").get("/"))


def test_navigation_bar_counts_my_tasks(browser_for, engine, proposal):
    body = browser_for("nn.cv").get("/instances").get_data(as_text=True)
    assert re.search(r'Việc cần xử lý\s*<span class="count[^"]*"[^>]*>1</span>', body)
    other = browser_for("yt.cv").get("/instances").get_data(as_text=True)
    assert not re.search(r'Việc cần xử lý\s*<span class="count', other)


def test_inbox_search_matches_business_fields_without_diacritics(browser_for, engine, proposal, people):
    _submit(browser_for, engine, proposal)
    supervisor = browser_for("nn.ld")
    assert "Lãnh đạo đơn vị phê duyệt" in text_of(supervisor.get("/?q=125/SNN"))
    assert "Lãnh đạo đơn vị phê duyệt" in text_of(supervisor.get("/?q=cong nghe sinh hoc"))
    assert "Lãnh đạo đơn vị phê duyệt" not in text_of(supervisor.get("/?q=khong-co-dau"))
    assert "Không có công việc nào khớp bộ lọc." in text_of(supervisor.get("/?q=khong-co-dau"))


def test_inbox_search_matches_the_process_title_in_the_readers_language(browser_for, proposal):
    staff = browser_for("nn.cv")
    assert "Soạn đề xuất sửa đổi" in text_of(staff.get("/?q=bo sung ke hoach"))  # "…, bổ sung kế hoạch"
    assert "Soạn đề xuất sửa đổi" not in text_of(staff.get("/?q=plan amendment"))
    staff.get("/lang/en")
    assert 'href="/tasks/' in staff.get("/?q=plan amendment").get_data(as_text=True)
    assert 'href="/tasks/' not in staff.get("/?q=bo sung ke hoach").get_data(as_text=True)


@pytest.mark.parametrize("search, message", [
    ("x" * 201, "Nội dung tìm kiếm dài quá 200 ký tự"),
    ("125\x00SNN", "Nội dung tìm kiếm có ký tự điều khiển không hợp lệ"),
])
def test_a_search_too_long_or_with_control_characters_is_refused_with_a_message(browser_for, proposal, search,
                                                                                 message):
    page = browser_for("nn.cv").get("/", query_string={"q": search})
    assert page.status_code == 400
    assert message in text_of(page)
    assert 'maxlength="200"' in browser_for("nn.cv").get("/").get_data(as_text=True)


def test_the_inbox_reads_on_one_connection_and_counts_its_tasks_once(browser_for, engine, proposal):
    from sqlalchemy import event

    staff = browser_for("nn.cv")
    staff.get("/")  # the translations, the templates and the statement cache are warm
    statements, checkouts = [], []

    def statement(_conn, _cursor, sql, *_args):
        statements.append(sql)

    def checkout(*_args):
        checkouts.append(1)

    event.listen(engine.db.engine, "before_cursor_execute", statement)
    event.listen(engine.db.engine.pool, "checkout", checkout)
    try:
        body = staff.get("/").get_data(as_text=True)
    finally:
        event.remove(engine.db.engine, "before_cursor_execute", statement)
        event.remove(engine.db.engine.pool, "checkout", checkout)
    # The navigation bar shows the tabs' numbers, counted once for both.
    assert re.search(r'Việc cần xử lý\s*<span class="count[^"]*"[^>]*>1</span>', body)
    assert sum("sum(anon_1.n)" in s for s in statements) == 1
    assert len(statements) <= 8
    if not engine.db.is_sqlite:  # SQLite ends each read's transaction (and hands its connection back)
        assert len(checkouts) == 1


def test_inbox_filters_by_process(browser_for, engine, proposal):
    assert "Soạn đề xuất sửa đổi" in text_of(browser_for("nn.cv").get("/?process=sua_doi_ke_hoach"))
    assert "Soạn đề xuất sửa đổi" not in text_of(browser_for("nn.cv").get("/?process=du_toan_kinh_phi"))


@pytest.fixture
def budget(engine, people):
    engine.deploy_path(WORKFLOWS_DIR / "du_toan_kinh_phi")
    return "du_toan_kinh_phi"


def test_overdue_work_comes_first_with_its_badge(browser_for, engine, people, budget, proposal, clock):
    late = engine.start_instance(people["nn.cv"], budget, {"nam_ngan_sach": 2027})
    clock.advance(days=21)  # the budget draft is due in 10 working days
    fresh = engine.start_instance(people["nn.cv"], budget, {"nam_ngan_sach": 2028})
    page = browser_for("nn.cv").get("/")
    text = text_of(page)
    assert re.search(r"Quá hạn \d+ ngày", text)
    assert "Còn 10 ngày" in text
    titles = re.findall(r'class="task-title" href="/tasks/(\w+)"', page.get_data(as_text=True))
    fresh_id = only_task(engine, fresh).id
    # Both overdue drafts (the proposal's 5-day one most overdue) come before the fresh one.
    assert titles[:2] == [_draft(engine, proposal).id, only_task(engine, late).id]
    assert titles.index(fresh_id) == 2
    overdue_only = text_of(browser_for("nn.cv").get("/?state=overdue"))
    assert "2027" in overdue_only and "2028" not in overdue_only


def test_inbox_pages(browser_for, engine, people, amendment):
    for _ in range(23):
        engine.start_instance(people["nn.cv"], amendment, {})
    first = browser_for("nn.cv").get("/")
    assert "Trang 1 / 2" in text_of(first)
    second = browser_for("nn.cv").get("/?page=2")
    assert len(re.findall(r'class="task-title"', second.get_data(as_text=True))) == 3


# ------------------------------------------------------------------ the task page
def test_task_page_renders_the_form_from_its_schema(browser_for, engine, proposal):
    task = _draft(engine, proposal)
    page = browser_for("nn.cv").get(f"/tasks/{task.id}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'name="so_van_ban"' in body and 'type="text"' in body
    assert re.search(r'<textarea id="f-noi_dung_de_xuat" name="noi_dung_de_xuat"', body)  # maxLength > 200
    assert re.search(r'name="kinh_phi_de_xuat"[^>]*class="money"', body)
    assert "Trình" in text_of(page)
    assert "Lịch sử xử lý" in text_of(page) and "Khởi tạo hồ sơ" in text_of(page)


def test_another_units_task_is_not_found(browser_for, engine, proposal):
    task = _draft(engine, proposal)
    intruder = browser_for("yt.cv")
    assert intruder.get(f"/tasks/{task.id}").status_code == 404
    for action in ("complete", "return", "claim", "unclaim", "reassign"):
        response = intruder.post(f"/tasks/{task.id}/{action}", data={**PROPOSAL, "reason": "x", "to_user": "1"})
        assert response.status_code == 404, action
    assert intruder.get("/tasks/khong-co-viec-nay").status_code == 404
    assert "Không tìm thấy" in text_of(intruder.get(f"/tasks/{task.id}"))
    assert only_task(engine, proposal).id == task.id  # nothing changed


def test_invalid_fields_get_messages_next_to_them_and_nothing_changes(browser_for, engine, proposal):
    task = _draft(engine, proposal)
    response = browser_for("nn.cv").post(f"/tasks/{task.id}/complete", data={
        **PROPOSAL, "noi_dung_de_xuat": "ngắn", "kinh_phi_de_xuat": "một triệu", "so_van_ban": ""})
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert re.search(r'id="f-noi_dung_de_xuat-err"[^>]*>Cần ít nhất 10 ký tự\.<', body)
    assert re.search(r'id="f-kinh_phi_de_xuat-err"[^>]*>Vui lòng nhập một số nguyên', body)
    assert re.search(r'id="f-so_van_ban-err"[^>]*>Trường này là bắt buộc\.<', body)
    assert "ngắn" in body and "một triệu" in body  # what was typed is kept
    assert only_task(engine, proposal).id == task.id


def test_money_with_thousands_separators_is_stored_as_an_integer(browser_for, engine, proposal):
    response = _submit(browser_for, engine, proposal, kinh_phi_de_xuat="1.500.000")
    assert response.status_code == 302
    approve = only_task(engine, proposal, "lanh_dao_duyet")
    page = browser_for("nn.ld").get(f"/instances/{proposal}")
    assert "1.500.000 đ" in text_of(page)
    assert approve.business["so_van_ban"] == "125/SNN-KH"


def test_supervisor_returns_with_a_reason_and_staff_sees_it(browser_for, engine, proposal, people):
    _submit(browser_for, engine, proposal)
    approve = only_task(engine, proposal, "lanh_dao_duyet")
    supervisor = browser_for("nn.ld")
    page = supervisor.get(f"/tasks/{approve.id}")
    assert "Trả lại" in text_of(page) and "Lý do trả lại" in text_of(page)
    missing = supervisor.post(f"/tasks/{approve.id}/return", data={"reason": "  "})
    assert missing.status_code == 400
    assert "Trường này là bắt buộc." in text_of(missing)
    assert only_task(engine, proposal).id == approve.id
    done = supervisor.post(f"/tasks/{approve.id}/return", data={"reason": "Thiếu dự toán chi tiết"})
    assert done.status_code == 302
    again = only_task(engine, proposal, "soan_de_xuat")
    staff_page = browser_for("nn.cv").get(f"/tasks/{again.id}")
    text = text_of(staff_page)
    assert "Hồ sơ bị trả lại" in text and "Thiếu dự toán chi tiết" in text
    assert 'value="125/SNN-KH"' in staff_page.get_data(as_text=True)  # the earlier submission is prefilled
    assert "Bị trả lại" in text_of(browser_for("nn.cv").get("/"))


def test_first_step_offers_no_return(browser_for, engine, proposal):
    page = browser_for("nn.cv").get(f"/tasks/{_draft(engine, proposal).id}")
    assert "/return" not in page.get_data(as_text=True)


def test_claim_and_unclaim(browser_for, engine, proposal, people):
    task = _draft(engine, proposal)
    staff = browser_for("nn.cv")
    assert "Nhận xử lý" in text_of(staff.get(f"/tasks/{task.id}"))
    assert staff.post(f"/tasks/{task.id}/claim").status_code == 302
    assert only_task(engine, proposal).assignee_id == people["nn.cv"]
    page = text_of(staff.get(f"/tasks/{task.id}"))
    assert "Trả về đơn vị" in page
    colleague = browser_for("nn.cv2")
    assert colleague.post(f"/tasks/{task.id}/claim").status_code == 409
    assert "Hồ sơ vừa được thay đổi" in text_of(colleague.post(f"/tasks/{task.id}/claim"))
    assert staff.post(f"/tasks/{task.id}/unclaim").status_code == 302
    assert only_task(engine, proposal).assignee_id is None


def test_supervisor_reassigns_within_the_unit(browser_for, engine, proposal, people):
    task = _draft(engine, proposal)
    supervisor = browser_for("nn.ld")
    page = supervisor.get(f"/tasks/{task.id}")
    assert "Chuyển xử lý" in text_of(page)
    assert "Nn Cv2" in text_of(page)
    response = supervisor.post(f"/tasks/{task.id}/reassign", data={"to_user": str(people["nn.cv2"]), "note": "Gấp"})
    assert response.status_code == 302
    assert only_task(engine, proposal).assignee_id == people["nn.cv2"]
    outsider = supervisor.post(f"/tasks/{task.id}/reassign", data={"to_user": str(people["yt.cv"])})
    assert outsider.status_code == 302
    assert only_task(engine, proposal).assignee_id == people["nn.cv2"]
    assert "Chuyển xử lý" not in text_of(browser_for("nn.cv2").get(f"/tasks/{task.id}")).split("Lịch sử")[0]


def test_staff_cannot_reassign(browser_for, engine, proposal, people):
    task = _draft(engine, proposal)
    response = browser_for("nn.cv").post(f"/tasks/{task.id}/reassign", data={"to_user": str(people["nn.cv2"])})
    assert response.status_code == 403
    assert "Chỉ lãnh đạo đơn vị mới được chuyển xử lý." in text_of(response)


def test_completing_a_task_twice_is_a_conflict_page(browser_for, engine, proposal):
    task = _draft(engine, proposal)
    assert _submit(browser_for, engine, proposal).status_code == 302
    again = browser_for("nn.cv2").post(f"/tasks/{task.id}/complete", data=PROPOSAL)
    assert again.status_code == 409
    assert "Công việc này đã được xử lý" in text_of(again)
    assert "Traceback" not in again.get_data(as_text=True)


def test_stale_version_is_a_conflict(browser_for, engine, proposal):
    task = _draft(engine, proposal)
    response = browser_for("nn.cv").post(f"/tasks/{task.id}/complete", data={**PROPOSAL, "expected_version": "999"})
    assert response.status_code == 409
    assert "Người khác vừa xử lý hồ sơ này" in text_of(response)


def test_comment_on_the_task_page(browser_for, engine, proposal):
    task = _draft(engine, proposal)
    response = browser_for("nn.cv").post(f"/instances/{proposal}/comments", data={
        "body": "Đề nghị bổ sung số liệu", "task_id": task.id, "next": f"/tasks/{task.id}"})
    assert response.status_code == 302 and response.headers["Location"] == f"/tasks/{task.id}"
    page = text_of(browser_for("nn.ld").get(f"/tasks/{task.id}"))
    assert "Đề nghị bổ sung số liệu" in page
    empty = browser_for("nn.cv").post(f"/instances/{proposal}/comments", data={"body": " "})
    assert empty.status_code == 302
    assert browser_for("yt.cv").post(f"/instances/{proposal}/comments", data={"body": "xin chào"}).status_code == 404


def test_done_tab_lists_what_i_did(browser_for, engine, proposal):
    _submit(browser_for, engine, proposal)
    text = text_of(browser_for("nn.cv").get("/?tab=done"))
    assert "Soạn đề xuất sửa đổi" in text
    assert "Soạn đề xuất sửa đổi" not in text_of(browser_for("nn.cv2").get("/?tab=done"))


# ------------------------------------------------------------------ budget line items
@pytest.fixture
def budget_case(engine, people, budget):
    return engine.start_instance(people["nn.cv"], budget, {"nam_ngan_sach": 2027})


def test_budget_line_items_are_repeating_rows(browser_for, engine, budget_case):
    task = only_task(engine, budget_case, "lap_du_toan")
    staff = browser_for("nn.cv")
    page = staff.get(f"/tasks/{task.id}")
    body = page.get_data(as_text=True)
    assert 'name="cac_khoan_chi/0/noi_dung"' in body and 'name="cac_khoan_chi/__INDEX__/so_tien"' in body
    more = staff.post(f"/tasks/{task.id}/complete", data={
        "so_van_ban": "12/SYT", "cac_khoan_chi/0/noi_dung": "Hội thảo", "cac_khoan_chi/0/so_tien": "1.000.000",
        "_add_row": "cac_khoan_chi"})
    assert more.status_code == 200
    assert 'name="cac_khoan_chi/1/noi_dung"' in more.get_data(as_text=True)
    assert 'value="1.000.000"' in more.get_data(as_text=True)
    bad = staff.post(f"/tasks/{task.id}/complete", data={
        "so_van_ban": "12/SYT", "tong_so_tien": "3.500.000",
        "cac_khoan_chi/0/noi_dung": "Hội thảo", "cac_khoan_chi/0/so_tien": "1.000.000",
        "cac_khoan_chi/1/noi_dung": "", "cac_khoan_chi/1/so_tien": "",  # an empty row is dropped
        "cac_khoan_chi/2/noi_dung": "In", "cac_khoan_chi/2/so_tien": "2.500.000"})
    assert bad.status_code == 400  # 'In' is shorter than 3 characters: the message lands on row 2 (now 1)
    assert re.search(r'id="f-cac_khoan_chi-1-noi_dung-err"[^>]*>Cần ít nhất 3 ký tự', bad.get_data(as_text=True))
    good = staff.post(f"/tasks/{task.id}/complete", data={
        "so_van_ban": "12/SYT", "tong_so_tien": "3.500.000",
        "cac_khoan_chi/0/noi_dung": "Hội thảo", "cac_khoan_chi/0/so_tien": "1.000.000",
        "cac_khoan_chi/2/noi_dung": "In ấn tài liệu", "cac_khoan_chi/2/so_tien": "2.500.000"})
    assert good.status_code == 302, text_of(good)
    detail = text_of(browser_for("nn.cv").get(f"/instances/{budget_case}"))
    assert "In ấn tài liệu" in detail and "2.500.000 đ" in detail and "3.500.000 đ" in detail
    with engine.db.read() as session:
        assert session.get(HumanTask, task.id).state == "completed"
    assert open_tasks(engine, budget_case)


def test_a_returned_first_step_still_offers_no_return(browser_for, engine, proposal):
    _submit(browser_for, engine, proposal)
    approve = only_task(engine, proposal, "lanh_dao_duyet")
    browser_for("nn.ld").post(f"/tasks/{approve.id}/return", data={"reason": "Bổ sung số liệu"})
    again = only_task(engine, proposal, "soan_de_xuat")
    assert "/return" not in browser_for("nn.cv").get(f"/tasks/{again.id}").get_data(as_text=True)


# ------------------------------------------------------------------ saved drafts (Lưu nháp)
def _draft_row(engine, task_id):
    from engine.models import TaskDraft

    with engine.db.read() as session:
        row = session.get(TaskDraft, task_id)
        return None if row is None else dict(row.data)


def test_the_task_form_offers_save_draft_next_to_submit(browser_for, engine, proposal):
    task = _draft(engine, proposal)
    body = browser_for("nn.cv").get(f"/tasks/{task.id}").get_data(as_text=True)
    assert re.search(rf'<button[^>]*name="_draft"[^>]*formaction="/tasks/{task.id}/draft"[^>]*formnovalidate'
                     r'[^>]*>Lưu nháp</button>', body)
    assert body.index('name="_submit"') < body.index('name="_draft"')
    assert "Bản nháp lưu lúc" not in body


def test_a_half_filled_draft_is_saved_without_validation_and_reopens_prefilled(browser_for, engine, proposal,
                                                                                clock):
    task = _draft(engine, proposal)
    response = browser_for("nn.cv").post(f"/tasks/{task.id}/draft", data={
        "noi_dung_de_xuat": "ngắn", "kinh_phi_de_xuat": "1.500.000", "so_van_ban": "", "_draft": "1"})
    assert response.status_code == 302 and response.headers["Location"] == f"/tasks/{task.id}"
    assert _draft_row(engine, task.id) == {"noi_dung_de_xuat": "ngắn", "kinh_phi_de_xuat": 1500000}
    assert only_task(engine, proposal).id == task.id  # nothing submitted

    clock.advance(hours=3)  # the page is reopened later, by a colleague of the same queue
    page = browser_for("nn.cv2").get(f"/tasks/{task.id}")
    body, text = page.get_data(as_text=True), text_of(page)
    assert "Bản nháp lưu lúc 30/11/2026 09:00 bởi Nn Cv." in text
    assert re.search(r'<textarea id="f-noi_dung_de_xuat" name="noi_dung_de_xuat"[^>]*>ngắn</textarea>', body)
    assert re.search(r'name="kinh_phi_de_xuat" value="1.500.000"', body)
    assert "Cần ít nhất 10 ký tự" not in text  # a draft is not checked
    flashed = text_of(browser_for("nn.cv").get(f"/tasks/{task.id}"))
    assert "Đã lưu nháp. Bạn có thể quay lại hoàn thiện và trình sau." in flashed


def test_unreadable_values_are_kept_in_the_draft_as_typed(browser_for, engine, proposal):
    task = _draft(engine, proposal)
    browser_for("nn.cv").post(f"/tasks/{task.id}/draft", data={"kinh_phi_de_xuat": "một triệu"})
    assert _draft_row(engine, task.id) == {"kinh_phi_de_xuat": "một triệu"}
    body = browser_for("nn.cv").get(f"/tasks/{task.id}").get_data(as_text=True)
    assert 'name="kinh_phi_de_xuat" value="một triệu"' in body


def test_submitting_after_a_draft_completes_the_task_and_the_draft_is_gone(browser_for, engine, proposal):
    task = _draft(engine, proposal)
    browser_for("nn.cv").post(f"/tasks/{task.id}/draft", data={"so_van_ban": "125/SNN-KH"})
    invalid = browser_for("nn.cv").post(f"/tasks/{task.id}/complete", data={"so_van_ban": "125/SNN-KH"})
    assert invalid.status_code == 400  # the real submission is validated as ever
    assert _submit(browser_for, engine, proposal).status_code == 302
    only_task(engine, proposal, "lanh_dao_duyet")
    page = text_of(browser_for("nn.cv").get(f"/tasks/{task.id}"))
    assert "Bản nháp lưu lúc" not in page
    late = browser_for("nn.cv").post(f"/tasks/{task.id}/draft", data={"so_van_ban": "muộn"})
    assert late.status_code == 409
    assert _draft_row(engine, task.id) == {"so_van_ban": "125/SNN-KH"}  # the stale row is never shown nor changed


def test_only_who_may_complete_may_save_a_draft(browser_for, engine, proposal):
    task = _draft(engine, proposal)
    assert browser_for("yt.cv").post(f"/tasks/{task.id}/draft", data={"so_van_ban": "x"}).status_code == 404
    supervisor = browser_for("nn.ld").post(f"/tasks/{task.id}/draft", data={"so_van_ban": "x"})
    assert supervisor.status_code == 403  # sees the case, may not work on the step
    assert "Bạn không được giao xử lý công việc này." in text_of(supervisor)
    assert browser_for("yt.cv").post(f"/tasks/{task.id}/draft/delete").status_code == 404
    assert _draft_row(engine, task.id) is None
    browser_for("nn.cv").post(f"/tasks/{task.id}/draft", data={"so_van_ban": "của đơn vị"})
    assert "Bản nháp lưu lúc" not in text_of(browser_for("nn.ld").get(f"/tasks/{task.id}"))
    assert "của đơn vị" not in browser_for("nn.ld").get(f"/tasks/{task.id}").get_data(as_text=True)


def test_the_draft_can_be_thrown_away(browser_for, engine, proposal):
    task = _draft(engine, proposal)
    browser_for("nn.cv").post(f"/tasks/{task.id}/draft", data={"so_van_ban": "125/SNN-KH"})
    response = browser_for("nn.cv").post(f"/tasks/{task.id}/draft/delete")
    assert response.status_code == 302
    assert _draft_row(engine, task.id) is None
    page = text_of(browser_for("nn.cv").get(f"/tasks/{task.id}"))
    assert "Đã xóa bản nháp." in page and "Bản nháp lưu lúc" not in page


def test_save_draft_in_english(browser_for, engine, proposal):
    task = _draft(engine, proposal)
    client = browser_for("nn.cv")
    client.get("/lang/en")
    client.post(f"/tasks/{task.id}/draft", data={"so_van_ban": "125/SNN-KH"})
    text = text_of(client.get(f"/tasks/{task.id}"))
    assert "Save draft" in text and "Draft saved on 30/11/2026 09:00 by Nn Cv." in text


# ------------------------------------------------------------------ signal buttons
def test_a_steps_signal_button_is_shown_and_pressing_it_opens_the_modelled_step(browser_for, engine, people):
    from tests.engine import bpmn_samples
    from tests.engine.helpers import deploy_xml

    deploy_xml(engine, "nut", bpmn_samples.signal_button())
    iid = engine.start_instance(people["nn.cv"], "nut")
    [task] = open_tasks(engine, iid)
    page = browser_for("nn.cv").get(f"/tasks/{task.id}").get_data(as_text=True)
    assert re.search(r'name="signal" value="ke_hoach_dieu_chinh"[^>]*>Sửa lại</button>', page)
    assert "Sửa lại</button>" not in browser_for("nn.ld").get(f"/tasks/{task.id}").get_data(as_text=True)
    wrong = browser_for("nn.cv").post(f"/tasks/{task.id}/signal", data={"signal": "khong_co"})
    assert wrong.status_code == 400 and "không có tín hiệu" in text_of(wrong)
    assert [t.id for t in open_tasks(engine, iid)] == [task.id]  # nothing changed
    assert browser_for("yt.cv").post(f"/tasks/{task.id}/signal", data={"signal": "ke_hoach_dieu_chinh"}
                                     ).status_code == 404
    pressed = browser_for("nn.cv").post(f"/tasks/{task.id}/signal", data={"signal": "ke_hoach_dieu_chinh"})
    [opened] = open_tasks(engine, iid)
    assert opened.task_name == "sua"
    assert pressed.status_code == 302 and pressed.headers["Location"].endswith(f"/tasks/{opened.id}")
    assert "Đã thực hiện “Sửa lại”." in text_of(browser_for("nn.cv").get(pressed.headers["Location"]))
