"""The inbox search in SQL: the stored, folded text of each task (human_tasks.search_text), how the
write path and migration 0007 fill it, and `queries.search_condition` matching exactly what the
Python matcher it replaced matched (`needle in fold(case id, step, case title, process title,
business values)`)."""

from __future__ import annotations

import importlib.util
import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import insert, select, text

from engine import schema
from engine.db import Database
from engine.definitions import Bundle
from engine.descriptor import fold
from engine.models import Definition, HumanTask, Instance
from engine.projections import display_title, search_text
from engine.queries import search_condition
from tests.conftest import T0
from tests.engine.helpers import instance, only_open_task
from workflows import WORKFLOWS_DIR

PROPOSAL = {"so_van_ban": "125/SNN-KH", "noi_dung_de_xuat": "Bổ sung nhiệm vụ ứng dụng công nghệ sinh học",
            "ly_do": "Đáp ứng yêu cầu thực tiễn sản xuất dược liệu"}
MIGRATION = Path(schema.MIGRATIONS) / "versions" / "0007_task_search_text.py"


def python_matcher(needle: str, row: dict, process_title: str, template: str | None) -> bool:
    """The inbox's search before it moved to SQL (webui/views/tasks.py, and bench/inbox.py's reference)."""
    return fold(needle) in fold(" ".join(
        [str(row["instance_id"]), row["title"] or "", display_title(row["case_title"], template, row["business"]) or "",
         process_title] + [str(v) for v in (row["business"] or {}).values()]))


def stored_text(session, task_id: str) -> str | None:
    return session.scalar(select(HumanTask.search_text).where(HumanTask.id == task_id))


# ------------------------------------------------------------------ the write path
@pytest.fixture
def amendment(engine, people):
    engine.deploy_path(WORKFLOWS_DIR / "sua_doi_ke_hoach")
    return "sua_doi_ke_hoach"


def test_a_new_task_row_carries_its_folded_search_text(engine, people, amendment):
    iid = engine.start_instance(people["nn.cv"], amendment, {})
    task = only_open_task(engine, iid, "soan_de_xuat")
    with engine.db.read() as s:
        stored = stored_text(s, task.id)
    assert stored == search_text(iid, task.title, instance(engine, iid).title, task.business)
    assert stored.startswith(f"{iid} soan de xuat sua doi") and "\n" in stored  # folded: no accents, lower case


def test_each_new_step_carries_the_case_title_and_fields_as_they_are_then(engine, people, amendment):
    iid = engine.start_instance(people["nn.cv"], amendment, {})
    draft = only_open_task(engine, iid, "soan_de_xuat")
    with engine.db.read() as s:
        before = stored_text(s, draft.id)
    assert "125/snn-kh" not in before
    engine.claim(people["nn.cv"], draft.id)
    engine.complete_task(people["nn.cv"], draft.id, PROPOSAL)
    review = only_open_task(engine, iid)
    with engine.db.read() as s:
        after, first = stored_text(s, review.id), stored_text(s, draft.id)
    # The fields filled in by the first step, and the case title the template renders from them
    # (the title stored when the case started had nothing after "Sửa đổi kế hoạch: ").
    assert "sua doi ke hoach: bo sung nhiem vu ung dung cong nghe sinh hoc" in after
    assert after.endswith("\n125/snn-kh bo sung nhiem vu ung dung cong nghe sinh hoc")
    assert first == before  # a finished step keeps the text it was shown with


def test_a_case_on_an_older_version_is_titled_with_the_latest_template(engine, people, amendment):
    iid = engine.start_instance(people["nn.cv"], amendment, {})
    bundle = Bundle.from_path(WORKFLOWS_DIR / "sua_doi_ke_hoach", engine.settings.max_upload_bytes)
    bundle.descriptor = {**bundle.descriptor, "title_template": "Đề nghị điều chỉnh: {noi_dung_de_xuat}"}
    assert engine.deploy_bundle(bundle).version == 2
    draft = only_open_task(engine, iid, "soan_de_xuat")
    engine.claim(people["nn.cv"], draft.id)
    engine.complete_task(people["nn.cv"], draft.id, PROPOSAL)
    with engine.db.read() as s:
        after = stored_text(s, only_open_task(engine, iid).id)
    assert "de nghi dieu chinh: bo sung nhiem vu" in after and "sua doi ke hoach:" not in after


