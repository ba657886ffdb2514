"""The supervisors' dashboard: counts per unit and process, late rate, drill-down, Excel export."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from engine import dashboard as stats
from tests.webui.views_helpers import only_task, text_of
from workflows import WORKFLOWS_DIR

pytest_plugins = ("tests.webui.views_fixtures",)


@pytest.fixture
def budgets(engine, people, clock):
    """Three budget drafts: one done on time, one done late, one overdue; plus one of Y tế, on time."""
    engine.deploy_path(WORKFLOWS_DIR / "du_toan_kinh_phi")
    ids = [engine.start_instance(people["nn.cv"], "du_toan_kinh_phi", {"nam_ngan_sach": 2026 + i}) for i in range(3)]
    item = {"so_van_ban": "1/SNN", "cac_khoan_chi": [{"noi_dung": "Hội thảo", "so_tien": 1000}], "tong_so_tien": 1000}
    engine.complete_task(people["nn.cv"], only_task(engine, ids[0]).id, item)  # on time
    clock.advance(days=20)  # 10 working days have passed: the other two are late now
    engine.complete_task(people["nn.cv"], only_task(engine, ids[1]).id, item)  # late
    other = engine.start_instance(people["yt.cv"], "du_toan_kinh_phi", {"nam_ngan_sach": 2030})
    return ids + [other]


def test_statistics_count_each_bucket(engine, budgets):
    with engine.db.read() as session:
        rows = {r.org_code: r for r in stats.task_statistics(session, engine.calendar, engine.now(),
                                                              process="du_toan_kinh_phi")}
    nn = rows["SO_NNPTNT"]
    assert (nn.done_on_time, nn.done_late) == (1, 1)
    assert nn.open == 3  # the late draft, the approval waiting since day one (3 working days: late) and a new one
    assert nn.overdue == 2
    assert nn.total == 5 and nn.late_rate == pytest.approx(3 / 5)
    assert rows["SO_YT"].overdue == 0 and rows["SO_YT"].open == 1


def test_due_soon_means_at_most_one_working_day_left(engine, people, clock):
    from engine.deadlines import DeadlineState, state

    now = engine.now()
    border = stats.due_soon_before(engine.calendar, now)
    assert state(engine.calendar, border - timedelta(minutes=1), now)[0] == DeadlineState.DUE_SOON
    assert state(engine.calendar, border + timedelta(minutes=1), now)[0] == DeadlineState.ON_TIME


def test_staff_may_not_open_the_dashboard(browser_for, budgets):
    assert browser_for("nn.cv").get("/dashboard").status_code == 403
    assert browser_for("nn.cv").get("/dashboard/export.xlsx").status_code == 403
    assert browser_for("nn.cv").get("/dashboard/tasks").status_code == 403
    assert 'href="/dashboard"' not in browser_for("nn.cv").get("/").get_data(as_text=True)
    assert 'href="/dashboard"' in browser_for("nn.ld").get("/").get_data(as_text=True)


def test_supervisor_sees_only_the_units_they_lead(browser_for, budgets):
    page = browser_for("nn.ld").get("/dashboard")
    assert page.status_code == 200
    text = text_of(page)
    assert "Sở Nông nghiệp và Phát triển nông thôn" in text and "Sở Y tế" not in text
    assert "Tỷ lệ trễ hạn" in text and "60 %" in text
    assert 'id="chart-data"' in page.get_data(as_text=True)


def test_administrator_sees_every_unit(browser_for, budgets):
    text = text_of(browser_for("admin").get("/dashboard"))
    assert "Sở Nông nghiệp và Phát triển nông thôn" in text and "Sở Y tế" in text


def test_drill_down_lists_the_tasks_behind_a_number(browser_for, engine, budgets):
    overdue = browser_for("nn.ld").get("/dashboard/tasks?bucket=overdue&organisation=SO_NNPTNT")
    assert overdue.status_code == 200
    assert f'/tasks/{only_task(engine, budgets[2]).id}"' in overdue.get_data(as_text=True)
    assert "Quá hạn" in text_of(overdue)
    late = browser_for("nn.ld").get("/dashboard/tasks?bucket=done_late&organisation=SO_NNPTNT")
    assert "Hoàn thành quá hạn" in text_of(late)
    assert text_of(late).count("Lập dự toán kinh phí") == 1
    other_unit = browser_for("nn.ld").get("/dashboard/tasks?bucket=open&organisation=SO_YT")
    assert "Không có công việc nào." in text_of(other_unit)


def test_export_to_excel(browser_for, budgets):
    from openpyxl import load_workbook

    response = browser_for("nn.ld").get("/dashboard/export.xlsx")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert "attachment" in response.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(response.data))
    assert book.sheetnames == ["Theo đơn vị", "Theo quy trình", "Chi tiết"]
    sheet = book["Theo đơn vị"]
    header = [c.value for c in sheet[1]]
    assert header[0] == "Đơn vị" and "Tỷ lệ trễ hạn (%)" in header
    row = [c.value for c in sheet[2]]
    assert row[0] == "Sở Nông nghiệp và Phát triển nông thôn"
    assert row[header.index("Quá hạn")] == 2 and row[header.index("Tỷ lệ trễ hạn (%)")] == 60.0
