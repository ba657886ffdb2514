"""The whole approval round trip in a real browser (Playwright + Debian Chromium) against the real server.

Staff submit a plan amendment (one invalid field first), the supervisor returns it with a reason,
staff see the reason and resubmit, the supervisor approves, and the case page shows the diagram
with the path taken. Screenshots land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright chưa cài / not installed: "
                                                             "pip install playwright (browser tier skipped)")

CHROMIUM = os.environ.get("DIEUPHOI_CHROMIUM", "/usr/bin/chromium")
if not Path(CHROMIUM).exists():
    pytest.skip(f"Chromium không có tại {CHROMIUM} / not found: apt-get install chromium (browser tier skipped)",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
VENDOR = ROOT / "webui" / "static" / "vendor" / "bpmn-navigated-viewer.production.min.js"
PASSWORD = "TrinhDuyet@2026"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on 127.0.0.1 (free port) over a fresh SQLite file: org directory, two processes, people."""
    from werkzeug.serving import make_server

    from engine import directory, schema
    from engine.clock import FixedClock
    from engine.config import Settings
    from engine.db import Database
    from engine.runtime import Engine
    from tests.conftest import T0
    from webui import create_app
    from workflows import WORKFLOWS_DIR

    folder = tmp_path_factory.mktemp("browser")
    settings = Settings(database_url=f"sqlite:///{folder / 'web.sqlite3'}", instance_dir=folder,
                        secret_key="browser-test-secret")
    db = Database.from_settings(settings)
    schema.upgrade(db)
    clock = FixedClock(T0 - timedelta(days=21))
    engine = Engine(db, settings, clock)
    people = {}
    with engine.db.write() as session:
        directory.load_organisations(session, WORKFLOWS_DIR / "organisations.json")
        for username, name, positions in (
            ("nn.cv", "Nguyễn Thị Mai", [("SO_NNPTNT", "staff")]),
            ("nn.ld", "Trần Văn Hùng", [("SO_NNPTNT", "supervisor")]),
        ):
            people[username] = directory.create_user(session, username, name, email=f"{username}@dieuphoi.local",
                                                     password=PASSWORD, positions=positions, at=engine.now()).id
    engine.deploy_path(WORKFLOWS_DIR / "sua_doi_ke_hoach")
    engine.deploy_path(WORKFLOWS_DIR / "du_toan_kinh_phi")
    engine.start_instance(people["nn.cv"], "du_toan_kinh_phi", {"nam_ngan_sach": 2026})  # will be overdue
    clock.set(T0 - timedelta(days=10))
    engine.start_instance(people["nn.cv"], "du_toan_kinh_phi", {"nam_ngan_sach": 2027})  # due soon
    clock.set(T0)
    case = engine.start_instance(people["nn.cv"], "sua_doi_ke_hoach", {})
    app = create_app(engine)  # CSRF on, as in production
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{http.server_port}", "case": case, "engine": engine, "people": people}
    http.shutdown()
    thread.join(timeout=10)
    db.dispose()


