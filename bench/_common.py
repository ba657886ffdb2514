"""Shared pieces of the load, soak and inbox benchmarks: databases, the benchmark models, seeding,
the real server as a subprocess, an HTTP client that records latency per request kind.

Nothing here is timed by itself; the scripts report what they measured in one run.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("DIEUPHOI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORD = "Bench@2026"

# ------------------------------------------------------------------ the benchmark's approval model
# The smallest real approval: unit staff submit (form), the unit's supervisor approves or sends it
# back (gateway); deadlines, a reminder and an escalation per step, so every step writes and later
# cancels timer rows, as the bundled processes do.
APPROVAL_KEY = "bench_duyet"
APPROVAL_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="Defs_bench" targetNamespace="http://dieuphoi.local/bench">
  <bpmn:process id="bench_duyet" name="Phê duyệt (benchmark)" isExecutable="true">
    <bpmn:laneSet id="ls">
      <bpmn:lane id="l_cv" name="Chuyên viên đơn vị"><bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>soan</bpmn:flowNodeRef></bpmn:lane>
      <bpmn:lane id="l_ld" name="Lãnh đạo đơn vị"><bpmn:flowNodeRef>duyet</bpmn:flowNodeRef><bpmn:flowNodeRef>gw</bpmn:flowNodeRef><bpmn:flowNodeRef>end</bpmn:flowNodeRef></bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="soan"/>
    <bpmn:userTask id="soan" name="Soạn tờ trình">
      <bpmn:extensionElements><spiffworkflow:properties><spiffworkflow:property name="formJsonSchemaFilename" value="soan.json"/></spiffworkflow:properties></bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="soan" targetRef="duyet"/>
    <bpmn:userTask id="duyet" name="Lãnh đạo phê duyệt">
      <bpmn:extensionElements><spiffworkflow:properties><spiffworkflow:property name="formJsonSchemaFilename" value="duyet.json"/></spiffworkflow:properties></bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f3" sourceRef="duyet" targetRef="gw"/>
    <bpmn:exclusiveGateway id="gw" default="f_back"/>
    <bpmn:sequenceFlow id="f_ok" sourceRef="gw" targetRef="end"><bpmn:conditionExpression>quyet_dinh == "phe_duyet"</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_back" sourceRef="gw" targetRef="soan"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""
APPROVAL_DESCRIPTOR = {
    "key": APPROVAL_KEY,
    "title": {"vi": "Phê duyệt tờ trình (benchmark)", "en": "Submission approval (benchmark)"},
    "process_id": APPROVAL_KEY,
    "lanes": {"Chuyên viên đơn vị": {"org": "$owner", "role": "staff"},
              "Lãnh đạo đơn vị": {"org": "$owner", "role": "supervisor"}},
    "title_template": "Tờ trình {so_van_ban}",
    "list_fields": {"so_van_ban": {"vi": "Số văn bản", "en": "Document number"},
                    "trich_yeu": {"vi": "Trích yếu", "en": "Summary"}},
    "start": {"roles": ["staff"]},
    "tasks": {
        "soan": {"due": "3wd", "remind_before": "1wd", "escalate": [{"after": "0wd", "notify": "supervisor"}]},
        "duyet": {"due": "2wd", "remind_before": "1wd", "escalate": [{"after": "0wd", "notify": "supervisor"}]},
    },
}
APPROVAL_FORMS = {
    "soan.json": {"title": "Soạn tờ trình", "type": "object", "required": ["so_van_ban", "trich_yeu"],
                  "properties": {"so_van_ban": {"type": "string", "title": "Số văn bản", "minLength": 1,
                                                "maxLength": 50},
                                 "trich_yeu": {"type": "string", "title": "Trích yếu", "minLength": 5,
                                               "maxLength": 500},
                                 "kinh_phi": {"type": "integer", "title": "Kinh phí (đồng)", "minimum": 0}}},
    "duyet.json": {"title": "Phê duyệt", "type": "object", "required": ["quyet_dinh"],
                   "properties": {"quyet_dinh": {"type": "string", "title": "Quyết định",
                                                 "enum": ["phe_duyet", "tra_lai"]},
                                  "y_kien": {"type": "string", "title": "Ý kiến", "maxLength": 2000}}},
}

# A case that only waits on a timer (its duration comes from the start data) and ends: the
# embedded scheduler fires these while the load runs.
TIMER_KEY = "bench_hen_gio"
TIMER_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="Defs_hg" targetNamespace="http://dieuphoi.local/bench">
  <bpmn:process id="bench_hen_gio" name="Hẹn giờ (benchmark)" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="cho"/>
    <bpmn:intermediateCatchEvent id="cho"><bpmn:timerEventDefinition><bpmn:timeDuration>cho</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="cho" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""
TIMER_DESCRIPTOR = {"key": TIMER_KEY, "title": {"vi": "Hẹn giờ (benchmark)", "en": "Timer (benchmark)"},
                    "process_id": TIMER_KEY, "start": {"roles": ["staff"]}}


def write_models(folder: Path) -> list[Path]:
    out = []
    for key, bpmn, descriptor, forms in ((APPROVAL_KEY, APPROVAL_BPMN, APPROVAL_DESCRIPTOR, APPROVAL_FORMS),
                                         (TIMER_KEY, TIMER_BPMN, TIMER_DESCRIPTOR, {})):
        d = folder / key
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{key}.bpmn").write_text(bpmn, encoding="utf-8")
        (d / "process.json").write_text(json.dumps(descriptor, ensure_ascii=False), encoding="utf-8")
        for name, schema in forms.items():
            (d / name).write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")
        out.append(d)
    return out


# ------------------------------------------------------------------ databases
@contextlib.contextmanager
def database(kind: str, name: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file in `workdir`, or a PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / (name + '.sqlite3')}"
        return
    import psycopg

    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_engine(url: str, workdir: Path, clock=None):
    from engine.config import Settings
    from engine.db import Database
    from engine.runtime import Engine

    settings = Settings(database_url=url, instance_dir=workdir)
    return Engine(Database.from_settings(settings), settings, clock)


# ------------------------------------------------------------------ seeding for the load test
def seed_for_load(url: str, workdir: Path, *, units: int = 10, staff_per_unit: int = 4,
                  overdue_timers: int = 500, web_password: bool = True) -> dict:
    """Schema, org directory and bundled workflows (engine.seed), the two benchmark models, per unit
    `staff_per_unit` staff and one supervisor, each with an API token; `overdue_timers` timer cases
    whose timers are already due when the server starts. Returns the people, by unit."""
    from sqlalchemy import select

    from engine import directory, schema, tokens
    from engine.clock import FixedClock
    from engine.models import Organisation
    from engine.seed import seed

    engine = make_engine(url, workdir)
    schema.upgrade(engine.db)
    seed(engine, demo=False)
    for folder in write_models(workdir / "models"):
        engine.deploy_path(folder)
    pw_hash = directory.hash_password(PASSWORD) if web_password else None
    now = engine.now()
    people: dict[str, dict] = {}
    with engine.db.write() as session:
        codes = list(session.scalars(select(Organisation.code).where(Organisation.kind.in_(("department", "district")))
                                     .order_by(Organisation.code)))[:units]
        for code in codes:
            slug = code.lower().replace("_", ".")
            unit = {"staff": [], "supervisor": []}
            for role, n in (("staff", staff_per_unit), ("supervisor", 1)):
                for k in range(n):
                    username = f"b.{slug}.{'cv' if role == 'staff' else 'ld'}{k}"
                    user = directory.create_user(session, username, f"Bench {username}",
                                                 positions=[(code, role)], at=now)
                    user.password_hash = pw_hash
                    _row, raw = tokens.issue(session, user.id, now, "bench")
                    unit[role].append({"id": user.id, "username": username, "token": raw})
            people[code] = unit
    if overdue_timers:
        # Started ten minutes ago (engine clock) with a one-minute wait: due nine minutes ago.
        past = make_engine(url, workdir, FixedClock(datetime.now(timezone.utc) - timedelta(minutes=10)))
        starter = people[codes[0]]["staff"][0]["id"]
        for _ in range(overdue_timers):
            past.start_instance(starter, TIMER_KEY, {"cho": "PT1M"})
        past.db.dispose()
    engine.db.dispose()
    return people


# ------------------------------------------------------------------ the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WRAPPED_SERVE = r"""
import cProfile, pstats, sys, threading, time
from contextlib import contextmanager
sys.path.insert(0, {root!r})
from waitress import serve
from engine.app import build
from engine.scheduler import start_background
from webui import create_app

