"""Soak: the load test's realistic mix, paced, for a long time; memory and latency sampled every 10 s.

The same set-up as bench/load.py (fresh database, seeded directory, benchmark models, people with
tokens, overdue timers; `dieuphoi serve` with its embedded scheduler in a subprocess), then the
realistic mix paced to --rate requests/s (default 35: about a third of the closed-loop maximum
measured with bench/load.py on this machine) for --minutes. Every --every seconds: the server's
RSS (VmRSS from /proc/PID/status), requests, errors, p50/p95 of that window, load average.

Reported: RSS at start, after the first minute (caches warm) and at the end, and whether memory
stayed flat (end within 10% of the one-minute mark); p95 of the first minute vs the last minute.

    python bench/soak.py [--db sqlite|postgres] [--minutes 10] [--rate 35] [--users 8] [--every 10]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

from _common import Recorder, Server, database, load_average, pct, seed_for_load, tempdir
from load import Counters, db_facts, start_workers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=35.0, help="requests/s over all client threads")
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--processes", type=int, default=1, help="web processes (dieuphoi serve --processes)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from datetime import datetime, timezone

    with tempdir(f"dp-soak-{args.db}-") as tmp, database(args.db, "dp_bench_soak", Path(tmp)) as url:
        workdir = Path(tmp)
        people = seed_for_load(url, workdir)
        with Server(url, workdir, threads=args.threads, processes=args.processes) as server:
            rec, counters, stop = Recorder(), Counters(), threading.Event()
            since = datetime.now(timezone.utc)
            t0 = time.monotonic()
            rss0 = server.rss_kb()
            threads = start_workers(server.port, people, args.users, args.rate, "realistic", rec, counters, stop)
            rows, all_errors = [], []
            print(f"[{args.db}] soak {args.minutes:g} min at {args.rate:g} req/s, server pid {server.pid} "
                  f"({args.processes} process(es)), "
                  f"RSS at start {rss0 / 1024:.1f} MiB")
            print(f"{'t s':>6} {'RSS MiB':>8} {'req':>6} {'req/s':>6} {'cases':>6} {'p50 ms':>7} {'p95 ms':>7} "
                  f"{'err':>4}  load")
            next_at = t0 + args.every
            end = t0 + args.minutes * 60
            while time.monotonic() < end:
                time.sleep(max(0.0, next_at - time.monotonic()))
                window = args.every
                next_at += args.every
                samples, errors = rec.take()
                cases, _ = counters.take()
                every = [v for vs in samples.values() for v in vs]
                all_errors += errors
                row = {"t": round(time.monotonic() - t0), "rss_kb": server.rss_kb(), "requests": len(every),
                       "cases": cases, "p50": pct(every, 50) * 1e3, "p95": pct(every, 95) * 1e3,
                       "errors": len(errors), "load": load_average(), "samples": every}
                rows.append(row)
                print(f"{row['t']:6d} {row['rss_kb'] / 1024:8.1f} {row['requests']:6d} {row['requests'] / window:6.1f} "
                      f"{cases:6d} {row['p50']:7.1f} {row['p95']:7.1f} {row['errors']:4d}  {row['load']}", flush=True)
            stop.set()
            for t in threads:
                t.join(timeout=60)
            all_errors += rec.take()[1]
            server_errors = server.errors_logged()
        facts = db_facts(url, workdir, since)

    per_minute = max(1, round(60 / args.every))
    first = [v for r in rows[:per_minute] for v in r["samples"]]
    last = [v for r in rows[-per_minute:] for v in r["samples"]]
    rss_1min = rows[per_minute - 1]["rss_kb"] if len(rows) >= per_minute else rows[0]["rss_kb"]
    rss_end = rows[-1]["rss_kb"]
    rss_max = max(r["rss_kb"] for r in rows)
    growth = (rss_end - rss_1min) / rss_1min
    total_requests = sum(r["requests"] for r in rows)
    print(f"\nrequests {total_requests} ({total_requests / (len(rows) * args.every):.1f}/s), "
          f"approval cases {sum(r['cases'] for r in rows)}, errors {len(all_errors)}, "
          f"server log errors {len(server_errors)}")
    print(f"RSS: start {rss0 / 1024:.1f} MiB, after 1 min {rss_1min / 1024:.1f} MiB, end {rss_end / 1024:.1f} MiB, "
          f"max {rss_max / 1024:.1f} MiB; end vs 1 min {growth * 100:+.1f}% -> "
          f"{'flat (within 10%)' if abs(growth) <= 0.10 else 'NOT flat'}")
    p95_first, p95_last = pct(first, 95) * 1e3, pct(last, 95) * 1e3
    print(f"latency: first minute p50 {pct(first, 50) * 1e3:.1f} ms p95 {p95_first:.1f} ms; last minute p50 "
          f"{pct(last, 50) * 1e3:.1f} ms p95 {p95_last:.1f} ms; drift of p95 {p95_last / p95_first:.2f}x")
    print("database after the soak: " + ", ".join(f"{k}={v}" for k, v in facts.items()))
    for e in (all_errors + server_errors)[:10]:
        print("  ERROR " + e)
    if args.json:
        for r in rows:
            r.pop("samples")
        args.json.write_text(json.dumps({"rows": rows, "facts": facts, "errors": all_errors[:50],
                                         "server_errors": server_errors[:50]}, indent=1))
    if all_errors or server_errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
