"""Machinery for the fault tests: real `dieuphoi` processes, a logging HTTP client, a TCP proxy to cut.

Every process is started in its own process group and killed (SIGKILL to the group) by the
`Cluster.close()` the fixtures call in their finalizers, whatever happened in the test.
"""

from __future__ import annotations

import os
import random
import select
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests
from sqlalchemy import text

from engine import tokens
from engine.clock import CLOCK_FILE_ENV, write_clock_file
from tests.engine.smtp_server import free_port

ROOT = Path(__file__).resolve().parents[2]
DIEUPHOI = ROOT / ".venv" / "bin" / "dieuphoi"
TRIALS = int(os.environ.get("DIEUPHOI_RELIABILITY_TRIALS", "0"))  # 0: each test's CI default


def trials(default: int) -> int:
    return TRIALS or default


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05, alive=()):
    """Poll `predicate` until truthy (returned) or `timeout` seconds pass (AssertionError naming `what`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for proc in alive:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.name} exited ({proc.returncode}) while waiting for {what}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------------ processes
class Proc:
    def __init__(self, name: str, popen: subprocess.Popen, log_path: Path, port: int | None = None):
        self.name, self.popen, self.log_path, self.port = name, popen, log_path, port

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self):
        return self.popen.returncode

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def poll(self):
        return self.popen.poll()

    def kill9(self) -> None:
        """SIGKILL the whole process group: no cleanup, no atexit, no flush."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)

    def children(self) -> list[int]:
        """The pids this process forked (gunicorn's workers under `serve --processes N`)."""
        found = []
        for task in Path(f"/proc/{self.pid}/task").glob("*/children"):
            try:
                found += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
        return sorted(found)

    def tail(self, chars: int = 3000) -> str:
        try:
            return f"--- {self.name} ---\n" + self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Cluster:
    """The processes of one test against one database, all sharing one injected clock file."""

    def __init__(self, tmp_path: Path, db_url: str, **env):
        self.tmp_path, self.db_url = tmp_path, db_url
        self.clock_file = tmp_path / "clock.txt"
        self.procs: list[Proc] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DIEUPHOI_")}
        self.env.update(DIEUPHOI_DATABASE_URL=db_url, DIEUPHOI_INSTANCE_DIR=str(tmp_path),
                        DIEUPHOI_SECRET_KEY="reliability-tests", PYTHONUNBUFFERED="1",
                        **{CLOCK_FILE_ENV: str(self.clock_file)}, **env)

    def set_clock(self, value: datetime | float) -> None:
        write_clock_file(self.clock_file, value)

    def _spawn(self, name: str, args: list[str], port: int | None = None, db_url: str | None = None) -> Proc:
        log_path = self.tmp_path / f"{name}-{len(self.procs)}.log"
        env = dict(self.env, **({"DIEUPHOI_DATABASE_URL": db_url} if db_url else {}))
        with open(log_path, "wb") as log:
            popen = subprocess.Popen([str(DIEUPHOI), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.tmp_path, start_new_session=True)
        proc = Proc(name, popen, log_path, port)
        self.procs.append(proc)
        return proc

    def serve(self, name: str = "web", *, scheduler: bool = True, port: int | None = None, threads: int = 4,
              db_url: str | None = None, wait: bool = True, processes: int = 1) -> Proc:
        port = port or free_port()
        args = ["serve", "--port", str(port), "--threads", str(threads), "--processes", str(processes)]
        args += [] if scheduler else ["--no-scheduler"]
        proc = self._spawn(name, args, port, db_url)
        if wait:
            self.wait_healthy(proc)
        return proc

    def wait_healthy(self, proc: Proc, timeout: float = 30) -> None:
        def healthy():
            try:
                return requests.get(proc.url + "/api/v1/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_until(healthy, timeout, f"{proc.name} to answer /api/v1/health", alive=[proc])

    def worker(self, name: str = "worker", interval: float = 0.2, db_url: str | None = None) -> Proc:
        return self._spawn(name, ["worker", "--interval", str(interval)], db_url=db_url)

    def tails(self) -> str:
        return "\n".join(p.tail() for p in self.procs)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill9()


# ------------------------------------------------------------------ HTTP history
@dataclass
class Op:
    """One client request and what came back: the history the checks read."""

    client: str
    kind: str  # complete | claim
    task_id: str
    data: dict = field(default_factory=dict)
    status: int | None = None  # None: no answer (connection refused or reset, timeout)
    error: str = ""
    body: dict | None = None
    started: float = 0.0
    seconds: float = 0.0

    @property
    def acked(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def outcome(self) -> str:
        if self.status is None:
            return "no-answer"
        if self.acked:
            return "ok"
        return {409: "conflict"}.get(self.status, f"http-{self.status}")


class History:
    def __init__(self):
        self.ops: list[Op] = []
        self.lock = threading.Lock()

    def add(self, op: Op) -> Op:
        with self.lock:
            self.ops.append(op)
        return op

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.outcome] = counts.get(op.outcome, 0) + 1
        return counts


class Client:
    """A user of the REST API with a Bearer token; every request is logged in a History."""

    def __init__(self, name: str, token: str, history: History, timeout: float = 15):
        self.name, self.history, self.timeout = name, history, timeout
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def act(self, base_url: str, kind: str, task_id: str, data: dict | None = None) -> Op:
        op = Op(self.name, kind, task_id, dict(data or {}), started=time.monotonic())
        body = {"data": op.data} if kind == "complete" else {}
        try:
            response = self.http.post(f"{base_url}/api/v1/tasks/{task_id}/{kind}", json=body, timeout=self.timeout)
            op.status = response.status_code
            try:
                op.body = response.json()
            except ValueError:
                op.body = {"raw": response.text[:500]}
        except requests.RequestException as exc:
            op.error = f"{type(exc).__name__}: {exc}"[:300]
        op.seconds = time.monotonic() - op.started
        return self.history.add(op)

    def close(self) -> None:
        self.http.close()


def issue_tokens(engine, people, names) -> dict[str, str]:
    with engine.db.write() as session:
        return {n: tokens.issue(session, people[n], engine.now(), "reliability")[1] for n in names}


# ------------------------------------------------------------------ database helpers
def rows(engine, sql: str, **params) -> list[tuple]:
    with engine.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def scalar(engine, sql: str, **params):
    with engine.db.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


# ------------------------------------------------------------------ a TCP proxy to cut
class TcpProxy:
    """127.0.0.1:<port> -> target, forwarding bytes with threads.

    `cut()` resets every open connection and closes the listening socket (new connections are
    refused), like a database server that went away; `restore()` listens again on the same port.
    """

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._accepting = threading.Event()
        self.accepted = 0
        self.stalled = False  # accept connections but never forward a byte (a hung server)

    def start(self) -> "TcpProxy":
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._listener = sock
        self._accepting.set()
        threading.Thread(target=self._accept_loop, args=(sock,), daemon=True).start()
        return self

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._accepting.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.stalled:
                with self._lock:
                    self._conns.add(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if not self._accepting.is_set():
                    client.close()
                    upstream.close()
                    return
                self._conns.update((client, upstream))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 1.0)
                for src in readable:
                    data = src.recv(65536)
                    if not data:
                        return
                    (b if src is a else a).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            self._drop(a, b)

    def _drop(self, *socks: socket.socket) -> None:
        with self._lock:
            for s in socks:
                self._conns.discard(s)
        for s in socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def cut(self) -> None:
        self._accepting.clear()
        if self._listener is not None:
            # close() alone leaves a thread blocked in accept() holding the port open (Linux):
            # shutdown wakes it, so the port is free for restore() and refuses connections meanwhile.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns = list(self._conns)
        self._drop(*conns)

    def restore(self) -> None:
        self.start()

    def unstall(self) -> None:
        """Forward new connections again; the stalled ones are reset."""
        self.stalled = False
        with self._lock:
            held = [c for c in self._conns]
        self._drop(*held)

    def close(self) -> None:
        self.cut()


def random_pause(rng: random.Random, low: float, high: float) -> float:
    return rng.uniform(low, high)
