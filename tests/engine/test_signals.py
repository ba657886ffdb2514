"""BPMN signals: a broadcast to every waiting case (or one case), signal start events, signals thrown
by one case to the others, and a task's own signal buttons; found through the subscription index."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.errors import Forbidden, InvalidInput, NotFound
from engine.models import AuditEvent, Instance, MessageSubscription
from tests.engine import bpmn_samples as samples
from tests.engine.bpmn_samples import HEAD
from tests.engine.helpers import audit_actions, deploy_xml, instance, only_open_task, open_tasks

SIGNAL, CATCH, LANE = samples.SIGNAL, samples.SIGNAL_DEF, samples.STAFF_LANE


def _started_model() -> bytes:
    """A process started by the signal: its start event catches it, then 'Báo cáo' (staff)."""
    return (
        HEAD + SIGNAL + '<bpmn:process id="bao_cao_dc" isExecutable="true">'
        + LANE.format(refs="<bpmn:flowNodeRef>bao_cao</bpmn:flowNodeRef>")
        + '<bpmn:startEvent id="s">' + CATCH.format(id="c2") + '</bpmn:startEvent>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="bao_cao"/>'
        '<bpmn:userTask id="bao_cao" name="Báo cáo"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="bao_cao" targetRef="e"/><bpmn:endEvent id="e"/>'
        '</bpmn:process></bpmn:definitions>'
    ).encode()


def _throwing_model() -> bytes:
    """'Điều chỉnh kế hoạch' (staff), then throw the signal, then end."""
    return (
        HEAD + SIGNAL + '<bpmn:process id="phat_dc" isExecutable="true">'
        + LANE.format(refs="<bpmn:flowNodeRef>dieu_chinh</bpmn:flowNodeRef>")
        + '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="dieu_chinh"/>'
        '<bpmn:userTask id="dieu_chinh" name="Điều chỉnh kế hoạch"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="dieu_chinh" targetRef="phat"/>'
        '<bpmn:intermediateThrowEvent id="phat">' + CATCH.format(id="t1") + '</bpmn:intermediateThrowEvent>'
        '<bpmn:sequenceFlow id="f3" sourceRef="phat" targetRef="e"/><bpmn:endEvent id="e"/>'
        '</bpmn:process></bpmn:definitions>'
    ).encode()


def _deploy(engine, key: str, xml: bytes, org: str | None = None) -> None:
    deploy_xml(engine, key, xml, {"key": key, "lanes": {"Chuyên viên": {"org": org, "role": "staff"}}} if org else None)


@pytest.fixture
def waiting(engine, people):
    _deploy(engine, "cho_dc", samples.signal_wait())
    return [engine.start_instance(people["nn.cv"], "cho_dc") for _ in range(3)]


def _subscriptions(engine) -> list[tuple[int, str, str]]:
    with engine.db.read() as session:
        return sorted((r.instance_id, r.message_name, r.correlation_key)
                      for r in session.scalars(select(MessageSubscription)))


def test_a_waiting_case_is_indexed_by_the_signal_it_waits_for(engine, waiting):
    assert _subscriptions(engine) == [(i, "ke_hoach_dieu_chinh", "signal") for i in waiting]
    assert all(open_tasks(engine, i) == [] for i in waiting)


def test_a_broadcast_wakes_every_waiting_case_once(engine, people, waiting):
    caught = engine.send_signal(people["admin"], "ke_hoach_dieu_chinh", {"ly_do": "Điều chỉnh giữa kỳ"})
    assert caught == waiting
    for iid in waiting:
        assert only_open_task(engine, iid, "ra_soat")
        assert audit_actions(engine, iid).count("signal_received") == 1
    assert _subscriptions(engine) == []
    with pytest.raises(NotFound) as nobody:  # a second broadcast finds nobody waiting
        engine.send_signal(people["admin"], "ke_hoach_dieu_chinh")
    assert "tín hiệu" in nobody.value.message_vi


def test_a_signal_sent_to_one_case_wakes_only_that_case(engine, people, waiting):
    assert engine.send_signal(None, "ke_hoach_dieu_chinh", instance_id=waiting[1]) == [waiting[1]]
    assert only_open_task(engine, waiting[1], "ra_soat")
    assert open_tasks(engine, waiting[0]) == [] and open_tasks(engine, waiting[2]) == []
    with pytest.raises(NotFound):  # it no longer waits
        engine.send_signal(None, "ke_hoach_dieu_chinh", instance_id=waiting[1])


def test_a_broadcast_starts_the_processes_whose_start_event_catches_it(engine, people, waiting):
    _deploy(engine, "bao_cao_dc", _started_model(), org="SO_KHCN")  # a started case has no owner unit
    caught = engine.send_signal(people["admin"], "ke_hoach_dieu_chinh")
    assert caught[:3] == waiting and len(caught) == 4
    started = instance(engine, caught[3])
    assert started.process_key == "bao_cao_dc" and started.status == "running"
    assert only_open_task(engine, started.id, "bao_cao").org_code == "SO_KHCN"


def test_a_signal_thrown_by_one_case_reaches_the_others(engine, people, waiting):
    _deploy(engine, "phat_dc", _throwing_model())
    thrower = engine.start_instance(people["nn.cv"], "phat_dc")
    engine.complete_task(people["nn.cv"], only_open_task(engine, thrower).id, {})
    assert instance(engine, thrower).status == "completed"
    for iid in waiting:
        assert only_open_task(engine, iid, "ra_soat")


def test_only_administrators_broadcast_and_bad_signals_change_nothing(engine, people, waiting):
    def snapshot():
        with engine.db.read() as session:
            return (session.scalar(select(func.count()).select_from(AuditEvent)),
                    sorted(session.execute(select(Instance.id, Instance.version)).all()))

    before = snapshot()
    with pytest.raises(Forbidden):
        engine.send_signal(people["nn.cv"], "ke_hoach_dieu_chinh")
    with pytest.raises(InvalidInput):
        engine.send_signal(people["admin"], "  ")
    with pytest.raises(InvalidInput):
        engine.send_signal(people["admin"], "x" * 256)
    with pytest.raises(InvalidInput):
        engine.send_signal(people["admin"], "ke_hoach_dieu_chinh", {"typename": "Decimal"})
    with pytest.raises(NotFound):
        engine.send_signal(people["admin"], "khong_ai_cho")
    with pytest.raises(NotFound):
        engine.send_signal(people["admin"], "ke_hoach_dieu_chinh", instance_id=999_999)
    assert snapshot() == before
    assert _subscriptions(engine) == [(i, "ke_hoach_dieu_chinh", "signal") for i in waiting]


def test_a_tasks_signal_button_is_only_for_those_who_may_act_on_it(engine, people):
    _deploy(engine, "nut", samples.signal_button())
    iid = engine.start_instance(people["nn.cv"], "nut")
    task = only_open_task(engine, iid, "soan")
    with pytest.raises(Forbidden):  # another unit's staff
        engine.signal_task(people["yt.cv"], task.id, "ke_hoach_dieu_chinh")
    with pytest.raises(InvalidInput):
        engine.signal_task(people["nn.cv"], task.id, "khong_co")
    assert only_open_task(engine, iid).id == task.id
    [opened] = engine.signal_task(people["nn.cv"], task.id, "ke_hoach_dieu_chinh")
    assert only_open_task(engine, iid, "sua").id == opened
    with engine.db.read() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.instance_id == iid,
                                                         AuditEvent.action == "signal_received")).one()
    assert (event.actor_id, event.task_id, event.details["signal"]) == (people["nn.cv"], task.id,
                                                                       "ke_hoach_dieu_chinh")


def test_the_command_line_broadcasts_a_signal_and_refuses_bad_data(engine, people, waiting, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from engine.cli import main

    monkeypatch.setenv("DIEUPHOI_DATABASE_URL", engine.settings.database_url)
    monkeypatch.setenv("DIEUPHOI_INSTANCE_DIR", str(tmp_path))
    runner = CliRunner()
    bad = runner.invoke(main, ["signal", "ke_hoach_dieu_chinh", "--data", "[1, 2]"])
    assert bad.exit_code == 2 and "JSON" in bad.output
    assert all(open_tasks(engine, i) == [] for i in waiting)  # nothing sent
    one = runner.invoke(main, ["signal", "ke_hoach_dieu_chinh", "--instance", str(waiting[0])])
    assert one.exit_code == 0, one.output
    assert str(waiting[0]) in one.output
    rest = runner.invoke(main, ["signal", "ke_hoach_dieu_chinh", "--data", '{"dot": 2}'])
    assert rest.exit_code == 0 and f"{waiting[1]}, {waiting[2]}" in rest.output
    nobody = runner.invoke(main, ["signal", "ke_hoach_dieu_chinh"])
    assert nobody.exit_code == 1 and "tín hiệu" in nobody.output
    for iid in waiting:
        assert only_open_task(engine, iid, "ra_soat")
