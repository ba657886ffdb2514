"""Smoke run of bench/load.py against the real server on SQLite: a few seconds of the realistic mix.

Not a timed test: it asserts only that nothing failed (zero request errors, nothing in the
server's log, no case or timer in error) and that work got done (approval cases completed end
to end through HTTP, overdue timers fired by the embedded scheduler).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_load_script_runs_clean_on_sqlite(tmp_path):
    out = tmp_path / "load.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load.py"), "--db", "sqlite", "--users", "3", "--duration", "8",
         "--warmup", "2", "--units", "3", "--overdue-timers", "20", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [result] = json.loads(out.read_text())
    assert result["errors"] == 0, result["error_samples"]
    assert result["server_log_errors"] == []
    assert result["completed_in_window"] > 0
    facts = result["facts"]
    assert facts["approval_completed"] >= result["completed_in_window"]
    assert facts["instances_in_error"] == 0 and facts["timers_failed"] == 0
    assert facts["timer_cases_completed"] >= 20  # the overdue ones, fired by the server's scheduler