if {write_lock!r}:
    # Experiment: one process-wide lock around SQLite write transactions, so a waiting writer
    # is woken the moment the lock is free instead of polling in SQLite's busy handler.
    from engine import db as dbmod
    _orig, _lock = dbmod.Database.write, threading.RLock()

    @contextmanager
    def write(self):
        if not self.is_sqlite:
            with _orig(self) as s:
                yield s
            return
        with _lock, _orig(self) as s:
            yield s

    dbmod.Database.write = write

engine = build()
app = create_app(engine=engine)
stats, lock = [], threading.Lock()
inner = app.wsgi_app
clock = time.thread_time if {profile!r} == "cpu" else time.perf_counter

def profiled(environ, start_response):
    prof = cProfile.Profile(clock)
    prof.enable()
    try:
        return list(inner(environ, start_response))
    finally:
        prof.disable()
        with lock:
            stats.append(prof)

if {profile!r}:
    app.wsgi_app = profiled
scheduler = start_background(engine)
try:
    serve(app, host="127.0.0.1", port={port}, threads={threads}, ident="dieuphoi")
finally:
    scheduler.shutdown(wait=False)
    with lock:
        if stats:
            total = pstats.Stats(stats[0])
            for p in stats[1:]:
                total.add(p)
            total.dump_stats({out!r})
