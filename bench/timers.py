"""Timer table figures: idle tick cost vs. table size, drain rate, and lateness of a 1 s ticker.

On SQLite (temp file) always, and on PostgreSQL when DIEUPHOI_TEST_POSTGRES_URL or --pg is
given (in a fresh schema, dropped at the end).

(a) idle tick: engine.fire_due_timers() with nothing due, 1,000 then 100,000 waiting
    timer rows; median of 50 ticks each and their ratio (goal <= 1.5).
(b) drain: 1,000 due BPMN timers (real, loadable instances: one made through the engine,
    cloned with SQL); on SQLite by one engine in this process, then (another 1,000) by 2
    worker processes side by side; on PostgreSQL by 2 worker processes.
(c) lateness: 200 timers due at spread times over ~20 s of real time, a loop calling
    fire_due_timers every 1 s; p99 of (fired_at - due_at) from the timers table.

    python bench/timers.py [--pg URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402

from engine import clock as clockmod  # noqa: E402
from engine import directory, schema  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.db import Database  # noqa: E402
from engine.definitions import Bundle  # noqa: E402
from engine.runtime import Engine  # noqa: E402
from tests.engine import bpmn_samples as samples  # noqa: E402

SERIES = "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n) "


def make_engine(url: str, workdir: Path, clock) -> Engine:
    settings = Settings(database_url=url, instance_dir=workdir)
    return Engine(Database.from_settings(settings), settings, clock)


def prototype(engine: Engine) -> int:
    """One real instance waiting on its PT1H boundary timer (due at engine clock + 1 h)."""
    with engine.db.write() as session:
        if session.execute(text("SELECT count(*) FROM users")).scalar() == 0:
            directory.upsert_organisation(session, "SO_KHCN", "Sở Khoa học và Công nghệ")
            directory.create_user(session, "cv", "Chuyên viên", positions=[("SO_KHCN", "staff")], at=engine.now())
            directory.create_user(session, "ld", "Lãnh đạo", positions=[("SO_KHCN", "supervisor")], at=engine.now())
        staff = session.execute(text("SELECT id FROM users WHERE username = 'cv'")).scalar()
    b = Bundle(key="duyet")
    b.xml = {"duyet.bpmn": samples.approval(boundary="PT1H")}
    engine.deploy_bundle(b)
    iid = engine.start_instance(staff, "duyet")
    with engine.db.read() as session:
        task = session.execute(text("SELECT id FROM human_tasks WHERE instance_id = :i AND state = 'open'"),
                               {"i": iid}).scalar()
    engine.complete_task(staff, task, {})
    return iid


def clone(engine: Engine, iid: int, copies: int, tag: str) -> list[int]:
    """Copy instance, open task and timer rows `copies` times (new ids, dedupe_key 'bpmn:<id>')."""
    pg = not engine.db.engine.url.drivername.startswith("sqlite")
    with engine.db.engine.begin() as conn:
        base = conn.execute(text("SELECT max(id) FROM instances")).scalar()
        p = {"base": base, "n": copies, "iid": iid, "key": f"bpmn:{iid}", "tag": tag}
        conn.execute(text(
            "INSERT INTO instances (id, definition_id, process_key, title, status, owner_org, initiator_id, state, "
            "serializer_version, business, next_timer_at, message_waits, error, created_at, updated_at, "
            "completed_at, version) " + SERIES +
            "SELECT :base + x, definition_id, process_key, title, status, owner_org, initiator_id, state, "
            "serializer_version, business, next_timer_at, message_waits, error, created_at, updated_at, "
            "completed_at, version FROM instances, g WHERE id = :iid"), p)
        if pg:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('instances', 'id'), "
                              "(SELECT max(id) FROM instances))"))
        conn.execute(text(
            "INSERT INTO human_tasks (id, instance_id, spiff_task_id, process_key, task_name, title, lane, org_code, "
            "role, candidate_user_id, assignee_id, state, form_key, business, return_reason, created_at, due_at, "
            "completed_at, completed_by, acting_for, escalation_level) " + SERIES +
            "SELECT :tag || (:base + x), :base + x, spiff_task_id, process_key, task_name, title, lane, "
            "org_code, role, candidate_user_id, assignee_id, state, form_key, business, return_reason, created_at, "
            "due_at, completed_at, completed_by, acting_for, escalation_level "
            "FROM human_tasks, g WHERE instance_id = :iid AND state = 'open'"), p)
        conn.execute(text(
            "INSERT INTO timers (kind, dedupe_key, instance_id, task_id, definition_id, level, due_at, state, "
            "attempts, payload, created_at) " + SERIES +
            "SELECT kind, 'bpmn:' || (:base + x), :base + x, task_id, definition_id, level, due_at, state, "
            "attempts, payload, created_at FROM timers, g WHERE dedupe_key = :key"), p)
    return [iid] + [base + x for x in range(1, copies + 1)]


def pad_timers(engine: Engine, iid: int, copies: int) -> None:
    """Extra waiting rows (timer rows only, on the prototype's instance): they never fall due in the bench."""
    with engine.db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO timers (kind, dedupe_key, instance_id, task_id, definition_id, level, due_at, state, "
            "attempts, payload, created_at) " + SERIES +
            "SELECT kind, 'pad:' || x, instance_id, task_id, definition_id, level, due_at, state, "
            "attempts, payload, created_at FROM timers, g WHERE dedupe_key = :key"),
            {"n": copies, "key": f"bpmn:{iid}"})
        if engine.db.engine.url.drivername.startswith("postgresql"):
            conn.execute(text("ANALYZE timers"))


