"""PostgreSQL connections: an idle pooled connection is checked before use, a busy one is not;
a web request's reads run without BEGIN/ROLLBACK (autocommit) and still see committed writes."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from engine import db as dbmod
from engine.db import Database

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(pg_schema_url):
    database = Database(pg_schema_url)
    admin = create_engine(pg_schema_url, isolation_level="AUTOCOMMIT")
    yield database, admin
    database.dispose()
    admin.dispose()


def _backend(database: Database) -> int:
    with database.engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar()


def _terminate(admin, pid: int) -> None:
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()


def test_an_idle_connection_that_died_is_replaced_before_use(pg, monkeypatch):
    database, admin = pg
    monkeypatch.setattr(dbmod, "PING_IF_IDLE_SECONDS", 0.0)  # every returned connection counts as idle
    first = _backend(database)
    _terminate(admin, first)  # the server went away while the connection sat in the pool
    assert _backend(database) != first  # no error: the checkout's ping found it dead and reconnected


def test_a_connection_used_a_moment_ago_is_not_pinged(pg, monkeypatch):
    """The price of no ping per request: a database restart under load fails the one statement that
    meets a dead connection (a 503 for its request); SQLAlchemy then drops the whole pool."""
    database, admin = pg
    monkeypatch.setattr(dbmod, "PING_IF_IDLE_SECONDS", 3600.0)
    pings = []
    monkeypatch.setattr(database.engine.dialect, "do_ping", lambda conn: pings.append(conn) or True)
    first = _backend(database)
    _terminate(admin, first)
    with pytest.raises(OperationalError):
        _backend(database)
    assert pings == []
    assert _backend(database) != first  # the pool was invalidated: a fresh connection


def test_request_reads_run_in_autocommit_and_see_each_commit(pg):
    database, _admin = pg
    with database.request_reader.connect() as reader:
        assert reader.execute(text("SELECT count(*) FROM organisations WHERE code = 'POOL_T'")).scalar() == 0
        with database.write() as session:
            session.execute(text("INSERT INTO organisations (code, name_vi, name_en, kind, active) "
                                 "VALUES ('POOL_T', 'Thử', 'Test', 'department', true)"))
        # Same connection, no transaction held open: the next statement sees the commit.
        assert reader.execute(text("SELECT count(*) FROM organisations WHERE code = 'POOL_T'")).scalar() == 1
        assert reader.execute(text("SELECT now() = statement_timestamp()")).scalar() is True
    with database.write() as session:
        session.execute(text("DELETE FROM organisations WHERE code = 'POOL_T'"))
