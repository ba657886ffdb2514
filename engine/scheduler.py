"""APScheduler as a ticker only: the timer table in our database is the single source of truth."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from engine import digest, outbox
from engine.runtime import Engine

log = logging.getLogger(__name__)


def _tick(engine: Engine) -> None:
    try:
        if not engine.digest_armed:
            # The daily digest's timer row, made once by whichever process ticks first; retried
            # on the next tick if the database was not reachable.
            digest.arm(engine)
            engine.digest_armed = True
        # A time budget per tick: a backlog drains over several ticks instead of starving web requests.
        fired = engine.fire_due_timers(budget_seconds=TICK_BUDGET)
        if fired:
            log.info("fired %d timer(s)", fired)
    except Exception:  # a failed tick must not kill the ticker; the next one retries
        log.exception("timer tick failed")


TICK_BUDGET = 0.5  # seconds of firing per tick
OUTBOX_INTERVAL = 5.0  # seconds; emails need no sub-second latency


def _send_mail(engine: Engine) -> None:
    try:
        report = outbox.dispatch(engine.db, engine.settings, engine.clock)
        if report.sent or report.retried or report.failed:
            log.info("outbox: %d sent, %d to retry, %d failed", report.sent, report.retried, report.failed)
    except Exception:  # same rule as timers: the next tick retries
        log.exception("outbox tick failed")


def _configure(scheduler, engine: Engine, interval: float) -> None:
    # next_run_time=now: on start-up every overdue timer fires once, before the first interval.
    scheduler.add_job(
        _tick, "interval", args=[engine], seconds=interval, id="timers",
        next_run_time=datetime.now(timezone.utc), coalesce=True, max_instances=1, misfire_grace_time=None,
    )
    scheduler.add_job(
        _send_mail, "interval", args=[engine], seconds=max(interval, OUTBOX_INTERVAL), id="outbox",
        next_run_time=datetime.now(timezone.utc), coalesce=True, max_instances=1, misfire_grace_time=None,
    )


def start_background(engine: Engine, interval: float = 1.0) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    _configure(scheduler, engine, interval)
    scheduler.start()
    return scheduler


def run_blocking(engine: Engine, interval: float = 1.0) -> None:
    scheduler = BlockingScheduler(timezone="UTC")
    _configure(scheduler, engine, interval)
    scheduler.start()