# ------------------------------------------------------------------ SQL matches the Python matcher
PROCESSES = {  # key -> (title the reader sees, title template)
    "ke_hoach": ("Kế hoạch hành động của các đơn vị", "Kế hoạch hành động: {ten}"),
    "du_toan": ("Dự toán kinh phí khoa học và công nghệ hằng năm", ""),
    "la": ("  ", "{so}"),  # a title that folds to nothing
}
ROWS = [  # (process, task title, stored case title, business fields)
    ("ke_hoach", "Soạn kế hoạch", "Kế hoạch hành động: ", {"so": "12/SKHCN-KH", "ten": "Chuyển đổi số"}),
    ("ke_hoach", "Phê duyệt", "Kế hoạch 100%_đạt", {"so": "5_1\\x", "ten": ""}),
    ("du_toan", "Lập dự toán", "Dự toán (5/STC-KH)", {"so": "7/STC", "kinh_phi": 1500000, "gap": True}),
    ("du_toan", "Lãnh đạo duyệt", "Năm 2026 hằng năm", {}),
    ("la", "Đồng ý", "Đà Lạt", {"so": "ĐB-1", "ten": "Ấp"}),
]


def _fill_rows(engine) -> list[dict]:
    """The rows above as instances and open tasks, their stored text as the write path computes it."""
    engine.deploy_path(WORKFLOWS_DIR / "sua_doi_ke_hoach")
    with engine.db.read() as s:
        definition_id = s.scalar(select(Definition.id))
    rows = []
    with engine.db.write() as s:
        for k, (process, title, case_title, business) in enumerate(ROWS):
            iid = s.execute(insert(Instance).values(
                definition_id=definition_id, process_key=process, title=case_title, status="running", state="{}",
                serializer_version="1", business=business, message_waits=0, created_at=T0, updated_at=T0,
                version=1).returning(Instance.id)).scalar_one()
            row = {"id": uuid.uuid4().hex, "instance_id": iid, "title": title, "case_title": case_title,
                   "business": business, "process": process}
            template = PROCESSES[process][1]
            s.execute(insert(HumanTask).values(
                id=row["id"], instance_id=iid, spiff_task_id=str(uuid.uuid4()), process_key=process, task_name="t",
                title=title, state="open", business=business, created_at=T0 + timedelta(minutes=k),
                search_text=search_text(iid, title, display_title(case_title, template, business), business)))
            rows.append(row)
    return rows


def _needles(rows: list[dict]) -> list[str]:
    """Substrings of every row's whole text around each word boundary (so every way across the
    process title's edges is tried), whole titles, LIKE's wildcards and what matches nothing."""
    found = {"%", "_", "\\", "5_1\\", "100%_", "%_d", "kế hoạch", "hằng năm 7", "ke hoach hanh dong",
             "KH) Dự", "Lạt ĐB", "1500000 true", "không có", "a" * 200}
    for row in rows:
        whole = fold(" ".join([str(row["instance_id"]), row["title"], display_title(
            row["case_title"], PROCESSES[row["process"]][1], row["business"]), PROCESSES[row["process"]][0]]
            + [str(v) for v in row["business"].values()]))
        for i in (i for i, c in enumerate(whole) if c == " "):
            found.update({whole[max(0, i - 4):i + 5], whole[max(0, i - 12):i + 2], whole[i - 1:i + 30]})
    return sorted(n for n in found if fold(n))


