"""Several web processes on one port: gunicorn's pre-fork server with threaded workers.

One Python process serves requests on one core at a time (the GIL). `dieuphoi serve --processes N`
starts gunicorn's arbiter, which binds the port, forks N workers and restarts any that dies; each
worker builds its own engine and database connections after the fork (nothing is shared but the
listening socket) and, unless `--no-scheduler`, runs the timer ticker too: timers, the outbox and
the digest already claim their rows safely across processes, exactly as beside `dieuphoi worker`.
On SQLite the processes' writers queue on the database's writer lock (engine.db.WriterQueue).
"""

from __future__ import annotations

import logging

from gunicorn.app.base import BaseApplication

log = logging.getLogger(__name__)


class WebProcesses(BaseApplication):
    def __init__(self, host: str, port: int, processes: int, threads: int, scheduler: bool):
        self.options = {
            "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
            "workers": processes,
            "worker_class": "gthread",
            # Each worker binds its own SO_REUSEPORT socket and the kernel spreads new connections
            # over them; with one shared socket the first worker awake took every connection of a
            # burst (8 of 8 in a test), so long-lived keep-alive clients all landed on one process.
            "reuse_port": True,
            "threads": threads,
            "proc_name": "dieuphoi",
            "timeout": 120,  # a worker silent this long is killed and replaced
            "graceful_timeout": 30,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "worker_exit": _stop_scheduler,
        }
        self.scheduler = scheduler
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        """Called in each worker after the fork: its own engine, pool and scheduler."""
        from engine.app import build
        from webui import create_app

        engine = build()
        app = create_app(engine=engine)
        if self.scheduler:
            from engine.scheduler import start_background

            app.extensions["dieuphoi.scheduler"] = start_background(engine)
        return app


def _stop_scheduler(server, worker) -> None:
    app = getattr(worker, "wsgi", None)
    scheduler = getattr(app, "extensions", {}).get("dieuphoi.scheduler")
    if scheduler is not None:
        scheduler.shutdown(wait=False)
    engine = getattr(app, "extensions", {}).get("dieuphoi")
    if engine is not None:
        engine.db.dispose()


def run(host: str, port: int, processes: int, threads: int, scheduler: bool) -> None:
    WebProcesses(host, port, processes, threads, scheduler).run()
