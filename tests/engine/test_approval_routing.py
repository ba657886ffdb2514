"""Approval routing scenarios, each run straight and with a fresh engine and DB round-trip between steps."""

from __future__ import annotations

import pytest

from engine.db import Database
from engine.errors import Forbidden, InvalidInput
from engine.models import InstanceStatus, TaskState
from engine.runtime import Engine
from tests.engine.helpers import audit_actions, instance, only_open_task, open_tasks, round_trip
from workflows import WORKFLOWS_DIR

PROPOSAL = {
    "so_van_ban": "125/SNN-KH",
    "noi_dung_de_xuat": "Bổ sung nhiệm vụ ứng dụng công nghệ sinh học",
    "ly_do": "Đáp ứng yêu cầu thực tiễn sản xuất dược liệu",
}


class Runner:
    """Runs steps; in `reload` mode each step uses a brand-new Engine (empty caches, new pool)."""

    def __init__(self, engine: Engine, reload: bool):
        self.engine = engine
        self.reload = reload
        self.instance_id = None

    def step(self) -> Engine:
        if self.reload:
            if self.instance_id is not None:
                round_trip(self.engine, self.instance_id)
            old = self.engine
            self.engine = Engine(Database.from_settings(old.settings), old.settings, old.clock)
            old.db.dispose()
        return self.engine


@pytest.fixture(params=["straight", "reload"])
def run(request, engine, people):
    engine.deploy_path(WORKFLOWS_DIR / "sua_doi_ke_hoach")
    runner = Runner(engine, request.param == "reload")
    yield runner
    runner.engine.db.dispose()


def _start(run, people) -> int:
    run.instance_id = run.step().start_instance(people["nn.cv"], "sua_doi_ke_hoach", {})
    return run.instance_id


def test_submit_then_approve_reaches_the_provincial_decision(run, people):
    iid = _start(run, people)
    draft = only_open_task(run.step(), iid, "soan_de_xuat")
    assert (draft.org_code, draft.role) == ("SO_NNPTNT", "staff")
    run.step().complete_task(people["nn.cv"], draft.id, PROPOSAL)

    approve = only_open_task(run.step(), iid, "lanh_dao_duyet")
    assert (approve.org_code, approve.role) == ("SO_NNPTNT", "supervisor")
    assert approve.business["so_van_ban"] == "125/SNN-KH"
    run.step().complete_task(people["nn.ld"], approve.id, {"quyet_dinh": "phe_duyet"})

    opinion = only_open_task(run.step(), iid, "y_kien_khcn")
    assert (opinion.org_code, opinion.role) == ("SO_KHCN", "staff")
    run.step().complete_task(people["khcn.cv"], opinion.id, {"y_kien_khcn": "Đề nghị đồng ý", "de_nghi": "dong_y"})

    decision = only_open_task(run.step(), iid, "ubnd_quyet_dinh")
    assert (decision.org_code, decision.role) == ("UBND_TINH", "leader")
    run.step().complete_task(people["ubnd.ld"], decision.id, {"quyet_dinh_ubnd": "dong_y", "so_quyet_dinh": "12/QĐ-UBND"})

    inst = instance(run.step(), iid)
    assert inst.status == InstanceStatus.COMPLETED.value
    assert inst.completed_at is not None
    assert open_tasks(run.engine, iid) == []
    actions = audit_actions(run.engine, iid)
    assert actions.count("task_completed") == 4
    assert actions[0] == "instance_started" and actions[-1] == "instance_completed"


