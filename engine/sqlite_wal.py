"""Fold SQLite's write-ahead log back into the database file off the request path.

By default SQLite checkpoints inside whichever commit pushes the WAL past 1,000 pages, so
one user's click in every few hundred pays for copying everyone's pages (and, with
synchronous=FULL, for the fsyncs). Here a background thread runs a PASSIVE checkpoint
shortly after writes, on its own connection: it never waits for readers or writers and
releases the GIL while SQLite copies pages. The automatic checkpoint stays on, with a
higher threshold, as the safety net for processes whose thread is not running.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

# Pages (4 KiB each) after which a commit checkpoints by itself if the thread fell behind.
AUTOCHECKPOINT_PAGES = 4000


class WalCheckpointer:
    """Checkpoints `path` at most every `interval` seconds, only after something was committed."""

    def __init__(self, path: str, interval: float = 0.5):
        self.path = path
        self.interval = interval
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def note_commit(self) -> None:
        self._dirty.set()
        if self._thread is None:
            with self._start_lock:
                if self._thread is None and not self._stop.is_set():
                    self._thread = threading.Thread(target=self._run, name="dieuphoi-wal-checkpoint", daemon=True)
                    self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=1, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.is_set():
                self._dirty.wait()
                if self._stop.wait(self.interval):  # let a burst of commits finish first
                    break
                self._dirty.clear()
                try:
                    self.checkpoint(conn)
                except sqlite3.Error as exc:  # busy or I/O: the next round or the automatic checkpoint retries
                    log.debug("WAL checkpoint skipped: %s", exc)
        finally:
            conn.close()
