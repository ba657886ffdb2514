"""Saved drafts (Lưu nháp): unvalidated but still well-formed, only for who may complete, only while open."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine import drafts
from engine.definitions import Bundle
from engine.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge
from engine.models import AuditEvent, TaskDraft
from tests.engine import bpmn_samples as samples
from tests.engine.helpers import only_open_task

FORM = {
    "type": "object",
    "required": ["noi_dung", "so_tien"],
    "properties": {
        "noi_dung": {"type": "string", "title": "Nội dung", "minLength": 10},
        "so_tien": {"type": "integer", "title": "Số tiền", "minimum": 0},
    },
}
GOOD = {"noi_dung": "Mua thiết bị đo đạc", "so_tien": 1500000}


@pytest.fixture
def case(engine, people):
    bundle = Bundle(key="duyet")
    bundle.xml = {"duyet.bpmn": samples.approval(form="trinh.json")}
    bundle.forms = {"trinh.json": FORM}
    engine.deploy_bundle(bundle)
    return engine.start_instance(people["nn.cv"], "duyet")


def _draft_rows(engine) -> int:
    with engine.db.read() as session:
        return session.scalar(select(func.count()).select_from(TaskDraft))


def test_a_half_filled_form_is_saved_without_validation_and_nothing_is_submitted(engine, people, case, clock):
    task = only_open_task(engine, case, "submit")
    half = {"noi_dung": "ngắn", "so_tien": "một triệu"}  # too short, wrong type, and nothing required is checked
    saved = drafts.save_draft(engine, people["nn.cv"], task.id, half)
    assert saved.data == half and saved.saved_at == clock.now() and saved.saved_by == people["nn.cv"]
    assert only_open_task(engine, case, "submit").id == task.id  # still open: a draft submits nothing

    loaded = drafts.load_draft(engine, people["nn.cv2"], task.id)  # a colleague in the same queue may go on
    assert loaded.data == half and loaded.saved_by == people["nn.cv"]

    clock.advance(minutes=5)
    drafts.save_draft(engine, people["nn.cv2"], task.id, {"noi_dung": "Mua thiết bị"})  # replaces, never adds
    again = drafts.load_draft(engine, people["nn.cv"], task.id)
    assert again.data == {"noi_dung": "Mua thiết bị"} and again.saved_by == people["nn.cv2"]
    assert again.saved_at == clock.now()
    assert _draft_rows(engine) == 1
    with engine.db.read() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "task_draft_saved")
                                      .order_by(AuditEvent.id)))
    assert [(e.task_id, e.actor_id) for e in events] == [(task.id, people["nn.cv"]), (task.id, people["nn.cv2"])]
    assert events[0].details["fields"] == ["noi_dung", "so_tien"] and events[0].details["instance"] == case


def test_someone_who_may_not_complete_the_task_can_neither_save_nor_read_a_draft(engine, people, case):
    task = only_open_task(engine, case, "submit")
    for name in ("yt.cv", "nn.ld", "khcn.cv"):  # another unit, the unit's supervisor, Sở KH&CN
        with pytest.raises(Forbidden):
            drafts.save_draft(engine, people[name], task.id, {"noi_dung": "xen ngang"})
    assert _draft_rows(engine) == 0
    drafts.save_draft(engine, people["nn.cv"], task.id, {"noi_dung": "của đơn vị"})
    with pytest.raises(Forbidden):
        drafts.load_draft(engine, people["yt.cv"], task.id)
    with pytest.raises(Forbidden):
        drafts.discard_draft(engine, people["yt.cv"], task.id)
    assert drafts.load_draft(engine, people["nn.cv"], task.id).data == {"noi_dung": "của đơn vị"}


def test_a_claimed_task_is_its_assignees_alone(engine, people, case):
    task = only_open_task(engine, case, "submit")
    engine.claim(people["nn.cv"], task.id)
    with pytest.raises(Forbidden):
        drafts.save_draft(engine, people["nn.cv2"], task.id, {"noi_dung": "không phải việc của tôi"})
    drafts.save_draft(engine, people["nn.cv"], task.id, {"noi_dung": "việc của tôi"})
    assert _draft_rows(engine) == 1


@pytest.mark.parametrize("data, error", [
    ({"typename": "Decimal"}, InvalidInput),
    ({"cac_khoan": [{"typename": "x"}]}, InvalidInput),
    ({"muc": {"typename": "date", "value": "2026-01-01"}}, InvalidInput),
    (["not", "an", "object"], InvalidInput),
    ("text", InvalidInput),
    ({"so_tien": float("nan")}, InvalidInput),
    ({"ghi_chu": "a\x00b"}, InvalidInput),
    ({"ghi_chu": "x" * (drafts.MAX_DRAFT_BYTES + 1)}, TooLarge),
])
def test_a_draft_is_still_a_bounded_json_object_without_typename(engine, people, case, data, error):
    task = only_open_task(engine, case, "submit")
    with pytest.raises(error):
        drafts.save_draft(engine, people["nn.cv"], task.id, data)
    assert _draft_rows(engine) == 0


def test_a_draft_is_only_for_an_open_task(engine, people, case):
    task = only_open_task(engine, case, "submit")
    drafts.save_draft(engine, people["nn.cv"], task.id, {"noi_dung": "Mua thiết bị"})
    engine.complete_task(people["nn.cv"], task.id, GOOD)  # submitting works as before, draft or not
    assert drafts.load_draft(engine, people["nn.cv"], task.id) is None  # a stale draft is never shown
    with pytest.raises(Conflict):
        drafts.save_draft(engine, people["nn.cv"], task.id, {"noi_dung": "muộn"})
    with pytest.raises(Conflict):
        drafts.discard_draft(engine, people["nn.cv"], task.id)
    with pytest.raises(NotFound):
        drafts.save_draft(engine, people["nn.cv"], "0" * 32, {})
    with pytest.raises(NotFound):
        drafts.load_draft(engine, people["nn.cv"], "0" * 32)

    approve = only_open_task(engine, case, "approve")
    drafts.save_draft(engine, people["nn.ld"], approve.id, {"y_kien": "Đồng ý"})
    with engine.db.read() as session:  # saving on the case also cleared the finished step's leftover
        assert list(session.scalars(select(TaskDraft.task_id))) == [approve.id]


def test_a_suspended_case_takes_no_draft(engine, people, case):
    task = only_open_task(engine, case, "submit")
    engine.suspend(people["admin"], case, "tạm dừng")
    with pytest.raises(Conflict):
        drafts.save_draft(engine, people["nn.cv"], task.id, {"noi_dung": "x"})
    assert _draft_rows(engine) == 0


def test_discard_throws_the_draft_away(engine, people, case):
    task = only_open_task(engine, case, "submit")
    assert drafts.discard_draft(engine, people["nn.cv"], task.id) is False
    drafts.save_draft(engine, people["nn.cv"], task.id, {"noi_dung": "Mua thiết bị"})
    assert drafts.discard_draft(engine, people["nn.cv2"], task.id) is True
    assert drafts.load_draft(engine, people["nn.cv"], task.id) is None
    with engine.db.read() as session:
        assert session.scalar(select(AuditEvent.actor_id).where(AuditEvent.action == "task_draft_discarded")) \
            == people["nn.cv2"]