@pytest.fixture(scope="module")
def chromium():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def _page(chromium, server, username: str, width: int = 1280, height: int = 900):
    context = chromium.new_context(viewport={"width": width, "height": height}, locale="vi-VN",
                                   timezone_id="Asia/Ho_Chi_Minh")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(server["url"] + "/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server["url"] + "/")
    return page


def _shot(page, name: str, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def _open_task(page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    page.wait_for_url(re.compile(r".*/tasks/\w+$"))


def test_submit_return_resubmit_approve_and_see_the_path(chromium, server):
    staff = _page(chromium, server, "nn.cv")
    expect = sync_api.expect
    expect(staff.locator("h1")).to_have_text("Việc cần xử lý")
    expect(staff.locator(".badge-overdue").first).to_contain_text("Quá hạn")
    _shot(staff, "inbox")

    # Staff open the draft from the inbox; one field is too short.
    _open_task(staff, "Soạn đề xuất sửa đổi")
    staff.fill("#f-so_van_ban", "125/SNN-KH")
    staff.fill("#f-noi_dung_de_xuat", "Ngắn")
    staff.fill("#f-ly_do", "Đáp ứng yêu cầu thực tiễn sản xuất dược liệu")
    staff.locator("#f-kinh_phi_de_xuat").press_sequentially("350000000")
    expect(staff.locator("#f-kinh_phi_de_xuat")).to_have_value("350.000.000")
    staff.get_by_role("button", name="Trình").click()
    expect(staff.locator("#f-noi_dung_de_xuat-err")).to_have_text("Cần ít nhất 10 ký tự.")
    expect(staff.locator("#f-so_van_ban")).to_have_value("125/SNN-KH")
    _shot(staff, "task-invalid")
    staff.fill("#f-noi_dung_de_xuat", "Bổ sung nhiệm vụ ứng dụng công nghệ sinh học trong sản xuất dược liệu")
    staff.get_by_role("button", name="Trình").click()
    staff.wait_for_url(server["url"] + "/")
    expect(staff.locator(".flash-success")).to_contain_text("Đã hoàn thành bước")

    # The supervisor returns it with a reason.
    boss = _page(chromium, server, "nn.ld")
    _open_task(boss, "Lãnh đạo đơn vị phê duyệt")
    expect(boss.locator(".facts")).to_contain_text("125/SNN-KH")
    boss.locator("summary", has_text="Trả lại").click()
    boss.get_by_role("button", name="Trả lại", exact=True).click()
    expect(boss.locator(".field-error")).to_contain_text("bắt buộc")  # the reason is mandatory
    boss.fill("#reason", "Thiếu dự toán kinh phí chi tiết")
    boss.get_by_role("button", name="Trả lại", exact=True).click()
    boss.wait_for_url(server["url"] + "/")

    # Staff see the reason and resubmit.
    staff.goto(server["url"] + "/")
    expect(staff.locator(".badge-returned").first).to_be_visible()
    _open_task(staff, "Soạn đề xuất sửa đổi")
    expect(staff.locator(".callout-warn")).to_contain_text("Thiếu dự toán kinh phí chi tiết")
    _shot(staff, "task-returned")
    staff.fill("#f-ly_do", "Đáp ứng yêu cầu thực tiễn; đã bổ sung dự toán chi tiết")
    staff.fill("#f-noi_dung_de_xuat", "Bổ sung nhiệm vụ ứng dụng công nghệ sinh học trong sản xuất dược liệu")
    staff.get_by_role("button", name="Trình").click()
    staff.wait_for_url(server["url"] + "/")

    # The supervisor approves.
    boss.goto(server["url"] + "/")
    _open_task(boss, "Lãnh đạo đơn vị phê duyệt")
    boss.select_option("#f-quyet_dinh", "phe_duyet")
    boss.fill("#f-y_kien_lanh_dao", "Đồng ý, trình Sở KH&CN")
    _shot(boss, "task")
    boss.get_by_role("button", name="Hoàn thành").click()
    boss.wait_for_url(server["url"] + "/")

    # The case page: history with the return, and the diagram with the path taken.
    boss.goto(f"{server['url']}/instances/{server['case']}")
    expect(boss.locator(".timeline")).to_contain_text("Thiếu dự toán kinh phí chi tiết")
    expect(boss.locator(".timeline")).to_contain_text("Trả lại")
    expect(boss.locator("body")).to_contain_text("350.000.000 đ")
    if VENDOR.exists():
        expect(boss.locator("#diagram")).to_have_attribute("data-rendered", "true")
    _shot(boss, "instance")


def test_case_page_draws_the_path_taken(chromium, server):
    """Done steps green, the current one amber: checked on a case driven through the engine."""
    if not VENDOR.exists():
        pytest.skip("bpmn-js chưa có trong webui/static/vendor (chạy npm ci && npm run vendor) / "
                    "vendor file missing: only the diagram assertion is skipped")
    engine = server["engine"]
    staff, boss = server["people"]["nn.cv"], server["people"]["nn.ld"]
    case = engine.start_instance(staff, "sua_doi_ke_hoach", {})
    engine.complete_task(staff, _open_task_id(engine, case), {
        "so_van_ban": "7/SNN", "noi_dung_de_xuat": "Điều chỉnh tiến độ nhiệm vụ", "ly_do": "Thay đổi nguồn vốn"})
    engine.complete_task(boss, _open_task_id(engine, case), {"quyet_dinh": "phe_duyet"})
    page = _page(chromium, server, "nn.ld")
    page.goto(f"{server['url']}/instances/{case}")
    expect = sync_api.expect
    expect(page.locator("#diagram")).to_have_attribute("data-rendered", "true")
    for element in ("soan_de_xuat", "lanh_dao_duyet"):
        expect(page.locator(f'#diagram [data-element-id="{element}"].dp-done')).to_have_count(1)
    expect(page.locator('#diagram [data-element-id="y_kien_khcn"].dp-current')).to_have_count(1)
    expect(page.locator('#diagram [data-element-id="ubnd_quyet_dinh"].dp-done')).to_have_count(0)
    expect(page.locator("#diagram .djs-connection.dp-done").first).to_be_attached()


def _open_task_id(engine, instance_id: int) -> str:
    from sqlalchemy import select

    from engine.models import HumanTask

    with engine.db.read() as session:
        return session.scalar(select(HumanTask.id).where(HumanTask.instance_id == instance_id,
                                                         HumanTask.state == "open"))


def test_dashboard_and_phone_width(chromium, server):
    boss = _page(chromium, server, "nn.ld")
    boss.goto(server["url"] + "/dashboard")
    sync_api.expect(boss.locator("h1")).to_have_text("Thống kê, báo cáo")
    sync_api.expect(boss.locator("table.stats").first).to_contain_text("Sở Nông nghiệp")
    boss.wait_for_timeout(300)
    _shot(boss, "dashboard")
    phone = _page(chromium, server, "nn.cv", width=390, height=844)
    sync_api.expect(phone.locator(".task-item").first).to_be_visible()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the inbox is wider than a phone: {width}px"
    _shot(phone, "inbox-phone")
    phone.goto(server["url"] + "/instances/" + str(server["case"]))
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    _shot(phone, "instance-phone")
