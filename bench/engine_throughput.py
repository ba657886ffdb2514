"""Engine throughput: plain SpiffWorkflow in memory vs. the persisted engine on SQLite, in one run.

A full instance is start + two completions (submit, approve). (a) runs it on a live
BpmnWorkflow with SpiffWorkflow's default script engine and no persistence; (b) runs it
through `engine.runtime.Engine`: three transactions, each loading the state, checking the
actor, running the step, and writing state, task projections and audit rows.

A second database, filled first to --fill instances (default 100,000; copies of finished
cases with their tasks and audit rows), is measured in the same alternating rounds, so the
per-step cost on a full and on an empty database is compared under the same conditions.

    python bench/engine_throughput.py [--n 300] [--fill 100000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser  # noqa: E402
from SpiffWorkflow.util.task import TaskState  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from engine import directory, schema  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.db import Database  # noqa: E402
from engine.definitions import Bundle  # noqa: E402
from engine.models import Instance  # noqa: E402
from engine.runtime import Engine  # noqa: E402

MODEL = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="D" targetNamespace="t">
  <bpmn:process id="duyet" isExecutable="true">
    <bpmn:laneSet id="ls">
      <bpmn:lane id="l1" name="Chuyen vien"><bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>submit</bpmn:flowNodeRef></bpmn:lane>
      <bpmn:lane id="l2" name="Lanh dao"><bpmn:flowNodeRef>approve</bpmn:flowNodeRef><bpmn:flowNodeRef>gw</bpmn:flowNodeRef></bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="submit"/>
    <bpmn:userTask id="submit" name="Trinh"/>
    <bpmn:sequenceFlow id="f2" sourceRef="submit" targetRef="approve"/>
    <bpmn:userTask id="approve" name="Phe duyet"/>
    <bpmn:sequenceFlow id="f3" sourceRef="approve" targetRef="gw"/>
    <bpmn:exclusiveGateway id="gw" default="f_no"/>
    <bpmn:sequenceFlow id="f_yes" sourceRef="gw" targetRef="end"><bpmn:conditionExpression>approved == True</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_no" sourceRef="gw" targetRef="submit"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"""


def raw_spiff(n: int, samples: list[float] | None = None) -> float:
    parser = SpiffBpmnParser()
    parser.add_bpmn_str(MODEL)
    spec = parser.get_spec("duyet")
    t0 = time.perf_counter()
    for _ in range(n):
        t_one = time.perf_counter()
        wf = BpmnWorkflow(spec)
        wf.do_engine_steps()
        for data in ({"noi_dung": "x"}, {"approved": True}):
            task = wf.get_tasks(state=TaskState.READY, manual=True)[0]
            task.set_data(**data)
            task.run()
            wf.do_engine_steps()
        assert wf.is_completed()
        if samples is not None:
            samples.append(time.perf_counter() - t_one)
    return time.perf_counter() - t0


def setup_engine(path: Path) -> tuple[Engine, int, int]:
    settings = Settings(database_url=f"sqlite:///{path}", instance_dir=path.parent)
    engine = Engine(Database.from_settings(settings), settings, FixedClock(datetime(2026, 11, 30, 2, tzinfo=timezone.utc)))
    schema.upgrade(engine.db)
    with engine.db.write() as session:
        directory.upsert_organisation(session, "SO_KHCN", "Sở Khoa học và Công nghệ")
        staff = directory.create_user(session, "cv", "Chuyên viên", positions=[("SO_KHCN", "staff")], at=engine.now())
        boss = directory.create_user(session, "ld", "Lãnh đạo", positions=[("SO_KHCN", "supervisor")], at=engine.now())
        staff_id, boss_id = staff.id, boss.id
    bundle = Bundle(key="duyet")
    bundle.xml = {"duyet.bpmn": MODEL}
    engine.deploy_bundle(bundle)
    return engine, staff_id, boss_id


def one_instance(engine: Engine, staff: int, boss: int) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    iid = engine.start_instance(staff, "duyet", {})
    t1 = time.perf_counter()
    [submit] = engine_open(engine, iid)
    t2 = time.perf_counter()
    [approve] = engine.complete_task(staff, submit, {"noi_dung": "x"})
    t3 = time.perf_counter()
    assert engine.complete_task(boss, approve, {"approved": True}) == []
    t4 = time.perf_counter()
    return t1 - t0, t3 - t2, t4 - t3


def engine_open(engine: Engine, iid: int) -> list[str]:
    return engine.open_task_ids(iid)


def persisted(engine: Engine, staff: int, boss: int, n: int) -> tuple[float, list[tuple]]:
    steps = []
    t0 = time.perf_counter()
    for _ in range(n):
        steps.append(one_instance(engine, staff, boss))
    return time.perf_counter() - t0, steps


