"""One read connection per request: the sign-in loader, the view and the navigation bar share it.

Each `Database.read()` checks a connection out of the pool and opens and closes a transaction
(on PostgreSQL every checkout then also pinged the server): three of them made a page pay six
round trips before its first query. Here a request checks out one connection, lazily, and gives
it back at teardown.

On PostgreSQL the request's reads run in autocommit (`Database.request_reader`): each statement
sees what was committed before it ran, this request's own writes (made on another connection by
`Database.write()`) included, exactly as in a READ COMMITTED transaction, without the BEGIN and
ROLLBACK round trips. On SQLite a transaction keeps the snapshot of its first read, so
each `read()` block ends its own and the next one sees the latest writes; there a transaction
costs no round trip. Either way every block leaves the session's identity map empty, so an object
read before a write is read again after it, never served stale from memory, as with separate
`Database.read()` sessions.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from flask import Flask, current_app, g
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

_KEY = "dieuphoi_read_session"


@contextmanager
def read() -> Iterator[Session]:
    """The request's read session, opened on first use and closed when the request ends. Blocks may
    nest (the sign-in loader often runs inside a view's): the outermost one ends the block."""
    db = current_app.extensions["dieuphoi"].db
    session = g.get(_KEY)
    if session is None:
        session = Session(db.request_reader, expire_on_commit=False)
        setattr(g, _KEY, session)
        session.info["depth"] = 0
    session.info["depth"] += 1
    try:
        yield session
    except SQLAlchemyError:
        session.rollback()  # a failed statement must not poison the next block's transaction
        raise
    finally:
        session.info["depth"] -= 1
        if not session.info["depth"]:
            session.expunge_all()
            if db.is_sqlite:
                session.commit()


def close(_exc: BaseException | None = None) -> None:
    session = g.pop(_KEY, None)
    if session is not None:
        session.close()  # ends the transaction (nothing was written) and returns the connection


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close)
