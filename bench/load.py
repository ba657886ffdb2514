"""Load test of the real server: `dieuphoi serve` in a subprocess, driven over loopback HTTP.

Set-up (not measured): a fresh database (SQLite file, or a PostgreSQL database created and
dropped by the script), `dieuphoi seed` content (org directory + bundled workflows), the
benchmark models (bench/_common.py: `bench_duyet`, staff submit -> unit supervisor approves or
returns, with deadlines, reminders and escalations; `bench_hen_gio`, a case that waits on a
timer), per unit 4 staff and 1 supervisor with API tokens and a password, and 500 timer cases
whose timers are already overdue when the server starts. Then `dieuphoi serve` starts with its
embedded scheduler (1 s tick) on a free loopback port.

Load: N client threads (closed loop; with --rate, paced open loop over all threads), each a
staff member of a unit plus that unit's supervisor, each with a persistent HTTP/1.1
connection. One iteration is one approval case end to end:

    realistic mix (default):  staff   GET /api/v1/tasks?scope=mine        (inbox_api)
                              staff   POST /api/v1/instances              (start)
                              staff   GET /api/v1/tasks/{id}              (task_get)
                              staff   POST /api/v1/tasks/{id}/complete    (complete_submit)
                              superv. GET /api/v1/tasks?scope=mine        (inbox_api)
                              superv. GET /api/v1/tasks/{id}              (task_get)
                              superv. POST .../complete {phe_duyet}       (complete_approve)
      + 1 case in 10 is first returned (tra_lai) and submitted again (complete_return, complete_submit)
      + the staff member's web session (signed in once through the /login form with its CSRF
        token) loads the inbox page GET / every iteration                 (inbox_web)
      + every 5th iteration starts a timer case waiting 5 s               (start_timer)
    minimal mix: start, complete_submit, complete_approve only.

Every response must have the expected status (errors are counted and printed); a case counts
as complete when the approval's answer says the instance is `completed`. After the run the
database is checked: completed approval cases, timers fired, failed timers, server log errors.

    python bench/load.py [--db sqlite|postgres|both] [--users 8] [--duration 60] [--warmup 10]
                         [--rate REQ_PER_S] [--mix realistic|minimal] [--threads 8] [--processes 1]
                         [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pstats
import random
import threading
import time
from pathlib import Path

from _common import (  # noqa: I001 - sys.path is set by _common
    APPROVAL_KEY,
    TIMER_KEY,
    Client,
    HttpError,
    Pacer,
    Recorder,
    Server,
    database,
    latency_table,
    load_average,
    machine_cpu_seconds,
    make_engine,
    pct,
    seed_for_load,
    tempdir,
)


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.completed = 0
        self.chain_seconds: list[float] = []
        self.counting = True

    def done(self, seconds: float) -> None:
        with self.lock:
            if self.counting:
                self.completed += 1
                self.chain_seconds.append(seconds)

    def take(self) -> tuple[int, list[float]]:
        with self.lock:
            out = (self.completed, self.chain_seconds)
            self.completed, self.chain_seconds = 0, []
            return out


def _people(people: dict, n: int) -> list[tuple[dict, dict]]:
    """Thread k: staff member k (round robin over units), and their unit's supervisor."""
    units = list(people.values())
    pairs = []
    for k in range(n):
        unit = units[k % len(units)]
        pairs.append((unit["staff"][(k // len(units)) % len(unit["staff"])], unit["supervisor"][0]))
    return pairs


def worker(k: int, port: int, staff: dict, boss: dict, rec: Recorder, pacer: Pacer, counters: Counters,
           stop: threading.Event, mix: str) -> None:
    rnd = random.Random(k)
    s = Client(port, rec, pacer, staff["token"])
    b = Client(port, rec, pacer, boss["token"])
    web = None
    if mix == "realistic":
        web = Client(port, rec, pacer)
        with contextlib.suppress(HttpError):
            web.sign_in(staff["username"])
    i = 0
    while not stop.is_set():
        i += 1
        try:
            t0 = time.perf_counter()
            realistic = mix == "realistic"
            if realistic:
                s.json("inbox_api", "GET", "/api/v1/tasks?scope=mine&limit=20")
            brief = s.json("start", "POST", "/api/v1/instances", {"process": APPROVAL_KEY, "data": {}})
            tid = brief["open_tasks"][0]["id"]
            returned = realistic and rnd.random() < 0.1
            for round_ in range(2 if returned else 1):
                if realistic:
                    s.json("task_get", "GET", f"/api/v1/tasks/{tid}")
                res = s.json("complete_submit", "POST", f"/api/v1/tasks/{tid}/complete", {"data": {
                    "so_van_ban": f"{k}-{i}/TTr", "trich_yeu": f"Tờ trình số {i} của luồng {k}",
                    "kinh_phi": rnd.randrange(0, 10**9)}})
                nid = res["next_tasks"][0]["id"]
                if realistic:
                    b.json("inbox_api", "GET", "/api/v1/tasks?scope=mine&limit=20")
                    b.json("task_get", "GET", f"/api/v1/tasks/{nid}")
                if returned and round_ == 0:
                    res = b.json("complete_return", "POST", f"/api/v1/tasks/{nid}/complete",
                                 {"data": {"quyet_dinh": "tra_lai", "y_kien": "Bổ sung số liệu kinh phí."}})
                    tid = res["next_tasks"][0]["id"]
                    continue
                res = b.json("complete_approve", "POST", f"/api/v1/tasks/{nid}/complete",
                             {"data": {"quyet_dinh": "phe_duyet", "y_kien": "Đồng ý."}})
            if res["instance"]["status"] != "completed":
                rec.error(f"case {res['instance']['id']} not completed: {res['instance']['status']}")
            else:
                counters.done(time.perf_counter() - t0)
            if web is not None:
                if web.cookie is None:
                    web.sign_in(staff["username"])
                web.request("inbox_web", "GET", "/", expect=(200,))
            if realistic and i % 5 == 0:
                s.json("start_timer", "POST", "/api/v1/instances", {"process": TIMER_KEY, "data": {"cho": "PT5S"}})
        except (HttpError, KeyError, IndexError, ValueError) as exc:
            if not isinstance(exc, HttpError):
                rec.error(f"worker {k}: unexpected answer {exc!r}")
            time.sleep(0.05)


def start_workers(port: int, people: dict, n: int, rate: float | None, mix: str, rec: Recorder,
                  counters: Counters, stop: threading.Event) -> list[threading.Thread]:
    pacer = Pacer(rate)
    threads = [threading.Thread(target=worker, args=(k, port, staff, boss, rec, pacer, counters, stop, mix),
                                daemon=True) for k, (staff, boss) in enumerate(_people(people, n))]
    for t in threads:
        t.start()
    return threads


def db_facts(url: str, workdir: Path, since) -> dict:
    from sqlalchemy import text

    eng = make_engine(url, workdir)
    try:
        with eng.db.engine.connect() as conn:
            q = lambda sql, **p: conn.execute(text(sql), p).scalar()  # noqa: E731
            return {
                "approval_completed": q("SELECT count(*) FROM instances WHERE process_key = :k AND status = 'completed'",
                                        k=APPROVAL_KEY),
                "approval_other": q("SELECT count(*) FROM instances WHERE process_key = :k AND status <> 'completed'",
                                    k=APPROVAL_KEY),
                "timer_cases_completed": q("SELECT count(*) FROM instances WHERE process_key = :k "
                                           "AND status = 'completed'", k=TIMER_KEY),
                "timer_cases_waiting": q("SELECT count(*) FROM instances WHERE process_key = :k "
                                         "AND status = 'running'", k=TIMER_KEY),
                "timers_fired_during_run": q("SELECT count(*) FROM timers WHERE state = 'done' AND fired_at >= :t",
                                             t=since.replace(tzinfo=None)),
                "timers_failed": q("SELECT count(*) FROM timers WHERE state = 'failed' OR last_error IS NOT NULL"),
                "instances_in_error": q("SELECT count(*) FROM instances WHERE status = 'error'"),
                "outbox_rows": q("SELECT count(*) FROM outbox"),
            }
    finally:
        eng.db.dispose()


def run_one(kind: str, args) -> dict:
    from datetime import datetime, timezone

    with tempdir(f"dp-load-{kind}-") as tmp, database(kind, "dp_bench_load", Path(tmp)) as url:
        workdir = Path(tmp)
        t_seed = time.perf_counter()
        people = seed_for_load(url, workdir, units=args.units, staff_per_unit=4, overdue_timers=args.overdue_timers)
        print(f"[{kind}] seeded in {time.perf_counter() - t_seed:.1f} s: {len(people)} units, "
              f"{sum(len(u['staff']) + 1 for u in people.values())} people, {args.overdue_timers} overdue timers")
        profile_to = workdir / "server.prof" if args.profile else None
        with Server(url, workdir, threads=args.threads, profile_to=profile_to, profile_clock=args.profile_clock,
                    write_lock=args.write_lock, processes=args.processes) as server:
            rec, counters, stop = Recorder(), Counters(), threading.Event()
            since = datetime.now(timezone.utc)
            rss_start = server.rss_kb()
            threads = start_workers(server.port, people, args.users, args.rate, args.mix, rec, counters, stop)
            time.sleep(args.warmup)
            rec.take()
            counters.take()
            load_before = load_average()
            cpu_server0, cpu_client0 = server.cpu_seconds(), time.process_time()
            busy0, idle0 = machine_cpu_seconds()
            t0 = time.perf_counter()
            time.sleep(args.duration)
            samples, errors = rec.take()
            completed, chains = counters.take()
            elapsed = time.perf_counter() - t0
            cpu_server, cpu_client = server.cpu_seconds() - cpu_server0, time.process_time() - cpu_client0
            busy1, idle1 = machine_cpu_seconds()
            cpu_busy, cpu_idle = busy1 - busy0, idle1 - idle0
            load_after = load_average()
            stop.set()
            for t in threads:
                t.join(timeout=60)
            _, late_errors = rec.take()
            errors += late_errors
            rss_end = server.rss_kb()
            time.sleep(1.5)  # let the scheduler fire what the last iterations started
            server_errors = server.errors_logged()
        facts = db_facts(url, workdir, since)
        profile = None
        if profile_to and profile_to.exists():
            import io

            out = io.StringIO()
            st = pstats.Stats(str(profile_to), stream=out)
            st.sort_stats("cumulative").print_stats(45)
            st.sort_stats("tottime").print_stats(30)
            profile = out.getvalue()
    requests = sum(len(v) for v in samples.values())
    result = {
        "db": kind, "write_lock": args.write_lock, "mix": args.mix, "users": args.users, "rate": args.rate, "threads": args.threads,
        "processes": args.processes,
        "seconds": round(elapsed, 1), "instances_per_s": completed / elapsed, "requests_per_s": requests / elapsed,
        "completed_in_window": completed, "chain_p50_ms": pct(chains, 50) * 1e3, "chain_p95_ms": pct(chains, 95) * 1e3,
        "errors": len(errors), "error_samples": errors[:10], "server_log_errors": server_errors[:10],
        "server_cpu_s": round(cpu_server, 1), "client_cpu_s": round(cpu_client, 1),
        "machine_busy_s": round(cpu_busy, 1), "machine_idle_s": round(cpu_idle, 1),
        "load_before": load_before, "load_after": load_after, "rss_start_kb": rss_start, "rss_end_kb": rss_end,
        "facts": facts, "table": latency_table(samples, elapsed),
        "kinds": {k: {"n": len(v), "p50": pct(v, 50) * 1e3, "p95": pct(v, 95) * 1e3, "p99": pct(v, 99) * 1e3}
                  for k, v in samples.items()},
    }
    if profile:
        result["profile"] = profile
    return result


def report(r: dict) -> None:
    mode = f"paced at {r['rate']:g} req/s" if r["rate"] else "closed loop"
    print(f"\n== {r['db']}: {r['mix']} mix, {r['users']} client threads, {mode}, server "
          f"{r.get('processes', 1)} process(es) x {r['threads']} threads, "
          f"{r['seconds']} s measured{', writer-lock experiment' if r['write_lock'] else ''} ==")
    print(f"load average before/after: {r['load_before']} / {r['load_after']}")
    if "server_cpu_s" in r:
        per_request = r["server_cpu_s"] / max(1, r["requests_per_s"] * r["seconds"]) * 1e3
        print(f"CPU while measured: server {r['server_cpu_s']} s ({per_request:.1f} ms per request), "
              f"load client {r['client_cpu_s']} s, everything else (the database server, the kernel) "
              f"{r['machine_busy_s'] - r['server_cpu_s'] - r['client_cpu_s']:.1f} s, idle {r['machine_idle_s']} s, "
              f"over {r['seconds']} s on {os.cpu_count()} cores")
    print(f"complete approval cases: {r['completed_in_window']} = {r['instances_per_s']:.1f} /s "
          f"(end to end per case p50 {r['chain_p50_ms']:.0f} ms, p95 {r['chain_p95_ms']:.0f} ms)")
    print(f"requests: {r['requests_per_s']:.1f} /s; errors: {r['errors']}; server log errors: "
          f"{len(r['server_log_errors'])}; server RSS {r['rss_start_kb'] / 1024:.0f} -> {r['rss_end_kb'] / 1024:.0f} MiB")
    for line in r["table"]:
        print("  " + line)
    print("database after the run: " + ", ".join(f"{k}={v}" for k, v in r["facts"].items()))
    for e in r["error_samples"] + r["server_log_errors"]:
        print("  ERROR " + e)
    if r.get("profile"):
        print(r["profile"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    ap.add_argument("--users", type=int, default=8, help="client threads (each a staff member + supervisor)")
    ap.add_argument("--rate", type=float, default=None, help="pace all threads to this many requests/s in total")
    ap.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds of load before measuring")
    ap.add_argument("--mix", choices=("realistic", "minimal"), default="realistic")
    ap.add_argument("--threads", type=int, default=8, help="request threads per process (dieuphoi serve --threads)")
    ap.add_argument("--processes", type=int, default=1, help="web processes (dieuphoi serve --processes)")
    ap.add_argument("--units", type=int, default=10)
    ap.add_argument("--overdue-timers", type=int, default=500)
    ap.add_argument("--profile", action="store_true", help="cProfile every request in the server; print the sum")
    ap.add_argument("--profile-clock", choices=("wall", "cpu"), default="wall",
                    help="wall time (waits included) or each thread's CPU time")
    ap.add_argument("--write-lock", action="store_true",
                    help="experiment: serialize SQLite writers on a lock in the server process")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    results = []
    for kind in (("sqlite", "postgres") if args.db == "both" else (args.db,)):
        r = run_one(kind, args)
        report(r)
        results.append(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if any(r["errors"] or r["server_log_errors"] or not r["completed_in_window"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