def fill(engine: Engine, target: int) -> int:
    """Copy finished cases (with their task and audit rows) until `target` instances exist."""
    with engine.db.write() as session:
        have = session.scalar(select(func.count(Instance.id)))
        while have < target:
            batch = min(have, target - have)
            base = session.scalar(select(func.max(Instance.id)))
            cols = ("definition_id, process_key, title, status, owner_org, initiator_id, state, serializer_version, "
                    "business, next_timer_at, message_waits, error, created_at, updated_at, completed_at, version")
            session.execute(text(
                f"INSERT INTO instances (id, {cols}) SELECT id + :base, {cols} FROM instances ORDER BY id LIMIT :n"
            ), {"base": base, "n": batch})
            tcols = ("spiff_task_id, process_key, task_name, title, lane, org_code, role, candidate_user_id, assignee_id, "
                     "state, form_key, business, return_reason, created_at, due_at, completed_at, completed_by, acting_for")
            session.execute(text(
                f"INSERT INTO human_tasks (id, instance_id, {tcols}) SELECT lower(hex(randomblob(16))), instance_id + :base, "
                f"{tcols} FROM human_tasks WHERE instance_id <= :n"
            ), {"base": base, "n": batch})
            acols = "task_id, actor_id, acting_for_id, action, details, at"
            session.execute(text(
                f"INSERT INTO audit_events (instance_id, {acols}) SELECT instance_id + :base, {acols} "
                f"FROM audit_events WHERE instance_id <= :n"
            ), {"base": base, "n": batch})
            have += batch
    with engine.db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    with engine.db.engine.connect() as conn:  # fold the bulk insert's WAL back, as a quiet server would have
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return have


def median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="instances per measurement")
    ap.add_argument("--rounds", type=int, default=5, help="alternate the two sides this many times")
    ap.add_argument("--fill", type=int, default=100_000, help="instances in the database for the second measurement")
    ap.add_argument("--profile", action="store_true", help="print where the persisted engine spends its time")
    args = ap.parse_args()

    raw_spiff(20)  # warm-up
    raw_samples, raw_total, ours_total, steps_empty, steps_full = [], 0.0, 0.0, [], []
    with tempfile.TemporaryDirectory() as tmp:
        engine, staff, boss = setup_engine(Path(tmp) / "bench.sqlite3")
        # A second database, filled first, is measured in the same alternating rounds, so the
        # machine's drift over the run hits the empty and the full database alike.
        engine_full, staff_full, boss_full = setup_engine(Path(tmp) / "full.sqlite3")
        persisted(engine_full, staff_full, boss_full, 20)
        filled = fill(engine_full, args.fill)
        persisted(engine, staff, boss, 20)  # warm-up: parse cache, connections
        persisted(engine_full, staff_full, boss_full, 20)
        per_round = max(1, args.n // args.rounds)
        # Alternate the sides so a noisy neighbour on a shared machine hits them all alike.
        for _ in range(args.rounds):
            raw_total += raw_spiff(per_round, raw_samples)
            spent, steps = persisted(engine, staff, boss, per_round)
            ours_total += spent
            steps_empty += steps
            steps_full += persisted(engine_full, staff_full, boss_full, per_round)[1]
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            persisted(engine, staff, boss, per_round)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(35)
            print(out.getvalue())
        engine.db.dispose()
        engine_full.db.dispose()

    n = per_round * args.rounds
    raw_median = median(raw_samples)
    ours_median = median([sum(s) for s in steps_empty])
    print(f"SpiffWorkflow 3.2.0; {n} instances of a two-step approval (start + 2 completions), "
          f"{args.rounds} alternating rounds")
    print(f"(a) plain SpiffWorkflow, in memory      : {n / raw_total:8.1f} instances/s  "
          f"(median {raw_median * 1000:.2f} ms per instance)")
    print(f"(b) dieuphoi engine, persisted (SQLite) : {n / ours_total:8.1f} instances/s  "
          f"(median {ours_median * 1000:.2f} ms per instance, 3 transactions)")
    print(f"ratio of medians (b / a)                : {ours_median / raw_median:8.2f}x")
    print(f"ratio of totals (b / a)                 : {ours_total / raw_total:8.2f}x")
    for label, steps in (("empty database", steps_empty), (f"{filled:,} instances in the database", steps_full)):
        start, submit, approve = (median([s[i] for s in steps]) * 1000 for i in range(3))
        print(f"median step cost, {label:34}: start {start:.2f} ms, complete {submit:.2f} ms, "
              f"complete+finish {approve:.2f} ms")
    full = median([sum(s) for s in steps_full])
    print(f"per-instance cost with {filled:,} instances / empty : {full / ours_median:8.2f}x")


if __name__ == "__main__":
    main()
