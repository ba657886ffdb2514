"""Database engine and sessions: SQLite pragmas, BEGIN IMMEDIATE for writers, one transaction per action."""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from engine.config import Settings
from engine.sqlite_wal import AUTOCHECKPOINT_PAGES, WalCheckpointer

try:
    import fcntl
except ImportError:  # not on Windows: there, other processes' writers meet the busy timeout
    fcntl = None

log = logging.getLogger(__name__)

# Where a write session keeps its transaction's Core connection (read by engine.store).
CONNECTION_KEY = "dieuphoi_connection"
CONNECT_TIMEOUT = 5  # seconds to open a PostgreSQL connection


class Database:
    """Owns the SQLAlchemy engine and hands out transactional sessions.

    `write()` opens a transaction that takes the write lock up front on SQLite
    (BEGIN IMMEDIATE), so two writers never fail late on a stale WAL snapshot;
    on PostgreSQL it is an ordinary transaction and row locks do the work.
    """

    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL", echo: bool = False):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict = {"echo": echo, "future": True}
        if self.is_sqlite:
            _ensure_sqlite_dir(url)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # A database that stops answering (host down, packets dropped) must fail a request, not hang
            # it: libpq waits forever for a connection without connect_timeout. A URL may set its own.
            connect_args = {} if "connect_timeout=" in url else {"connect_timeout": CONNECT_TIMEOUT}
            kwargs.update(pool_size=10, max_overflow=20, connect_args=connect_args)
        self.engine: Engine = create_engine(url, **kwargs)
        if not self.is_sqlite:
            _ping_idle_connections(self.engine)
        self._wal: WalCheckpointer | None = None
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine, sqlite_synchronous)
            path = _sqlite_file(url)
            if path:
                wal = self._wal = WalCheckpointer(path)
                event.listen(self.engine, "commit", lambda _conn: wal.note_commit())
        self._writer = self.engine.execution_options(dieuphoi_immediate=True)
        self._write_lock = WriterQueue(_sqlite_file(url)) if self.is_sqlite else None
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        # For a web request's reads, which need no snapshot across statements: on PostgreSQL in
        # autocommit, so no BEGIN and ROLLBACK round trips; each statement sees what was committed
        # before it ran, as in a READ COMMITTED transaction. SQLite keeps its transactions.
        self.request_reader: Engine = (self.engine if self.is_sqlite
                                       else self.engine.execution_options(isolation_level="AUTOCOMMIT"))

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        return cls(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One action = one transaction: commit on success, roll back on any error.

        The transaction is a Core connection's; the ORM session handed out joins it and only
        starts its own machinery if ORM features are used (rare paths: deploys, comments,
        administration). The hot path's SQL runs on the connection (engine.store), which
        halves the fixed cost of an action.
        """
        from engine.audit import flush_pending

        with self._write_lock or nullcontext(), self._writer.begin() as conn:
            session = Session(bind=conn, expire_on_commit=False)
            session.info[CONNECTION_KEY] = conn
            try:
                yield session
                session.flush()
                flush_pending(session)
            finally:
                session.close()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read_sessions() as session:
            with session.begin():
                yield session

    def dispose(self) -> None:
        if self._wal is not None:
            self._wal.stop()
        if self._write_lock is not None:
            self._write_lock.close()
        self.engine.dispose()


PING_IF_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    """Check a pooled PostgreSQL connection before use if it sat idle for a second or more.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: a round trip per request and per
    action. A connection that was in use a moment ago is alive; one idle since before a database
    restart is not, and the ping replaces it with a fresh one (SQLAlchemy's documented custom
    pessimistic check: DisconnectionError makes the pool reconnect). If the database restarts while
    connections are busy, the statement that meets a dead one fails (503, nothing changed) and
    SQLAlchemy invalidates the rest of the pool, so the next requests reconnect.
    """
    import time

    from sqlalchemy import exc

    @event.listens_for(engine, "checkin")
    def _idle_since(_dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy):
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_IF_IDLE_SECONDS:
            return  # new (just connected) or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError(f"idle connection is gone: {error}") from error


class WriterQueue:
    """Where SQLite writers wait for the one write lock: threads on a lock, processes on a file lock.

    SQLite's own busy handler sleeps and polls (1, 2, 5 … up to 100 ms a time), so a writer
    can sleep long after the lock is free: under load that made a write's p99 over a second,
    and two processes firing timers side by side spent their time asleep. Here the threads of
    this process queue on an RLock, and processes (`serve`, `worker`, the CLI) on an exclusive
    `flock` of `<database>-writer`, which the kernel hands to the next waiter the moment it is
    released, and releases by itself if its holder dies. SQLite's lock stays the guarantee;
    this only orders the queue in front of it.
    """

    def __init__(self, path: str | None):
        self._lock = threading.RLock()
        self._depth = 0  # nesting of the owning thread; only it reads or writes this
        self._path = f"{path}-writer" if path and fcntl is not None else None
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        if self._path is None:
            return None
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
            try:
                self._fd, self._pid = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644), os.getpid()
            except OSError as exc:
                log.warning("no writer queue file %s (%s): writers of other processes will poll", self._path, exc)
                self._path = None
                return None
        return self._fd

    def __enter__(self) -> None:
        self._lock.acquire()
        if self._depth == 0:
            fd = self._file()
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    self._lock.release()
                    raise
        self._depth += 1

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None and self._pid == os.getpid():
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None


def _sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for in-memory and URI forms."""
    path = url.split("///", 1)[1] if "///" in url else ""
    path = path.split("?", 1)[0]
    return path if path and path != ":memory:" and not path.startswith("file:") else None


def _ensure_sqlite_dir(url: str) -> None:
    path = _sqlite_file(url)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _install_sqlite_hooks(engine: Engine, synchronous: str) -> None:
    if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"DIEUPHOI_SQLITE_SYNCHRONOUS must be NORMAL or FULL, not {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's begin event, not pysqlite, decide how transactions start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")  # the thread in sqlite_wal does it first
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Straight to the driver: this runs once per transaction, on every action's path.
        immediate = conn.get_execution_options().get("dieuphoi_immediate")
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