def idle_ticks(engine: Engine, n: int = 50) -> float:
    engine.fire_due_timers()  # warm-up
    samples_ = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert engine.fire_due_timers() == 0
        samples_.append(time.perf_counter() - t0)
    return statistics.median(samples_)


def drain(engine: Engine) -> int:
    fired = 0
    while True:
        got = engine.fire_due_timers()
        fired += got
        if not got:
            return fired


def _drain_worker(url: str, workdir: str, now: datetime, ready, go, results) -> None:
    engine = make_engine(url, Path(workdir), FixedClock(now))
    count(engine, "SELECT count(*) FROM timers")  # connect before the clock starts
    ready.put(True)
    go.wait()
    started = time.time()
    fired = drain(engine)
    results.put((fired, started, time.time()))
    engine.db.dispose()


def drain_in_processes(url: str, workdir: Path, now: datetime, n: int) -> tuple[list[int], float]:
    """`n` worker processes drain together; elapsed = first start to last finish."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_drain_worker, args=(url, str(workdir), now, ready, go, results)) for _ in range(n)]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=120)
    go.set()
    outcomes = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    return [o[0] for o in outcomes], max(o[2] for o in outcomes) - min(o[1] for o in outcomes)


def count(engine: Engine, sql: str) -> int:
    with engine.db.engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def run(label: str, url: str, workdir: Path, pg: bool) -> None:
    print(f"\n== {label} ==")
    # (a) idle tick cost; the FixedClock never reaches the timers' due time.
    clock = FixedClock(datetime.now(timezone.utc) - timedelta(hours=3))
    engine = make_engine(url, workdir, clock)
    iid = prototype(engine)
    ids = clone(engine, iid, 999, "a")
    t1k = idle_ticks(engine)
    pad_timers(engine, iid, 99_000)
    assert count(engine, "SELECT count(*) FROM timers WHERE state = 'pending'") == 100_000
    t100k = idle_ticks(engine)
    print(f"(a) idle tick, 1,000 waiting:   {t1k * 1e3:8.3f} ms (median of 50)")
    print(f"    idle tick, 100,000 waiting: {t100k * 1e3:8.3f} ms (median of 50)")
    print(f"    ratio 100k/1k: {t100k / t1k:.2f} (goal <= 1.5) {'OK' if t100k / t1k <= 1.5 else 'OVER'}")

    # (b) drain the 1,000 real timers: drop the padding, move the clock past their due time.
    # SQLite: one engine in this process, then (a fresh 1,000) two `worker`-like processes side by
    # side; PostgreSQL: two processes (threads would share one GIL).
    with engine.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM timers WHERE dedupe_key LIKE 'pad:%'"))
    armed_at = clock.now()
    for processes in ((2,) if pg else (0, 2)):
        if processes == 2 and not pg:
            clock.set(armed_at)
            clone(engine, prototype(engine), 999, "b")
        before = (count(engine, "SELECT count(*) FROM timers WHERE state = 'done'"),
                  count(engine, "SELECT count(*) FROM instances WHERE status = 'completed'"))
        clock.set(armed_at + timedelta(hours=2))
        if processes:
            fired, elapsed = drain_in_processes(url, workdir, clock.now(), processes)
        else:
            t0 = time.perf_counter()
            fired = [drain(engine)]
            elapsed = time.perf_counter() - t0
        done = count(engine, "SELECT count(*) FROM timers WHERE state = 'done'") - before[0]
        completed = count(engine, "SELECT count(*) FROM instances WHERE status = 'completed'") - before[1]
        how = f"{processes} worker processes" if processes else "1 engine in this process"
        print(f"(b) drain 1,000 due timers, {how}: {elapsed:.2f} s, {sum(fired) / elapsed:.0f} fires/s "
              f"(per worker {fired}); done={done}, completed instances={completed}")

    # (c) lateness of a 1 s ticker, real clock. The prototype's Spiff timer is due already; the rows'
    # due_at (the scheduling truth) are spread over 20 s from now.
    clock.set(datetime.now(timezone.utc) - timedelta(hours=1, seconds=5))
    iid = prototype(engine)
    ids = clone(engine, iid, 199, "c")
    start = datetime.now(timezone.utc) + timedelta(seconds=1)
    with engine.db.engine.begin() as conn:
        conn.execute(text("UPDATE timers SET due_at = :due WHERE dedupe_key = :key"),
                     [{"due": start + timedelta(seconds=20 * k / len(ids)), "key": f"bpmn:{i}"}
                      for k, i in enumerate(ids)])
    real = make_engine(url, workdir, clockmod.SYSTEM_CLOCK)
    key_list = ",".join(f"'bpmn:{i}'" for i in ids)
    deadline = time.monotonic() + 40
    next_tick = time.monotonic()
    while time.monotonic() < deadline:
        real.fire_due_timers(budget_seconds=0.5)
        if count(real, f"SELECT count(*) FROM timers WHERE dedupe_key IN ({key_list}) AND state <> 'done'") == 0:
            break
        next_tick += 1.0
        time.sleep(max(0.0, next_tick - time.monotonic()))
    with real.db.read() as session:
        rows = session.execute(text(f"SELECT due_at, fired_at FROM timers WHERE dedupe_key IN ({key_list}) "
                                    "AND state = 'done'")).all()

    def as_dt(v):
        if isinstance(v, str):
            v = datetime.fromisoformat(v)
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)

    late = sorted((as_dt(f) - as_dt(d)).total_seconds() for d, f in rows)
    p99 = late[min(len(late) - 1, int(0.99 * len(late)))] if late else float("nan")
    print(f"(c) lateness, 1 s tick, {len(late)}/{len(ids)} fired over ~20 s: p50 {statistics.median(late):.3f} s, "
          f"p99 {p99:.3f} s, max {late[-1]:.3f} s")
    real.db.dispose()
    engine.db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg", default=os.environ.get("DIEUPHOI_TEST_POSTGRES_URL"))
    args = ap.parse_args()
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite3"
        url = f"sqlite:///{path}"
        db = Database(url)
        schema.upgrade(db)
        db.dispose()
        run("SQLite", url, Path(tmp), pg=False)
        if args.pg:
            name = f"dp_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            admin = create_engine(args.pg)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{name}"'))
            sep = "&" if "?" in args.pg else "?"
            pg_url = f"{args.pg}{sep}options=-csearch_path%3D{name}"
            try:
                db = Database(pg_url)
                schema.upgrade(db)
                db.dispose()
                run("PostgreSQL", pg_url, Path(tmp), pg=True)
            finally:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
                admin.dispose()
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
