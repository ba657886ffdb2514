"""Hostile expressions and scripts inside deployed models, run by the real engine.

tests/engine/test_sandbox.py proves the sandbox on its own. Here the hostile code sits in a
model that deploys (deploy cannot know what a script will do), and runs where the engine
runs it: a script task when a case starts, a gateway condition, a boundary timer's duration,
a script after a human step (completed over the API), a script after a timer (fired by the
timer worker), and a timer start event (evaluated at deploy). Each must be refused or
stopped with a message, leave no half-written case, and leave the server healthy.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from engine.definitions import Bundle
from engine.errors import EngineError
from engine.models import HumanTask, Instance, Timer

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CPU_SECONDS = 1.0  # Settings.script_cpu_seconds in the tests
STOPPED_SECONDS = 6.0  # budget + parse + a loaded machine; a runaway would never stop

# Expressions: refused in a script (as `y = ...`), in a gateway condition, in a timer duration.
ESCAPES = {
    "subclasses_walk": "().__class__.__bases__[0].__subclasses__()",
    "function_globals": "(lambda: 0).__globals__",
    "builtins_name": "__builtins__",
    "format_attribute": '"{0.__class__}".format(x)',
    "format_map_attribute": '"{a.__class__.__mro__}".format_map({"a": x})',
    "getattr_string": "getattr(x, '__cl' + 'ass__')",
    "generator_frame": "(i for i in [1]).gi_frame.f_globals",
    "dunder_import": "__import__('os').system('true')",
    "open_file": "open('/etc/passwd').read()",
    "eval": "eval('1 + 1')",
    "exec": "exec('y = 1')",
    "compile": "compile('1', 'x', 'eval')",
    "string_bomb": "'x' * 10**10",
    "list_bomb": "[0] * 10**9",
    "power_bomb": "10**10**10",
}
# Statements only a script can hold.
SCRIPTS = {
    **{name: f"y = {expression}" for name, expression in ESCAPES.items()},
    "import_os": "import os\ny = os.getcwd()",
    "from_import": "from subprocess import run\nrun(['true'])",
    "cpu_bomb": "while True:\n    pass",
    "recursion_bomb": "def f(n):\n    return f(n + 1)\ny = f(0)",
    "memory_growth": "a = []\nwhile True:\n    a.append('x' * 900000)",
    "swallow_timeout": "while True:\n    try:\n        while True:\n            pass\n    except Exception:\n        pass",
}


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _definitions(process: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions xmlns:bpmn="{BPMN}" id="d" '
            f'targetNamespace="http://dieuphoi.local/test">{process}</bpmn:definitions>').encode()


def script_model(key: str, script: str) -> bytes:
    return _definitions(
        f'<bpmn:process id="{key}" isExecutable="true"><bpmn:startEvent id="s"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="tinh"/>'
        f'<bpmn:scriptTask id="tinh" scriptFormat="python"><bpmn:script>{_xml(script)}</bpmn:script></bpmn:scriptTask>'
        '<bpmn:sequenceFlow id="f2" sourceRef="tinh" targetRef="e"/><bpmn:endEvent id="e"/></bpmn:process>')


def gateway_model(key: str, condition: str) -> bytes:
    return _definitions(
        f'<bpmn:process id="{key}" isExecutable="true"><bpmn:startEvent id="s"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="gw"/>'
        '<bpmn:exclusiveGateway id="gw" default="f_khac"/>'
        '<bpmn:sequenceFlow id="f_co" sourceRef="gw" targetRef="e1">'
        f'<bpmn:conditionExpression>{_xml(condition)}</bpmn:conditionExpression></bpmn:sequenceFlow>'
        '<bpmn:sequenceFlow id="f_khac" sourceRef="gw" targetRef="e2"/>'
        '<bpmn:endEvent id="e1"/><bpmn:endEvent id="e2"/></bpmn:process>')


def timer_model(key: str, duration: str) -> bytes:
    """A human step (no lane: the initiator's) with a boundary timer whose duration is an expression."""
    return _definitions(
        f'<bpmn:process id="{key}" isExecutable="true"><bpmn:startEvent id="s"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="cho"/>'
        '<bpmn:userTask id="cho" name="Chờ"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="cho" targetRef="e"/><bpmn:endEvent id="e"/>'
        '<bpmn:boundaryEvent id="het_gio" attachedToRef="cho" cancelActivity="true"><bpmn:timerEventDefinition>'
        f'<bpmn:timeDuration>{_xml(duration)}</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>'
        '<bpmn:sequenceFlow id="f3" sourceRef="het_gio" targetRef="e2"/><bpmn:endEvent id="e2"/></bpmn:process>')


def after_step_model(key: str, script: str, timer: bool = False) -> bytes:
    """A human step, then the script: on completion, or (timer=True) when a 1-hour timer fires."""
    wait = ('<bpmn:intermediateCatchEvent id="cho"><bpmn:timerEventDefinition><bpmn:timeDuration>"PT1H"'
            '</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>' if timer else
            '<bpmn:userTask id="cho" name="Nhập"/>')
    return _definitions(
        f'<bpmn:process id="{key}" isExecutable="true"><bpmn:startEvent id="s"/>'
        f'<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="cho"/>{wait}'
        '<bpmn:sequenceFlow id="f2" sourceRef="cho" targetRef="tinh"/>'
        f'<bpmn:scriptTask id="tinh" scriptFormat="python"><bpmn:script>{_xml(script)}</bpmn:script></bpmn:scriptTask>'
        '<bpmn:sequenceFlow id="f3" sourceRef="tinh" targetRef="e"/><bpmn:endEvent id="e"/></bpmn:process>')


def deploy(engine, key: str, raw: bytes) -> None:
    bundle = Bundle(key=key)
    bundle.add_file(f"{key}.bpmn", raw, engine.settings.max_upload_bytes)
    engine.deploy_bundle(bundle)


def instance_count(engine) -> int:
    with engine.db.read() as session:
        return session.scalar(select(func.count()).select_from(Instance))


def _start_refused(client, headers, engine, key: str) -> tuple[dict, float]:
    before = instance_count(engine)
    started = time.monotonic()
    response = client.post("/api/v1/instances", headers=headers, json={"process": key, "data": {"x": 2}})
    elapsed = time.monotonic() - started
    assert response.status_code == 400, (key, response.status_code, response.get_data(as_text=True)[:300])
    error = response.get_json()["error"]
    assert error["message"].startswith("Quy trình không thể tiếp tục"), error["message"]
    assert " / The process cannot continue" in error["message"]
    assert instance_count(engine) == before  # the start rolled back: no half-written case
    return error, elapsed


def _healthy(client, headers, engine) -> None:
    assert client.get("/api/v1/health").status_code == 200
    response = client.post("/api/v1/instances", headers=headers, json={"process": "binh_thuong", "data": {"x": 3}})
    assert response.status_code == 201, response.get_data(as_text=True)


@pytest.fixture
def normal(engine, people):
    deploy(engine, "binh_thuong", script_model("binh_thuong", "y = x * 2"))


def test_hostile_script_tasks_fail_the_start_with_a_message(client, bearer, engine, people, normal):
    staff = bearer("nn.cv")
    slowest = 0.0
    for name, script in SCRIPTS.items():
        key = f"s_{name}"
        deploy(engine, key, script_model(key, script))
        _, elapsed = _start_refused(client, staff, engine, key)
        assert elapsed < STOPPED_SECONDS, (name, elapsed)
        slowest = max(slowest, elapsed)
    _healthy(client, staff, engine)
    assert slowest < STOPPED_SECONDS


def test_hostile_gateway_conditions_and_timer_expressions_fail_the_start(client, bearer, engine, people, normal):
    staff = bearer("nn.cv")
    for name, expression in ESCAPES.items():
        for kind, build in (("g", gateway_model), ("t", timer_model)):
            key = f"{kind}_{name}"
            deploy(engine, key, build(key, expression))
            _, elapsed = _start_refused(client, staff, engine, key)
            assert elapsed < STOPPED_SECONDS, (key, elapsed)
    _healthy(client, staff, engine)


@pytest.mark.parametrize("name", ["dunder_import", "cpu_bomb", "string_bomb"])
def test_a_hostile_script_after_a_human_step_refuses_the_completion(client, bearer, engine, people, normal, name):
    staff = bearer("nn.cv")
    key = f"sau_{name}"
    deploy(engine, key, after_step_model(key, SCRIPTS[name]))
    created = client.post("/api/v1/instances", headers=staff, json={"process": key, "data": {"x": 1}})
    assert created.status_code == 201
    instance_id = created.get_json()["id"]
    [task_id] = engine.open_task_ids(instance_id)
    started = time.monotonic()
    response = client.post(f"/api/v1/tasks/{task_id}/complete", headers=staff, json={"data": {}})
    assert time.monotonic() - started < STOPPED_SECONDS
    assert response.status_code == 400
    assert response.get_json()["error"]["message"].startswith("Quy trình không thể tiếp tục")
    assert engine.open_task_ids(instance_id) == [task_id]  # still open: nothing was half done
    case = client.get(f"/api/v1/instances/{instance_id}", headers=staff)
    assert case.status_code == 200 and case.get_json()["status"] == "running"
    _healthy(client, staff, engine)


def test_a_hostile_script_after_a_timer_leaves_the_timer_visibly_failed(client, bearer, browser_for, engine, people,
                                                                        normal, clock):
    deploy(engine, "sau_hen_gio", after_step_model("sau_hen_gio", SCRIPTS["subclasses_walk"], timer=True))
    instance_id = engine.start_instance(people["nn.cv"], "sau_hen_gio", {"x": 1})
    for _ in range(8):  # every retry with its backoff, until the worker gives up on it
        clock.advance(hours=2)
        engine.fire_due_timers()
    with engine.db.read() as session:
        timer = session.scalar(select(Timer).where(Timer.instance_id == instance_id, Timer.kind == "bpmn"))
        assert timer.state == "failed" and "__class__" in timer.last_error
        assert session.get(Instance, instance_id).status == "running"
        assert session.scalar(select(func.count()).select_from(HumanTask)) == 0
    page = browser_for("admin").get("/admin/timers")
    assert page.status_code == 200 and "__class__" in page.get_data(as_text=True)
    _healthy(client, bearer("nn.cv"), engine)


@pytest.mark.parametrize("expression", ["__import__('os').getcwd()", "'R' * 10**10", "(lambda: 0).__globals__"])
def test_a_hostile_timer_start_expression_is_refused_at_deploy(engine, orgs, expression):
    raw = _definitions(
        '<bpmn:process id="dinh_ky" isExecutable="true"><bpmn:startEvent id="s"><bpmn:timerEventDefinition>'
        f'<bpmn:timeCycle>{_xml(expression)}</bpmn:timeCycle></bpmn:timerEventDefinition></bpmn:startEvent>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="e"/><bpmn:endEvent id="e"/></bpmn:process>')
    started = time.monotonic()
    with pytest.raises(EngineError) as refused:
        deploy(engine, "dinh_ky", raw)
    assert time.monotonic() - started < STOPPED_SECONDS
    assert refused.value.message_vi.startswith("Biểu thức hẹn giờ khởi tạo không hợp lệ")
    with engine.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Timer)) == 0


def test_each_memory_bomb_is_held_to_the_same_bound(monkeypatch):
    """The memory bound measures growth from where each run starts. It used the process's peak
    RSS (a high-water mark): after one refused bomb the next could grow by the old peak plus the
    limit, so a server let every bomb go further than the last."""
    import resource

    from engine import sandbox

    monkeypatch.setattr(sandbox, "MAX_RSS_GROWTH_KB", 64 * 1024)
    env = sandbox.SandboxedEnvironment(cpu_seconds=30)
    peaks = []
    for _ in range(3):
        with pytest.raises(sandbox.SandboxError, match="Memory limit exceeded"):
            env.execute(SCRIPTS["memory_growth"], {})
        peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    assert peaks[2] - peaks[0] < 48 * 1024, peaks  # was +64 MB per run
