"""The Alembic scripts build exactly the tables the models declare, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine.db import Database
from engine.models import Base


def _ignorable(diff) -> bool:
    # Column type spellings differ harmlessly (UTCDateTime decorates DateTime).
    return diff[0][0] == "modify_type" if isinstance(diff, list) else False


def test_migrated_schema_matches_models(db_url):
    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": False})
            diffs = [d for d in compare_metadata(ctx, Base.metadata) if not _ignorable(d)]
    finally:
        db.dispose()
    assert diffs == [], f"models and migrations disagree: {diffs}"
