"""Nothing the engine or the web UI stores or compares reads the wall clock (invariant 12).

The rule lives in ruff's banned-api list (pyproject.toml: datetime.now, date.today, time.time…,
allowed only in engine/clock.py and the scheduler's first tick); this test runs it, so the
README's test command proves it as well as `make lint`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> list[str]:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("ruff is not installed (pip install -e '.[dev]')")
    return [found]


def test_engine_and_webui_take_every_now_from_the_injected_clock():
    result = subprocess.run([*_ruff(), "check", "--select", "TID251", "--output-format", "concise",
                             "engine", "webui", "workflows"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rule_catches_a_wall_clock_read(tmp_path):
    """The rule is not toothless: the project's configuration refuses each banned call."""
    probe = tmp_path / "probe.py"
    probe.write_text("import time\nfrom datetime import date, datetime, timezone\n\n"
                     "A = datetime.now(timezone.utc)\nB = date.today()\nC = time.time()\n", encoding="utf-8")
    result = subprocess.run([*_ruff(), "check", "--config", str(ROOT / "pyproject.toml"), "--select", "TID251",
                             "--output-format", "concise", str(probe)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout.count("TID251") == 3, result.stdout
