"""SQLite writers of several processes queue on a file lock, which a dead holder releases by itself.

SQLite only (PostgreSQL has row locks and no writer queue). Another process holds the write
transaction here; the test's own writer must wait for it on the queue, not fail or poll, and
go on the moment it is released, or the moment its holder is killed.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import text

from engine.db import Database, WriterQueue

HOLDER = r"""
import sys
from sqlalchemy import text
from engine.db import Database
db = Database(sys.argv[1])
with db.write() as session:
    session.execute(text("INSERT INTO notes (who) VALUES ('holder')"))
    print("holding", flush=True)
    sys.stdin.readline()  # hold the write transaction until told to go on (or killed)
print("released", flush=True)
"""


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'queue.sqlite3'}")
    with database.write() as session:
        session.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, who TEXT)"))
    yield database
    database.dispose()


@pytest.fixture
def holder(db):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, db.url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert proc.stdout.readline().strip() == "holding"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def _queue_file_is_locked(db) -> bool:
    fd = os.open(db._write_lock._path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _writer(db, done: list) -> threading.Thread:
    def write():
        with db.write() as session:
            session.execute(text("INSERT INTO notes (who) VALUES ('waiter')"))
        done.append(time.monotonic())

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _notes(db) -> list[str]:
    with db.read() as session:
        return list(session.scalars(text("SELECT who FROM notes ORDER BY id")))


def test_a_writer_waits_in_the_queue_for_another_process_and_goes_on_when_it_commits(db, holder):
    assert _queue_file_is_locked(db)
    done: list = []
    thread = _writer(db, done)
    thread.join(timeout=0.5)
    assert thread.is_alive() and not done  # queued behind the other process, not failed
    released = time.monotonic()
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "released"
    thread.join(timeout=10)
    assert done and done[0] - released < 5
    assert _notes(db) == ["holder", "waiter"]
    assert not _queue_file_is_locked(db)


def test_a_killed_holder_frees_the_queue_and_its_transaction_is_rolled_back(db, holder):
    done: list = []
    thread = _writer(db, done)
    thread.join(timeout=0.3)
    assert thread.is_alive()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    thread.join(timeout=10)
    assert done
    assert _notes(db) == ["waiter"]


def test_nested_writes_in_one_thread_take_the_queue_once(tmp_path):
    queue = WriterQueue(str(tmp_path / "x.sqlite3"))
    with queue:
        with queue:
            assert queue._depth == 2
        fd = os.open(queue._path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # still held by the outer level
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    fd = os.open(queue._path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released with the outer level
    finally:
        os.close(fd)
    queue.close()


def test_an_in_memory_database_has_no_queue_file():
    database = Database("sqlite:///:memory:")
    assert database._write_lock._path is None
    with database.write() as session:
        assert session.execute(text("SELECT 1")).scalar() == 1
    database.dispose()
