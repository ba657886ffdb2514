"""The SQL-paged inbox (engine.queries.inbox_page / inbox_counts) shows exactly what the simple
in-memory reference view and navigation counters (bench/inbox.py) show, on a generated province (bench/inbox.py's fill:
30 organisations, ~430 people, substitutes, claimed / addressed / queued / finished tasks)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_paged_inbox_matches_the_in_memory_one(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        import inbox
    finally:
        sys.path.remove(str(BENCH))
    url = f"sqlite:///{tmp_path / 'inbox.sqlite3'}"
    counts = inbox.fill(url, tmp_path, n_open=1500, n_done=6000)
    assert counts["open"] == 1500
    assert inbox.compare_views(url, tmp_path) == 0
