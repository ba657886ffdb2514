"""Shared fixtures: every database test runs on SQLite and, when DIEUPHOI_TEST_POSTGRES_URL is set, PostgreSQL."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from engine import directory, schema
from engine.clock import FixedClock
from engine.config import Settings
from engine.db import Database
from engine.models import Base
from engine.runtime import Engine
from workflows import WORKFLOWS_DIR

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PG_URL = os.environ.get("DIEUPHOI_TEST_POSTGRES_URL")
# Monday 30 November 2026, 09:00 in Hanoi.
T0 = datetime(2026, 11, 30, 2, 0, tzinfo=timezone.utc)

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """Migrate once, copy per test: proves the Alembic scripts and keeps tests fast."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    db = Database(f"sqlite:///{path}")
    schema.upgrade(db)
    db.dispose()
    return path


@pytest.fixture(scope="session")
def pg_schema_url():
    if not PG_URL:
        pytest.skip("DIEUPHOI_TEST_POSTGRES_URL chưa đặt / not set: PostgreSQL tests skipped")
    name = f"dp_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{name}"
    db = Database(url)
    schema.upgrade(db)
    db.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    admin.dispose()


def _truncate_pg(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path, sqlite_template) -> str:
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite3"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_schema_url")
    db = Database(url)
    _truncate_pg(db)
    db.dispose()
    return url


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return Settings(database_url=db_url, instance_dir=tmp_path, base_url="http://127.0.0.1:5000")


@pytest.fixture
def engine(settings, clock):
    eng = Engine(Database.from_settings(settings), settings, clock)
    yield eng
    eng.db.dispose()


@pytest.fixture
def orgs(engine) -> None:
    with engine.db.write() as session:
        directory.load_organisations(session, WORKFLOWS_DIR / "organisations.json")


class People:
    """Test users by short name; no password hashing unless asked (argon2 is slow on purpose)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.ids: dict[str, int] = {}

    def add(self, name: str, *positions: tuple[str, str], admin: bool = False, password: str | None = None) -> int:
        with self.engine.db.write() as session:
            user = directory.create_user(session, name, name.replace(".", " ").title(), email=f"{name}@dieuphoi.local",
                                         positions=list(positions), is_admin=admin, password=password, at=self.engine.now())
            self.ids[name] = user.id
        return self.ids[name]

    def __getitem__(self, name: str) -> int:
        return self.ids[name]


@pytest.fixture
def people(engine, orgs) -> People:
    p = People(engine)
    p.add("nn.cv", ("SO_NNPTNT", "staff"))
    p.add("nn.cv2", ("SO_NNPTNT", "staff"))
    p.add("nn.ld", ("SO_NNPTNT", "supervisor"))
    p.add("yt.cv", ("SO_YT", "staff"))
    p.add("yt.ld", ("SO_YT", "supervisor"))
    p.add("khcn.cv", ("SO_KHCN", "staff"))
    p.add("khcn.ld", ("SO_KHCN", "supervisor"))
    p.add("ubnd.ld", ("UBND_TINH", "leader"))
    p.add("admin", admin=True)
    return p