"""


class Server:
    """`dieuphoi serve` on a free loopback port, over `url`, in its own process group."""

    def __init__(self, url: str, workdir: Path, *, threads: int = 8, profile_to: Path | None = None,
                 profile_clock: str = "wall", write_lock: bool = False, extra_env: dict | None = None,
                 processes: int = 1):
        """`profile_to`: cProfile every request (wall or per-thread CPU clock) and dump the sum there
        at exit; `write_lock`: the process-wide SQLite writer lock experiment. Either runs the same
        app as `dieuphoi serve` from a small wrapper script instead of the installed command.
        `processes` > 1: `dieuphoi serve --processes N` (gunicorn, N worker processes)."""
        if processes > 1 and (profile_to or write_lock):
            raise ValueError("profiling and the writer-lock experiment run one process only")
        self.url, self.workdir, self.threads, self.profile_to = url, workdir, threads, profile_to
        self.processes = processes
        self.profile_clock, self.write_lock = profile_clock, write_lock
        self.port = free_port()
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None
        self.log = workdir / f"server-{self.port}.log"

    def __enter__(self) -> "Server":
        env = {**os.environ, "DIEUPHOI_DATABASE_URL": self.url, "DIEUPHOI_INSTANCE_DIR": str(self.workdir),
               "DIEUPHOI_SECRET_KEY": "bench-secret", "DIEUPHOI_BASE_URL": f"http://127.0.0.1:{self.port}",
               **self.extra_env}
        env.pop("DIEUPHOI_SMTP_URL", None)  # emails stay in the outbox
        if self.profile_to or self.write_lock:
            code = WRAPPED_SERVE.format(root=str(ROOT), port=self.port, threads=self.threads,
                                        out=str(self.profile_to), write_lock=self.write_lock,
                                        profile=self.profile_clock if self.profile_to else "")
            cmd = [sys.executable, "-c", code]
        else:
            exe = Path(sys.executable).parent / "dieuphoi"
            cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "engine.cli"]),
                   "serve", "--host", "127.0.0.1", "--port", str(self.port), "--threads", str(self.threads),
                   "--processes", str(self.processes)]
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=self._logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/api/v1/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError("server did not become healthy within 60 s")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server's processes that are still alive."""
        return sum(cpu_seconds(pid) for pid in process_tree(self.proc.pid))

    def rss_kb(self) -> int:
        """The server's resident memory: its own and, with several processes, its workers' too."""
        return sum(rss_kb(pid) for pid in process_tree(self.proc.pid))

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()

    def errors_logged(self) -> list[str]:
        text = self.log.read_text(errors="replace")
        return [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]


def rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # a worker that has just exited
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine so far, over all cores (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values[:8]) - idle) / tick, idle / tick


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (from /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in task.read_text().split())
    return found


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ------------------------------------------------------------------ the client
class Recorder:
    """Latency samples per request kind, and every error, shared by the client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.on = True

    def add(self, kind: str, seconds: float) -> None:
        if self.on:
            with self.lock:
                self.samples[kind].append(seconds)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)

    def take(self) -> tuple[dict[str, list[float]], list[str]]:
        with self.lock:
            samples, errors = self.samples, self.errors
            self.samples, self.errors = defaultdict(list), []
        return samples, errors


class HttpError(Exception):
    pass


class Pacer:
    """Open-loop pacing: request i is due at start + i / rate; a late thread sends at once."""

    def __init__(self, rate: float | None):
        self.rate = rate
        self.lock = threading.Lock()
        self.next = time.monotonic()

    def wait(self) -> None:
        if not self.rate:
            return
        with self.lock:
            slot = self.next = max(self.next + 1.0 / self.rate, time.monotonic() - 1.0)
        delay = slot - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class Client:
    """One person's persistent HTTP connection: a Bearer token, or a web session cookie."""

    def __init__(self, port: int, recorder: Recorder, pacer: Pacer, token: str | None = None):
        self.port, self.rec, self.pacer, self.token = port, recorder, pacer, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie: str | None = None

    def request(self, kind: str, method: str, path: str, body=None, *, form: dict | None = None,
                expect: tuple[int, ...] = (200, 201)) -> tuple[int, bytes, dict]:
        headers = {"Accept": "application/json"}
        data = None
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookie:
            headers["Cookie"] = self.cookie
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = f"http://127.0.0.1:{self.port}"
            headers["Accept"] = "text/html"
        self.pacer.wait()
        t0 = time.perf_counter()
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            payload = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.rec.error(f"{kind} {method} {path}: {exc!r}")
            raise HttpError(str(exc)) from exc
        elapsed = time.perf_counter() - t0
        cookie = resp.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        if resp.status not in expect:
            self.rec.error(f"{kind} {method} {path}: HTTP {resp.status} {payload[:300]!r}")
            raise HttpError(f"HTTP {resp.status}")
        self.rec.add(kind, elapsed)
        return resp.status, payload, dict(resp.getheaders())

    def json(self, kind: str, method: str, path: str, body=None, expect=(200, 201)) -> dict:
        return json.loads(self.request(kind, method, path, body, expect=expect)[1])

    def sign_in(self, username: str, password: str = PASSWORD) -> None:
        """The web form: GET /login for the CSRF token and cookie, POST it back, follow to the inbox."""
        _, page, _ = self.request("login_page", "GET", "/login")
        match = re.search(rb'name="csrf_token" value="([^"]+)"', page)
        if not match:
            self.rec.error("login_page: no csrf_token in the form")
            raise HttpError("no csrf token")
        self.request("login_post", "POST", "/login", form={"csrf_token": match.group(1).decode(),
                                                          "username": username, "password": password},
                     expect=(302, 303))


# ------------------------------------------------------------------ figures
def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


def latency_table(samples: dict[str, list[float]], elapsed: float) -> list[str]:
    lines = [f"{'request kind':18} {'n':>7} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"]
    every: list[float] = []
    for kind in sorted(samples):
        v = samples[kind]
        every += v
        lines.append(f"{kind:18} {len(v):7d} {len(v) / elapsed:7.1f} {pct(v, 50) * 1e3:8.1f} "
                     f"{pct(v, 95) * 1e3:8.1f} {pct(v, 99) * 1e3:8.1f} {max(v) * 1e3:8.1f}")
    if every:
        lines.append(f"{'ALL':18} {len(every):7d} {len(every) / elapsed:7.1f} {pct(every, 50) * 1e3:8.1f} "
                     f"{pct(every, 95) * 1e3:8.1f} {pct(every, 99) * 1e3:8.1f} {max(every) * 1e3:8.1f}")
    return lines


def median(values):
    return statistics.median(values) if values else float("nan")


def tempdir(prefix: str) -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=prefix)
