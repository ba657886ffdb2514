"""Bundled data: the org directory, demo users and the plan's process models (one folder each)."""

from pathlib import Path

WORKFLOWS_DIR = Path(__file__).parent


def process_folders() -> list[Path]:
    return sorted(p for p in WORKFLOWS_DIR.iterdir() if p.is_dir() and (p / "process.json").exists())
