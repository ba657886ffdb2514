"""`dieuphoi seed`: the org directory, the bundled workflows and, with --demo, people and running cases.

The demo is a province's office a few weeks into its work, built by driving the engine the way
people would: Sở KH&CN launched the action-plan campaign fifteen working days ago to every unit
that has demo users; since then units drafted, supervisors approved or returned drafts, Sở KH&CN
accepted plans or asked for revisions, and the deadline passed for the slow ones. Budget
estimates, technology-transfer dossiers, plan amendments, a dissemination campaign and a periodic
report move alongside. A second engine with its own `FixedClock` replays those weeks in order,
firing reminders and escalations when they fall due, and stops at the real current time, so the
running app sees a consistent picture (deadlines, badges, emails waiting in the outbox).

Idempotent: a second `seed --demo` finds the campaign and adds nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable

from sqlalchemy import exists, func, or_, select

from engine import directory
from engine.clock import FixedClock
from engine.models import (
    Definition,
    HumanTask,
    Instance,
    InstanceStatus,
    OutboxMessage,
    TaskState,
    Timer,
    TimerState,
    User,
)
from engine.runtime import Engine
from workflows import WORKFLOWS_DIR, process_folders

# Kinds of organisation an action-plan campaign goes to (not UBND tỉnh, not Sở KH&CN itself).
CAMPAIGN_KINDS = ("department", "district", "association", "media")
CAMPAIGN_TITLE = "Thực hiện Kết luận số 50-KL/TW về phát triển khoa học, công nghệ giai đoạn 2026–2030"
CAMPAIGN_DOC = "215/SKHCN-QLKH"
DEMO_DAYS = 15  # working days between the campaign launch and today (the story uses days 0..14)


def seed(engine: Engine, demo: bool = False) -> list[str]:
    report = []
    with engine.db.write() as session:
        count = directory.load_organisations(session, WORKFLOWS_DIR / "organisations.json")
    report.append(f"Đơn vị / organisations: {count}")
    state = _demo_state(engine) if demo else None
    story = _Demo(engine) if state in ("fresh", "ready") else None
    deployer = engine
    if state == "fresh":  # a new demo database: the models were deployed before the weeks the demo replays
        story.clock.set(story.setup_time)
        deployer = story.engine
    for folder in process_folders():
        result = deployer.deploy_path(folder)
        status = "mới / new" if result.created else "không đổi / unchanged"
        report.append(f"Quy trình / process {result.process_key} v{result.version} ({status})")
    if demo:
        with engine.db.write() as session:
            created = directory.load_users(session, WORKFLOWS_DIR / "demo_users.json")
        report.append(f"Người dùng mẫu mới / new demo users: {created}")
        if state == "present":
            report.append("Hồ sơ mẫu đã có, không thêm / demo cases already present, nothing added")
        elif state == "busy":
            report.append("Cơ sở dữ liệu đã có hồ sơ, không thêm hồ sơ mẫu / "
                          "the database already has cases: no demo cases added")
        else:
            story.build()
            story.run()
            report.extend(story.summary())
    return report


def _demo_state(engine: Engine) -> str:
    """fresh (nothing yet), ready (models but no cases), present (the demo ran), busy (someone else's cases)."""
    with engine.db.read() as session:
        if session.scalar(select(Instance.id).where(
                Instance.process_key == "ke_hoach_hanh_dong",
                Instance.title == f"Kế hoạch hành động: {CAMPAIGN_TITLE}").limit(1)) is not None:
            return "present"
        if session.scalar(select(Instance.id).limit(1)) is not None:
            return "busy"
        return "ready" if session.scalar(select(Definition.id).limit(1)) is not None else "fresh"


# --------------------------------------------------------------------------- content

def tax_code(first_nine: str) -> str:
    """A 10-digit Vietnamese tax code (mã số thuế): nine digits and their check digit."""
    if len(first_nine) != 9 or not first_nine.isdigit():
        raise ValueError(f"a tax code starts with nine digits, not {first_nine!r}")
    weights = (31, 29, 23, 19, 17, 13, 7, 5, 3)
    check = 10 - sum(int(d) * w for d, w in zip(first_nine, weights, strict=True)) % 11
    if check > 9:
        raise ValueError(f"no valid tax code starts with {first_nine}")
    return first_nine + str(check)


def _abbr(code: str) -> str:
    """The unit's abbreviation in document numbers: 45/KH-SNNPTNT, 118/KH-UBND."""
    special = {"SO_GDDT": "SGDĐT", "SO_KHDT": "SKHĐT", "LHH_KHKT": "LHH", "BAO_GIA_LAI": "BGL",
               "DAI_PTTH": "PTTH"}
    if code in special:
        return special[code]
    if code.startswith("SO_"):
        return "S" + code[3:]
    return "UBND" if code.startswith("UBND_") else code


def _prefix(code: str) -> str:
    """Demo usernames are the org code, lowercased, with dots: UBND_TP_PLEIKU -> ubnd.tp.pleiku.cv / .ld."""
    return code.lower().replace("_", ".")


# Each unit's main tasks: (task, years from now, estimated cost in đồng).
_UNIT_TASKS: dict[str, list[tuple[str, int, int]]] = {
    "SO_TTTT": [("Xây dựng kho dữ liệu dùng chung và nền tảng tích hợp, chia sẻ dữ liệu của tỉnh", 2, 4_500_000_000),
                ("Phủ sóng di động 4G/5G tại các thôn, làng vùng sâu, vùng xa", 3, 1_200_000_000)],
    "SO_TC": [("Bố trí tối thiểu 2% tổng chi ngân sách địa phương hằng năm cho khoa học và công nghệ", 1, 0),
              ("Hướng dẫn cơ chế khoán chi đến sản phẩm cuối cùng đối với nhiệm vụ khoa học và công nghệ", 1, 0)],
    "SO_KHDT": [("Thu hút đầu tư vào khu công nghệ cao và doanh nghiệp khởi nghiệp đổi mới sáng tạo", 3,
                 800_000_000),
                ("Lồng ghép chỉ tiêu khoa học, công nghệ vào kế hoạch phát triển kinh tế - xã hội 5 năm", 1, 0)],
    "SO_NNPTNT": [("Ứng dụng công nghệ sinh học nhân giống cây dược liệu (sâm Ngọc Linh, đinh lăng)", 2,
                   1_200_000_000),
                  ("Xây dựng mô hình nông nghiệp công nghệ cao sản xuất cà phê, hồ tiêu bền vững", 3, 2_500_000_000),
                  ("Truy xuất nguồn gốc nông sản chủ lực bằng tem điện tử", 2, 450_000_000)],
    "SO_YT": [("Triển khai bệnh án điện tử tại các bệnh viện tuyến tỉnh", 2, 3_000_000_000),
              ("Bảo tồn, phát triển các bài thuốc, cây thuốc quý của đồng bào Jrai, Bahnar", 3, 900_000_000)],
    "SO_CT": [("Hỗ trợ doanh nghiệp đổi mới công nghệ chế biến sâu nông sản", 3, 1_500_000_000),
              ("Phát triển thương mại điện tử cho sản phẩm OCOP của tỉnh", 2, 350_000_000)],
    "SO_GDDT": [("Đưa giáo dục STEM vào các trường trung học cơ sở, trung học phổ thông", 2, 2_000_000_000),
                ("Tổ chức cuộc thi khoa học kỹ thuật cấp tỉnh dành cho học sinh trung học", 1, 250_000_000)],
    "SO_NV": [("Ứng dụng chữ ký số và văn bản điện tử liên thông bốn cấp chính quyền", 1, 300_000_000),
              ("Chính sách thu hút, trọng dụng nhân lực khoa học và công nghệ chất lượng cao", 2, 0)],
    "LHH_KHKT": [("Tư vấn, phản biện và giám định xã hội các chương trình, đề án khoa học, công nghệ", 3,
                  240_000_000),
                 ("Tổ chức Hội thi Sáng tạo kỹ thuật tỉnh Gia Lai", 2, 650_000_000)],
    "BAO_GIA_LAI": [("Duy trì chuyên mục “Khoa học và Đời sống” trên báo in và báo điện tử", 3, 180_000_000)],
    "DAI_PTTH": [("Sản xuất chuyên mục truyền hình “Khoa học công nghệ với nhà nông” hằng tuần", 3, 420_000_000)],
}


def _district_tasks(place: str) -> list[tuple[str, int, int]]:
    return [(f"Ứng dụng tiến bộ kỹ thuật trong sản xuất cà phê, hồ tiêu, cây ăn quả trên địa bàn {place}", 2,
             600_000_000),
            (f"Xây dựng mô hình chuyển đổi số cấp xã, phường tại {place}", 2, 350_000_000),
            ("Tập huấn chuyển giao khoa học kỹ thuật cho đồng bào dân tộc thiểu số", 1, 120_000_000)]


# What each unit has done by today, by position in organisations.json (departments first, districts last).
_FATES = ["accepted", "accepted", "accepted", "revised_accepted", "accepted", "revision_requested",
          "in_review_late", "returned", "at_supervisor", "not_started", "in_review", "accepted",
          "revised_accepted", "returned_resubmitted", "not_started", "accepted_late", "khcn_returned", "accepted",
          "revision_requested", "not_started", "in_review_late", "accepted_late", "not_started", "returned",
          "not_started", "at_supervisor", "in_review", "not_started"]

_SUPERVISOR_RETURNS = [
    "Bổ sung kinh phí dự kiến và nguồn kinh phí cho từng nhiệm vụ.",
    "Thiếu nhiệm vụ về chuyển đổi số; đề nghị rà soát lại theo hướng dẫn tại văn bản số 215/SKHCN-QLKH.",
    "Ghi rõ đơn vị chủ trì, đơn vị phối hợp và sản phẩm đầu ra của từng nhiệm vụ.",
]
_REVISION_REQUESTS = [
    "Đề nghị bổ sung chỉ tiêu định lượng và sản phẩm đầu ra cụ thể của từng nhiệm vụ; thời hạn hoàn thành "
    "phải nằm trong giai đoạn 2026–2030.",
    "Kinh phí dự kiến chưa tách nguồn ngân sách tỉnh và nguồn xã hội hóa; đề nghị làm rõ trước khi tổng hợp.",
    "Nhiệm vụ 1 trùng với nhiệm vụ đã giao tại Kế hoạch số 112/KH-UBND của UBND tỉnh; đề nghị điều chỉnh.",
]


class _Demo:
    """The demo's weeks, as timed events replayed by an engine whose clock only this class moves."""

    def __init__(self, app: Engine):
        self.now = app.now()
        self.tz = app.tz
        self.cal = app.calendar
        days, d = [], self.now.astimezone(self.tz).date()
        while len(days) < DEMO_DAYS + 1:
            d -= timedelta(days=1)
            if self.cal.is_working_day(d):
                days.append(d)
        days.reverse()
        self.setup_day, self.days = days[0], days[1:]  # days[-1] is the last working day before today
        self.setup_time = self._local(self.setup_day, 16, 0)
        self.clock = FixedClock(self.setup_time)
        self.engine = Engine(app.db, app.settings, self.clock)
        self.events: list[tuple[datetime, int, Callable, tuple]] = []
        self.cases: dict[str, int] = {}
        self.users: dict[str, int] = {}

    # ------------------------------------------------------------ time
    def _local(self, d: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(d, time(hour, minute), tzinfo=self.tz).astimezone(timezone.utc)

    def day(self, i: int) -> date:
        return self.days[i]

    def on(self, i: int, hour: int, minute: int, action: Callable, *args) -> None:
        self.events.append((self._local(self.days[i], hour, minute), len(self.events), action, args))

    def future_workday(self, n: int) -> date:
        return self.cal.add_working_days(self.now, n).astimezone(self.tz).date()

    def run(self) -> None:
        """Replay the events in time order; timers fire at their own due time in between."""
        for when, _, action, args in sorted(self.events, key=lambda e: (e[0], e[1])):
            self._advance(when)
            action(*args)
        self._advance(self.now)

    def _advance(self, until: datetime) -> None:
        for _ in range(10_000):  # bounded: a failing timer ends, visibly, in the failed state
            due = self._next_due(until)
            if due is None:
                break
            self.clock.set(max(due, self.clock.now()))
            self.engine.fire_due_timers()
        self.clock.set(max(until, self.clock.now()))

    def _next_due(self, until: datetime) -> datetime | None:
        running = exists().where(Instance.id == Timer.instance_id, Instance.status == InstanceStatus.RUNNING.value)
        with self.engine.db.read() as session:
            return session.scalar(select(func.min(Timer.due_at)).where(
                Timer.state == TimerState.PENDING.value, Timer.due_at <= until,
                or_(Timer.instance_id.is_(None), running)))

    # ------------------------------------------------------------ actions
    def uid(self, username: str) -> int:
        if username not in self.users:
            with self.engine.db.read() as session:
                user = directory.user_by_username(session, username)
                if user is None:
                    raise LookupError(f"demo user '{username}' is missing")
                self.users[username] = user.id
        return self.users[username]

    def task(self, case: str, name: str, unit: str | None = None) -> HumanTask:
        with self.engine.db.read() as session:
            rows = list(session.scalars(select(HumanTask).where(
                HumanTask.instance_id == self.cases[case], HumanTask.task_name == name,
                HumanTask.state == TaskState.OPEN.value)))
        if unit is not None:
            rows = [r for r in rows if r.org_code == unit or (r.business or {}).get("don_vi") == unit]
        if len(rows) != 1:
            raise LookupError(f"demo: {len(rows)} open '{name}' tasks in {case} for {unit}, expected one")
        return rows[0]

    def start(self, case: str, username: str, process_key: str, data: dict) -> None:
        self.cases[case] = self.engine.start_instance(self.uid(username), process_key, data)

    def complete(self, case: str, name: str, username: str, data: dict, unit: str | None = None) -> None:
        self.engine.complete_task(self.uid(username), self.task(case, name, unit).id, data)

    def send_back(self, case: str, name: str, username: str, reason: str, unit: str | None = None) -> None:
        self.engine.return_task(self.uid(username), self.task(case, name, unit).id, reason)

    def claim(self, case: str, name: str, username: str, unit: str | None = None) -> None:
        self.engine.claim(self.uid(username), self.task(case, name, unit).id)

    def comment(self, case: str, username: str, body: str) -> None:
        self.engine.add_comment(self.uid(username), self.cases[case], body)

    # ------------------------------------------------------------ the story
    def build(self) -> None:
        self._campaign()
        self._budget_estimates()
        self._technology_transfer()
        self._amendments()
        self._dissemination()
        self._periodic_report()

    def campaign_units(self) -> list[tuple[str, str]]:
        """(code, name) of the units the campaign goes to: in the directory with a staff and a supervisor."""
        rows = json.loads((WORKFLOWS_DIR / "organisations.json").read_text(encoding="utf-8"))
        with self.engine.db.read() as session:
            names = set(session.scalars(select(User.username)))
        return [(r["code"], r["name_vi"]) for r in rows
                if r.get("kind", "department") in CAMPAIGN_KINDS and r["code"] not in ("UBND_TINH", "SO_KHCN")
                and {f"{_prefix(r['code'])}.cv", f"{_prefix(r['code'])}.ld"} <= names]

    def _plan(self, index: int, code: str, name: str, version: int = 1) -> dict:
        year = self.now.astimezone(self.tz).year
        place = name.removeprefix("UBND ")
        tasks = _UNIT_TASKS.get(code) or _district_tasks(place)
        items = []
        for n, (title, years, cost) in enumerate(tasks):
            item = {"ten_nhiem_vu": title, "thoi_han": f"{min(year + years, 2030)}-{'06-30' if n % 2 else '12-31'}"}
            if cost or version > 1:
                item["kinh_phi_du_kien"] = cost or 50_000_000
            items.append(item)
        number = 30 + (index * 37) % 190 + (9 if version > 1 else 0)
        text = (f"Kế hoạch hành động của {name} thực hiện Kết luận số 50-KL/TW giai đoạn 2026–2030, theo hướng dẫn "
                f"tại văn bản số {CAMPAIGN_DOC} của Sở Khoa học và Công nghệ: {len(items)} nhiệm vụ, giải pháp "
                "chủ yếu gắn với kế hoạch phát triển kinh tế - xã hội của đơn vị.")
        if version > 1:
            text += " Bản đã chỉnh sửa, bổ sung theo ý kiến góp ý."
        return {"so_van_ban_don_vi": f"{number}/KH-{_abbr(code)}", "noi_dung_ke_hoach": text, "nhiem_vu": items,
                "tep_dinh_kem": [f"ke-hoach-hanh-dong-{_abbr(code).lower()}-v{version}.pdf"]}

    def _campaign(self) -> None:
        units = self.campaign_units()
        deadline = self.day(8)
        self.on(0, 8, 30, self.start, "campaign", "so.khcn.cv", "ke_hoach_hanh_dong", {
            "ten_ke_hoach": CAMPAIGN_TITLE,
            "so_van_ban": CAMPAIGN_DOC,
            "han_nop": deadline.isoformat(),
            "noi_dung_huong_dan": (
                "Thực hiện Kết luận số 50-KL/TW, Sở Khoa học và Công nghệ đề nghị các sở, ban, ngành, đoàn thể và "
                "UBND các huyện, thị xã, thành phố xây dựng kế hoạch hành động của đơn vị, xác định rõ nhiệm vụ, "
                "giải pháp, thời hạn hoàn thành và kinh phí dự kiến; gửi về Sở Khoa học và Công nghệ trước ngày "
                f"{deadline:%d/%m/%Y} để tổng hợp, báo cáo UBND tỉnh."),
            "don_vi_thuc_hien": [code for code, _ in units],
        })
        self.on(4, 9, 15, self.comment, "campaign", "so.khcn.cv",
                "Đã gửi văn bản đôn đốc qua hệ thống quản lý văn bản; đề nghị các đơn vị chưa triển khai khẩn "
                "trương lập kế hoạch.")
        self.on(10, 8, 45, self.comment, "campaign", "so.khcn.ld",
                "Quá hạn nộp kế hoạch: phòng Quản lý khoa học tổng hợp danh sách đơn vị chậm nộp, báo cáo Giám đốc Sở.")
        for index, (code, name) in enumerate(units):
            self._unit_story(index, code, name, _FATES[index % len(_FATES)])

    def _unit_story(self, i: int, code: str, name: str, fate: str) -> None:
        cv, ld, khcn = f"{_prefix(code)}.cv", f"{_prefix(code)}.ld", "so.khcn.cv"
        j = i % 3
        minute = (i * 7) % 50

        def draft(day, version=1, hour=9):
            self.on(day, hour, minute, self.complete, "campaign", "soan_ke_hoach", cv,
                    self._plan(i, code, name, version), code)

        def approve(day, hour=14):
            self.on(day, hour, minute, self.complete, "campaign", "lanh_dao_phe_duyet", ld,
                    {"y_kien_lanh_dao": "Đồng ý, trình Sở Khoa học và Công nghệ."}, code)

        def accept(day):
            self.on(day, 10, minute, self.complete, "campaign", "xem_xet_ke_hoach", khcn,
                    {"ket_qua_xem_xet": "chap_thuan",
                     "y_kien_xem_xet": "Kế hoạch phù hợp với hướng dẫn; đưa vào tổng hợp."}, code)

        def revise(day):
            self.on(day, 15, minute, self.complete, "campaign", "xem_xet_ke_hoach", khcn,
                    {"ket_qua_xem_xet": "yeu_cau_chinh_sua",
                     "y_kien_xem_xet": _REVISION_REQUESTS[i % len(_REVISION_REQUESTS)]}, code)

        def supervisor_returns(day):
            self.on(day, 16, minute, self.send_back, "campaign", "lanh_dao_phe_duyet", ld,
                    _SUPERVISOR_RETURNS[i % len(_SUPERVISOR_RETURNS)], code)

        if fate == "accepted":
            draft(2 + j), approve(3 + j), accept(5 + j)
        elif fate == "accepted_late":  # after the deadline: the draft was escalated first
            draft(9 + j % 2), approve(10 + j % 2), accept(12)
        elif fate == "revised_accepted":
            draft(1), approve(2), revise(4), draft(6, 2), approve(7), accept(10)
        elif fate == "revision_requested":  # back at drafting with Sở KH&CN's comments
            draft(3), approve(4), revise((7, 9, 8)[j])
        elif fate == "returned":  # the unit's supervisor sent it back (return_task), still being redrafted
            draft(5), supervisor_returns(6 + j)
        elif fate == "returned_resubmitted":  # returned, redrafted, and the supervisor is sitting on it
            draft(4), supervisor_returns(5), draft(7, 2)
        elif fate == "at_supervisor":
            draft(12 + j % 2)
        elif fate == "in_review":
            draft(9), approve(11)
        elif fate == "in_review_late":  # Sở KH&CN has not reviewed it in 5 working days
            draft(4), approve(5)
        elif fate == "khcn_returned":  # sent to Sở KH&CN unsigned: back to the unit's supervisor
            draft(5), approve(6)
            self.on(9, 11, minute, self.send_back, "campaign", "xem_xet_ke_hoach", khcn,
                    "Văn bản trình chưa có chữ ký số của lãnh đạo đơn vị; đề nghị ký số và trình lại.", code)
        elif fate == "not_started" and j == 0:  # taken by the unit's staff, then left
            self.on(2, 8, minute, self.claim, "campaign", "soan_ke_hoach", cv, code)

    def _budget_estimates(self) -> None:
        """One estimate for next year at each stage, each from a different unit."""
        year = self.now.astimezone(self.tz).year + 1
        estimates = {
            # unit: (document, line items)
            "SO_TTTT": ("52/DT-STTTT", [
                ("Duy trì, nâng cấp Trung tâm giám sát, điều hành đô thị thông minh", 1_450_000_000),
                ("Đào tạo kỹ năng số cho cán bộ, công chức cấp xã", 320_000_000)]),
            "UBND_TP_PLEIKU": ("118/DT-UBND", [
                ("Mô hình trồng rau thủy canh ứng dụng IoT tại phường Thắng Lợi", 680_000_000),
                ("Hội thảo ứng dụng khoa học, công nghệ phát triển kinh tế đô thị", 95_000_000)]),
            "SO_NNPTNT": ("45/DT-SNNPTNT", [
                ("Đề tài ứng dụng công nghệ sinh học nhân giống cây dược liệu", 850_000_000),
                ("Hội thảo khoa học chuyên đề nông nghiệp công nghệ cao", 150_000_000)]),
            "LHH_KHKT": ("21/DT-LHH", [
                ("Hội thi Sáng tạo kỹ thuật tỉnh Gia Lai", 650_000_000),
                ("Tư vấn, phản biện và giám định xã hội", 240_000_000),
                ("Hội thảo “Khoa học, công nghệ với phát triển bền vững Tây Nguyên”", 380_000_000)]),
            "SO_YT": ("67/DT-SYT", [
                ("Nghiên cứu ứng dụng trí tuệ nhân tạo hỗ trợ chẩn đoán hình ảnh", 1_200_000_000),
                ("Điều tra, đánh giá nguồn dược liệu tự nhiên tại huyện KBang", 560_000_000)]),
            "SO_CT": ("39/DT-SCT", [
                ("Hỗ trợ doanh nghiệp áp dụng hệ thống quản lý an toàn thực phẩm ISO 22000", 420_000_000),
                ("Xây dựng nhãn hiệu chứng nhận cà phê Gia Lai", 380_000_000)]),
            "SO_GDDT": ("83/DT-SGDĐT", [
                ("Trang bị phòng học STEM cho 10 trường trung học cơ sở", 1_100_000_000),
                ("Cuộc thi khoa học kỹ thuật cấp tỉnh dành cho học sinh trung học", 210_000_000)]),
        }
        for code, (document, items) in estimates.items():
            cv, ld, case = f"{_prefix(code)}.cv", f"{_prefix(code)}.ld", f"budget:{code}"
            total = sum(amount for _, amount in items)
            balanced = total // 10_000_000 * 9_000_000  # Sở KH&CN trims about a tenth, in whole millions
            estimate = {"so_van_ban": document, "tong_so_tien": total,
                        "cac_khoan_chi": [{"noi_dung": text, "so_tien": amount} for text, amount in items],
                        "thuyet_minh": f"Dự toán kinh phí khoa học và công nghệ năm {year}, lập theo hướng dẫn "
                                       "của Sở Khoa học và Công nghệ và Sở Tài chính.",
                        "tep_dinh_kem": [f"du-toan-{year}-{_abbr(code).lower()}.xlsx"]}

            def start(day, case=case, cv=cv):
                self.on(day, 8, 15, self.start, case, cv, "du_toan_kinh_phi", {"nam_ngan_sach": year})

            def submit(day, case=case, cv=cv, estimate=estimate):
                self.on(day, 10, 0, self.complete, case, "lap_du_toan", cv, estimate)

            def approve(day, case=case, ld=ld):
                self.on(day, 15, 30, self.complete, case, "lanh_dao_duyet", ld,
                        {"quyet_dinh_lanh_dao": "trinh", "y_kien_lanh_dao": "Đồng ý trình Sở KH&CN cân đối."})

            def balance(day, case=case, balanced=balanced):
                self.on(day, 10, 30, self.complete, case, "can_doi", "so.khcn.cv",
                        {"ket_qua_can_doi": "dong_y", "so_tien_can_doi": balanced,
                         "y_kien_can_doi": "Cân đối trong tổng nguồn sự nghiệp khoa học và công nghệ của tỉnh."})

            def appraise(tc_day, khdt_day, case=case):
                if tc_day is not None:
                    self.on(tc_day, 9, 0, self.complete, case, "tham_dinh_tc", "so.tc.cv",
                            {"ket_qua_tham_dinh_tc": "dong_y", "so_van_ban_tc": f"{1020 + tc_day}/STC-HCSN"})
                self.on(khdt_day, 14, 0, self.complete, case, "tham_dinh_khdt", "so.khdt.cv",
                        {"ket_qua_tham_dinh_khdt": "dong_y", "so_van_ban_khdt": f"{845 + khdt_day}/SKHĐT-VX"})

            if code == "SO_TTTT":  # allocated by UBND tỉnh: completed
                start(0), submit(1), approve(2), balance(4), appraise(8, 9)
                self.on(11, 16, 0, self.complete, case, "quyet_dinh_phan_bo", "ubnd.tinh.lanhdao",
                        {"quyet_dinh_ubnd": "phan_bo", "so_tien_phan_bo": balanced - 50_000_000,
                         "so_quyet_dinh": "2345/QĐ-UBND"})
            elif code == "UBND_TP_PLEIKU":  # waiting for UBND tỉnh's decision
                start(0), submit(1), approve(2), balance(4), appraise(8, 9)
            elif code == "SO_NNPTNT":  # parallel appraisal: Sở KH&ĐT agreed, Sở Tài chính is late
                start(0), submit(1), approve(2), balance(4), appraise(None, 9)
            elif code == "LHH_KHKT":  # Sở KH&CN sent it back to the unit, with the reason
                start(1), submit(2), approve(3)
                self.on(8, 9, 40, self.complete, case, "can_doi", "so.khcn.cv", {
                    "ket_qua_can_doi": "tra_lai",
                    "y_kien_can_doi": "Kinh phí tổ chức hội thảo vượt định mức chi hội nghị, hội thảo của tỉnh; "
                                      "đề nghị rà soát, điều chỉnh và bổ sung thuyết minh."})
            elif code == "SO_YT":  # at Sở KH&CN, balancing
                start(3), submit(4), approve(5)
            elif code == "SO_CT":  # with the unit's supervisor
                start(9), submit(13)
            else:  # SO_GDDT: still drafting
                start(12)

    def _technology_transfer(self) -> None:
        key = "ho_tro_chuyen_giao_cong_nghe"
        # Waiting for the enterprise to supplement its dossier (30-day limit, then it closes itself).
        self.on(5, 9, 20, self.start, "transfer:supplement", "so.khcn.cv", key, {
            "ten_doanh_nghiep": "Công ty TNHH Nông nghiệp công nghệ cao Gia Lai",
            "ma_so_thue": tax_code("590078123"),
            "dia_chi": "Lô B5, Khu công nghiệp Trà Đa, thành phố Pleiku, tỉnh Gia Lai",
            "nguoi_dai_dien": "Nguyễn Văn Thành",
            "dien_thoai": "0269 3824 567",
            "email": "lienhe@nnccgialai.vn",
            "cong_nghe": "Nhà màng tự động điều khiển vi khí hậu và tưới nhỏ giọt theo cảm biến độ ẩm cho rau, "
                         "dưa lưới",
            "linh_vuc_uu_tien": "nong_nghiep_cong_nghe_cao",
            "so_tien_de_nghi": 450_000_000,
            "tep_dinh_kem": ["don-de-nghi-ho-tro.pdf", "thuyet-minh-du-an-doi-moi-cong-nghe.pdf",
                             "giay-chung-nhan-dang-ky-doanh-nghiep.pdf"],
        })
        self.on(7, 14, 10, self.complete, "transfer:supplement", "kiem_tra_ho_so", "so.khcn.cv", {
            "ket_qua_kiem_tra": "yeu_cau_bo_sung",
            "noi_dung_yeu_cau_bo_sung": "Bổ sung bản sao hợp đồng chuyển giao công nghệ đã ký với bên chuyển giao "
                                        "và báo cáo tài chính năm gần nhất có xác nhận của cơ quan thuế."})
        # Further along: approved by the director, above 500 million đồng, so UBND tỉnh decides.
        self.on(0, 10, 5, self.start, "transfer:ubnd", "so.khcn.cv", key, {
            "ten_doanh_nghiep": "Công ty Cổ phần Dược liệu Kon Hà Nừng",
            "ma_so_thue": tax_code("590123456"),
            "dia_chi": "Xã Đông, huyện KBang, tỉnh Gia Lai",
            "nguoi_dai_dien": "Trần Thị Mỹ Linh",
            "dien_thoai": "0269 3834 118",
            "email": "info@duoclieukonhanung.vn",
            "cong_nghe": "Chiết xuất cao dược liệu bằng CO2 siêu tới hạn, công suất 500 kg nguyên liệu/ngày",
            "linh_vuc_uu_tien": "cong_nghiep_duoc_lieu",
            "so_tien_de_nghi": 800_000_000,
            "tep_dinh_kem": ["don-de-nghi-ho-tro.pdf", "thuyet-minh-cong-nghe.pdf", "hop-dong-chuyen-giao.pdf",
                             "bao-cao-tai-chinh.pdf"],
        })
        self.on(1, 9, 0, self.complete, "transfer:ubnd", "kiem_tra_ho_so", "so.khcn.cv",
                {"ket_qua_kiem_tra": "day_du"})
        self.on(5, 16, 0, self.complete, "transfer:ubnd", "tham_dinh_ho_so", "so.khcn.cv", {
            "bao_cao_tham_dinh": "Công nghệ tiên tiến, phù hợp định hướng phát triển công nghiệp dược liệu của "
                                 "tỉnh; doanh nghiệp đủ năng lực tiếp nhận.",
            "de_xuat_tham_dinh": "de_nghi_ho_tro", "so_tien_tham_dinh_de_xuat": 700_000_000})
        self.on(9, 15, 0, self.complete, "transfer:ubnd", "y_kien_hoi_dong", "so.khcn.cv", {
            "ket_luan_hoi_dong": "thong_qua",
            "y_kien_hoi_dong": "Hội đồng thống nhất đề nghị hỗ trợ; đề nghị doanh nghiệp cam kết bao tiêu "
                               "nguyên liệu cho người trồng dược liệu trên địa bàn.",
            "so_tien_hoi_dong_de_xuat": 650_000_000, "so_bien_ban": "15/BB-HĐTV"})
        self.on(11, 10, 30, self.complete, "transfer:ubnd", "quyet_dinh_giam_doc", "so.khcn.ld", {
            "quyet_dinh_giam_doc": "ho_tro", "so_tien_ho_tro": 650_000_000, "so_quyet_dinh": "112/TTr-SKHCN"})
        # Received last week and complete: being appraised.
        self.on(8, 8, 50, self.start, "transfer:appraisal", "so.khcn.cv", key, {
            "ten_doanh_nghiep": "Công ty TNHH Chế biến nông sản Chư Sê",
            "ma_so_thue": tax_code("590109876"),
            "dia_chi": "Thị trấn Chư Sê, huyện Chư Sê, tỉnh Gia Lai",
            "nguoi_dai_dien": "Lê Quang Vinh",
            "cong_nghe": "Dây chuyền sấy lạnh hồ tiêu, cà phê nhân bằng bơm nhiệt, 2 tấn/mẻ",
            "linh_vuc_uu_tien": "che_tao_che_bien",
            "so_tien_de_nghi": 380_000_000,
            "tep_dinh_kem": ["don-de-nghi-ho-tro.pdf", "thuyet-minh-cong-nghe.pdf"],
        })
        self.on(10, 10, 40, self.complete, "transfer:appraisal", "kiem_tra_ho_so", "so.khcn.cv",
                {"ket_qua_kiem_tra": "day_du"})

    def _amendments(self) -> None:
        key = "sua_doi_ke_hoach"
        cases = [
            # (unit, start day, document, proposal, reason, amount)
            ("SO_NNPTNT", 2, "125/SNNPTNT-KH", "Bổ sung nhiệm vụ ứng dụng công nghệ sinh học trong sản xuất dược liệu",
             "Giống sâm Ngọc Linh nuôi cấy mô đã được công nhận tiến bộ kỹ thuật, cần đưa vào kế hoạch năm tới.",
             1_200_000_000),
            ("SO_YT", 6, "88/SYT-KHTC", "Điều chỉnh tiến độ nhiệm vụ triển khai bệnh án điện tử",
             "Nhà thầu phần mềm chậm bàn giao; đề nghị lùi thời hạn hoàn thành sang quý II năm sau.", None),
            ("SO_CT", 11, "61/SCT-QLCN", "Điều chỉnh tiến độ chương trình truy xuất nguồn gốc nông sản chủ lực",
             "Bổ sung sản phẩm chanh dây và sầu riêng theo đề nghị của các hợp tác xã.", 300_000_000),
        ]
        for code, day, document, proposal, reason, amount in cases:
            cv, ld, case = f"{_prefix(code)}.cv", f"{_prefix(code)}.ld", f"amendment:{code}"
            draft = {"so_van_ban": document, "noi_dung_de_xuat": proposal, "ly_do": reason}
            if amount:
                draft["kinh_phi_de_xuat"] = amount
            self.on(day, 8, 40, self.start, case, cv, key, {"noi_dung_de_xuat": proposal})
            self.on(day, 11, 20, self.complete, case, "soan_de_xuat", cv, draft)
            if code == "SO_NNPTNT":  # approved by the unit: Sở KH&CN gives its opinion next
                self.on(day + 2, 9, 30, self.complete, case, "lanh_dao_duyet", ld,
                        {"quyet_dinh": "phe_duyet", "y_kien_lanh_dao": "Đồng ý trình Sở KH&CN."})
            elif code == "SO_YT":  # the supervisor sent it back for more detail
                self.on(day + 2, 15, 10, self.send_back, case, "lanh_dao_duyet", ld,
                        "Bổ sung dự toán kinh phí chi tiết và ý kiến của các đơn vị phối hợp.")

    def _dissemination(self) -> None:
        year = self.now.astimezone(self.tz).year
        units = ["SO_GDDT", "LHH_KHKT", "UBND_TP_PLEIKU", "UBND_H_CHU_SE", "UBND_H_DAK_DOA"]
        units = [u for u in units if u in {c for c, _ in self.campaign_units()}]
        case = "dissemination"
        self.on(1, 9, 10, self.start, case, "so.khcn.cv", "tuyen_truyen",
                {"ten_dot_tuyen_truyen": f"Quán triệt Kết luận số 50-KL/TW năm {year}", "nam": year})
        self.on(2, 15, 0, self.complete, case, "soan_noi_dung", "so.khcn.cv", {
            "noi_dung_tuyen_truyen": "Quán triệt Kết luận số 50-KL/TW đến cán bộ, công chức, viên chức và nhân dân; "
                                     "giới thiệu các mô hình ứng dụng khoa học, công nghệ hiệu quả trên địa bàn tỉnh.",
            "hinh_thuc": ["hoi_nghi", "bao_chi", "phat_thanh_truyen_hinh", "cong_thong_tin"],
            "thoi_gian_bat_dau": self.day(5).isoformat(),
            "thoi_gian_ket_thuc": self.future_workday(40).isoformat(),
            "don_vi_tham_gia": units,
            "tep_dinh_kem": ["de-cuong-tuyen-truyen-kl50.docx"],
        })
        self.on(3, 10, 0, self.complete, case, "phe_duyet_noi_dung", "so.khcn.ld",
                {"y_kien_phe_duyet": "Đồng ý triển khai; phối hợp Sở TT&TT định hướng báo chí."})
        for day, unit, sessions, people in ((12, "LHH_KHKT", 3, 240), (13, "UBND_TP_PLEIKU", 5, 410)):
            if unit in units:
                self.on(day, 14, 30, self.complete, case, "bao_cao_don_vi", f"{_prefix(unit)}.cv",
                        {"so_buoi": sessions, "so_nguoi_tham_du": people,
                         "hinh_thuc_khac": "Lồng ghép trong sinh hoạt chi bộ và hội nghị giao ban."}, unit)

    def _periodic_report(self) -> None:
        local = self.now.astimezone(self.tz)
        quarter, year = (local.month - 1) // 3, local.year
        if quarter == 0:
            quarter, year = 4, year - 1
        period = f"Quý {['I', 'II', 'III', 'IV'][quarter - 1]} năm {year}"
        units = ["SO_NNPTNT", "SO_YT", "SO_CT", "UBND_TP_PLEIKU", "UBND_TX_AN_KHE", "UBND_H_CHU_SE"]
        units = [u for u in units if u in {c for c, _ in self.campaign_units()}]
        case = "report"
        self.on(4, 8, 0, self.start, case, "so.khcn.cv", "bao_cao_dinh_ky", {
            "ten_ky_bao_cao": period, "so_van_ban": "520/SKHCN-VP",
            "han_nop": self.future_workday(5).isoformat(), "don_vi_bao_cao": units})

        def report(unit: str) -> dict:
            return {"so_van_ban_bao_cao": f"{31 + len(unit)}/BC-{_abbr(unit)}",
                    "ket_qua_thuc_hien": f"{period}: đơn vị đã triển khai các nhiệm vụ khoa học, công nghệ theo kế "
                                         "hoạch; các nhiệm vụ chuyển tiếp đúng tiến độ.",
                    "so_nhiem_vu_hoan_thanh": 2 + len(unit) % 4, "so_nhiem_vu_dang_thuc_hien": 1 + len(unit) % 3,
                    "kinh_phi_da_su_dung": 120_000_000 + 10_000_000 * len(unit),
                    "kho_khan_vuong_mac": "Nguồn nhân lực thực hiện nhiệm vụ còn thiếu."}

        for unit, drafted, signed in (("SO_NNPTNT", 8, 9), ("UBND_TP_PLEIKU", 10, 12), ("SO_YT", 13, None)):
            if unit not in units:
                continue
            self.on(drafted, 10, 15, self.complete, case, "soan_bao_cao", f"{_prefix(unit)}.cv", report(unit), unit)
            if signed is not None:
                self.on(signed, 16, 20, self.complete, case, "ky_duyet_bao_cao", f"{_prefix(unit)}.ld",
                        {"y_kien_ky_duyet": "Đồng ý gửi Sở KH&CN."}, unit)

    # ------------------------------------------------------------ report
    def summary(self) -> list[str]:
        with self.engine.db.read() as session:
            ids = list(self.cases.values())
            statuses = Counter(session.execute(select(Instance.process_key, Instance.status)
                                               .where(Instance.id.in_(ids))).all())
            open_tasks = session.execute(select(HumanTask.process_key, HumanTask.task_name, HumanTask.due_at)
                                         .where(HumanTask.instance_id.in_(ids),
                                                HumanTask.state == TaskState.OPEN.value)).all()
            returned = session.scalar(select(func.count(HumanTask.id)).where(
                HumanTask.instance_id.in_(ids), HumanTask.state == TaskState.RETURNED.value))
            mail = Counter(session.scalars(select(OutboxMessage.kind).where(OutboxMessage.instance_id.in_(ids))))
            failed = session.scalar(select(func.count(Timer.id)).where(Timer.state == TimerState.FAILED.value))
        lines = [f"Hồ sơ mẫu / demo cases: {len(ids)} "
                 f"({self.days[0]:%d/%m/%Y} → {self.now.astimezone(self.tz):%d/%m/%Y %H:%M})"]
        for key in sorted({k for k, _ in statuses}):
            counts = {s: n for (k, s), n in statuses.items() if k == key}
            tasks = Counter(name for k, name, _ in open_tasks if k == key)
            late = sum(1 for k, _, due in open_tasks if k == key and due is not None and due < self.now)
            parts = ", ".join(f"{name} {n}" for name, n in sorted(tasks.items()))
            lines.append(f"  {key}: {sum(counts.values())} hồ sơ ({counts.get('running', 0)} đang xử lý, "
                         f"{counts.get('completed', 0)} xong); việc mở: {parts or '-'}; quá hạn {late}")
        lines.append(f"  Trả lại / returned: {returned}; email trong hộp thư đi / outbox: {sum(mail.values())} ("
                     + ", ".join(f"{k} {n}" for k, n in sorted(mail.items())) + ")")
        if failed:
            lines.append(f"  Cảnh báo / warning: {failed} bộ hẹn giờ lỗi / failed timers")
        return lines