def test_sql_search_matches_exactly_what_the_python_matcher_matched(engine, orgs):
    rows = _fill_rows(engine)
    titles = {key: title for key, (title, _template) in PROCESSES.items()}
    needles = _needles(rows)
    assert len(needles) > 100
    with engine.db.read() as s:
        for needle in needles:
            expected = {r["id"] for r in rows
                        if python_matcher(needle, r, titles[r["process"]], PROCESSES[r["process"]][1])}
            got = set(s.scalars(select(HumanTask.id).where(search_condition(fold(needle), titles))))
            assert got == expected, needle


# ------------------------------------------------------------------ migration 0007
def _migrate(db: Database, revision: str, down: bool = False) -> None:
    cfg = schema.alembic_config(db)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def _old_rows(conn, n: int) -> list[dict]:
    """Rows as 0006 knew them: a definition whose latest version has a title template, cases, tasks."""
    conn.execute(text("INSERT INTO definitions (id, process_key, version, content_hash, process_id, dialect, "
                      "title_vi, title_en, files, forms, descriptor, deployed_at) VALUES (1, 'p', 1, 'h1', 'p', "
                      "'spiff', 'Quy trình', '', '{}', '{}', :d1, :t), (2, 'p', 2, 'h2', 'p', 'spiff', 'Quy trình', "
                      "'', '{}', '{}', :d2, :t)"),
                 {"d1": '{"title_template": "Cũ: {ten}"}', "d2": '{"title_template": "Hồ sơ {ten}"}',
                  "t": T0.replace(tzinfo=None)})
    rows = []
    for k in range(n):
        business = {"so": f"{k}/STC", "ten": f"Việc số {k}"} if k % 3 else {}
        conn.execute(text("INSERT INTO instances (id, definition_id, process_key, title, status, state, "
                          "serializer_version, business, message_waits, created_at, updated_at, version) VALUES "
                          "(:id, 1, 'p', :title, 'running', '{}', '1', '{}', 0, :t, :t, 1)"),
                     {"id": k + 1, "title": f"Hồ sơ {k}", "t": T0.replace(tzinfo=None)})
        row = {"id": f"{k:032x}", "instance_id": k + 1, "title": f"Bước {k}", "business": business}
        conn.execute(text("INSERT INTO human_tasks (id, instance_id, spiff_task_id, process_key, task_name, title, "
                          "state, business, created_at, escalation_level) VALUES (:id, :iid, 's', 'p', 't', "
                          ":title, :state, :business, :t, 0)"),
                     {"id": row["id"], "iid": k + 1, "title": row["title"], "state": "open" if k % 2 else "completed",
                      "business": json.dumps(business, ensure_ascii=False),
                      "t": T0.replace(tzinfo=None)})
        rows.append(row)
    return rows


def test_migration_0007_backfills_every_task_in_batches(db_url):
    db = Database(db_url)
    try:
        _migrate(db, "0006", down=True)  # and back up below: its downgrade runs too
        with db.engine.begin() as conn:
            rows = _old_rows(conn, 7)
        _migrate(db, "head")
        with db.engine.connect() as conn:
            stored = dict(conn.execute(text("SELECT id, search_text FROM human_tasks")).all())
        for k, row in enumerate(rows):  # the latest version's template renders the title where it can
            title = f"Hồ sơ {row['business']['ten']}" if row["business"] else f"Hồ sơ {k}"
            assert stored[row["id"]] == search_text(k + 1, row["title"], title, row["business"])
        assert stored[rows[1]["id"]] == "2 buoc 1 ho so viec so 1\n1/stc viec so 1"

        # The same backfill, two rows at a time: every row is written once, none is skipped.
        spec = importlib.util.spec_from_file_location("migration_0007", MIGRATION)
        migration = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(migration)
        migration.BATCH = 2
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE human_tasks SET search_text = NULL"))
            assert migration.backfill(conn) == 7
        with db.engine.connect() as conn:
            assert dict(conn.execute(text("SELECT id, search_text FROM human_tasks")).all()) == stored
    finally:
        db.dispose()