def test_return_with_reason_goes_back_to_the_submitter_who_resubmits(run, people):
    iid = _start(run, people)
    draft = only_open_task(run.step(), iid, "soan_de_xuat")
    run.step().complete_task(people["nn.cv"], draft.id, PROPOSAL)
    approve = only_open_task(run.step(), iid, "lanh_dao_duyet")

    reopened_id = run.step().return_task(people["nn.ld"], approve.id, "Thiếu dự toán kinh phí chi tiết")

    again = only_open_task(run.step(), iid, "soan_de_xuat")
    assert again.id == reopened_id and again.id != draft.id
    assert again.return_reason == "Thiếu dự toán kinh phí chi tiết"
    assert again.assignee_id == people["nn.cv"]  # back to the person who submitted it, not the whole unit
    with pytest.raises(Forbidden):
        run.step().complete_task(people["nn.cv2"], again.id, PROPOSAL)

    run.step().complete_task(people["nn.cv"], again.id, {**PROPOSAL, "kinh_phi_de_xuat": 350_000_000})
    approve2 = only_open_task(run.step(), iid, "lanh_dao_duyet")
    run.step().complete_task(people["nn.ld"], approve2.id, {"quyet_dinh": "phe_duyet"})
    only_open_task(run.step(), iid, "y_kien_khcn")

    with run.step().db.read() as session:
        from engine.models import HumanTask

        returned = session.get(HumanTask, approve.id)
    assert returned.state == TaskState.RETURNED.value
    assert returned.return_reason == "Thiếu dự toán kinh phí chi tiết"
    assert "task_returned" in audit_actions(run.engine, iid)


def test_supervisor_rejection_ends_the_case(run, people):
    iid = _start(run, people)
    draft = only_open_task(run.step(), iid)
    run.step().complete_task(people["nn.cv"], draft.id, PROPOSAL)
    approve = only_open_task(run.step(), iid, "lanh_dao_duyet")
    run.step().complete_task(people["nn.ld"], approve.id, {"quyet_dinh": "tu_choi", "y_kien_lanh_dao": "Chưa cần thiết"})
    inst = instance(run.step(), iid)
    assert inst.status == InstanceStatus.COMPLETED.value
    assert open_tasks(run.engine, iid) == []


def test_return_requires_a_reason_and_changes_nothing_without_one(run, people):
    iid = _start(run, people)
    draft = only_open_task(run.step(), iid)
    run.step().complete_task(people["nn.cv"], draft.id, PROPOSAL)
    approve = only_open_task(run.step(), iid, "lanh_dao_duyet")
    before = instance(run.engine, iid)
    with pytest.raises(InvalidInput) as err:
        run.step().return_task(people["nn.ld"], approve.id, "   ")
    assert "lý do" in err.value.message.lower()
    after = instance(run.engine, iid)
    assert (after.version, after.state) == (before.version, before.state)
    assert only_open_task(run.engine, iid).id == approve.id


def test_the_provincial_decision_is_sent_to_every_units_supervisors(run, people):
    from sqlalchemy import select

    from engine.models import OutboxMessage

    iid = _start(run, people)
    run.step().complete_task(people["nn.cv"], only_open_task(run.step(), iid).id, PROPOSAL)
    run.step().complete_task(people["nn.ld"], only_open_task(run.step(), iid).id, {"quyet_dinh": "phe_duyet"})
    run.step().complete_task(people["khcn.cv"], only_open_task(run.step(), iid).id, {"y_kien_khcn": "Đồng ý"})
    decision = only_open_task(run.step(), iid, "ubnd_quyet_dinh")
    assert decision.due_at is not None  # every step carries its working-day deadline
    run.step().complete_task(people["ubnd.ld"], decision.id, {"quyet_dinh_ubnd": "dong_y"})
    with run.step().db.read() as session:
        mails = {m.dedupe_key: m for m in session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "decision"))}
    assert mails[f"decision:{iid}"].recipients == ["nn.cv@dieuphoi.local"]  # the proposer
    everyone = set(mails[f"decision:{iid}:all"].recipients)
    assert {"nn.ld@dieuphoi.local", "yt.ld@dieuphoi.local", "khcn.ld@dieuphoi.local"} <= everyone
    assert "ubnd.ld@dieuphoi.local" not in everyone and "nn.cv2@dieuphoi.local" not in everyone
