"""Wiring: settings -> database -> engine, shared by the CLI, the web app and the tests."""

from __future__ import annotations

from engine.clock import Clock
from engine.config import Settings
from engine.db import Database
from engine.runtime import Engine


def build(settings: Settings | None = None, clock: Clock | None = None) -> Engine:
    settings = settings or Settings.from_env()
    return Engine(Database.from_settings(settings), settings, clock)
