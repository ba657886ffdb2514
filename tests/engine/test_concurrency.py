"""Concurrent completions of one task: exactly one wins, the others get a clear conflict, nothing is lost."""

from __future__ import annotations

import multiprocessing
import threading

import pytest
from sqlalchemy import func, select

from engine.config import Settings
from engine.db import Database
from engine.definitions import Bundle
from engine.errors import Conflict
from engine.models import AuditEvent, HumanTask
from engine.runtime import Engine
from tests.engine import bpmn_samples as samples
from tests.engine.helpers import instance, only_open_task


@pytest.fixture
def submit_task(engine, people):
    b = Bundle(key="duyet")
    b.xml = {"duyet.bpmn": samples.approval()}
    engine.deploy_bundle(b)
    iid = engine.start_instance(people["nn.cv"], "duyet")
    return iid, only_open_task(engine, iid, "submit").id


def _outcomes(results):
    wins = [r for r in results if r == "ok"]
    conflicts = [r for r in results if r == "conflict"]
    return len(wins), len(conflicts), [r for r in results if r not in ("ok", "conflict")]


def _check_single_completion(engine, iid, task_id):
    with engine.db.read() as session:
        completions = session.scalar(select(func.count()).where(
            AuditEvent.task_id == task_id, AuditEvent.action == "task_completed"))
        approvals = session.scalar(select(func.count()).where(
            HumanTask.instance_id == iid, HumanTask.task_name == "approve"))
    assert completions == 1
    assert approvals == 1  # the next step was created once, not once per racer
    assert only_open_task(engine, iid, "approve")


def test_two_threads_completing_the_same_task_exactly_one_succeeds(engine, people, submit_task):
    iid, task_id = submit_task
    version_before = instance(engine, iid).version
    users = [people["nn.cv"], people["nn.cv2"], people["nn.cv"], people["nn.cv2"]]
    barrier = threading.Barrier(len(users))
    results = [None] * len(users)

    def racer(i, uid):
        eng = Engine(Database.from_settings(engine.settings), engine.settings, engine.clock)
        barrier.wait()
        try:
            eng.complete_task(uid, task_id, {"lan": i})
            results[i] = "ok"
        except Conflict:
            results[i] = "conflict"
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = repr(exc)
        finally:
            eng.db.dispose()

    threads = [threading.Thread(target=racer, args=(i, u)) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    wins, conflicts, other = _outcomes(results)
    assert (wins, conflicts, other) == (1, len(users) - 1, [])
    _check_single_completion(engine, iid, task_id)
    assert instance(engine, iid).version == version_before + 1  # one write, no lost or doubled update


def _process_racer(url, task_id, user_id, start_event, queue):
    settings = Settings(database_url=url)
    eng = Engine(Database.from_settings(settings), settings)
    start_event.wait(30)
    try:
        eng.complete_task(user_id, task_id, {})
        queue.put("ok")
    except Conflict:
        queue.put("conflict")
    except Exception as exc:  # noqa: BLE001
        queue.put(repr(exc))


def test_two_processes_completing_the_same_task_exactly_one_succeeds(engine, people, submit_task, db_url):
    iid, task_id = submit_task
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_process_racer, args=(db_url, task_id, people[u], start, queue))
             for u in ("nn.cv", "nn.cv2", "nn.cv")]
    for p in procs:
        p.start()
    start.set()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert _outcomes(results) == (1, 2, [])
    _check_single_completion(engine, iid, task_id)
