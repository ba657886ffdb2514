"""`dieuphoi seed`: the org directory, the bundled workflows and, with --demo, people and running cases."""

from __future__ import annotations

from sqlalchemy import func, select

from engine import directory
from engine.models import Instance
from engine.runtime import Engine
from workflows import WORKFLOWS_DIR, process_folders


def seed(engine: Engine, demo: bool = False) -> list[str]:
    report = []
    with engine.db.write() as session:
        count = directory.load_organisations(session, WORKFLOWS_DIR / "organisations.json")
    report.append(f"Đơn vị / organisations: {count}")
    for folder in process_folders():
        result = engine.deploy_path(folder)
        state = "mới / new" if result.created else "không đổi / unchanged"
        report.append(f"Quy trình / process {result.process_key} v{result.version} ({state})")
    if demo:
        with engine.db.write() as session:
            created = directory.load_users(session, WORKFLOWS_DIR / "demo_users.json")
        report.append(f"Người dùng mẫu mới / new demo users: {created}")
        report.extend(_demo_cases(engine))
    return report


def _demo_cases(engine: Engine) -> list[str]:
    with engine.db.read() as session:
        if session.scalar(select(func.count(Instance.id))):
            return ["Hồ sơ mẫu đã có / demo cases already present"]
        staff = directory.user_by_username(session, "so.khcn.cv")
        ids = {u: directory.user_by_username(session, u).id for u in ("so.nnptnt.cv", "so.yt.cv")}
        del staff
    started = 0
    for username, content in (("so.nnptnt.cv", "Bổ sung nhiệm vụ ứng dụng công nghệ sinh học trong sản xuất dược liệu"),
                              ("so.yt.cv", "Điều chỉnh tiến độ chương trình truy xuất nguồn gốc")):
        engine.start_instance(ids[username], "sua_doi_ke_hoach", {"noi_dung_de_xuat": content})
        started += 1
    return [f"Hồ sơ mẫu / demo cases: {started}"]
