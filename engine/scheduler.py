"""APScheduler as a ticker only: the timer columns in our database are the single source of truth."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from engine.runtime import Engine

log = logging.getLogger(__name__)


def _tick(engine: Engine) -> None:
    try:
        fired = engine.fire_due_timers()
        if fired:
            log.info("fired %d timer(s)", fired)
    except Exception:  # a failed tick must not kill the ticker; the next one retries
        log.exception("timer tick failed")


def _configure(scheduler, engine: Engine, interval: float) -> None:
    # next_run_time=now: on start-up every overdue timer fires once, before the first interval.
    scheduler.add_job(
        _tick, "interval", args=[engine], seconds=interval, id="timers",
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
