"""inbox search in SQL: human_tasks.search_text, the folded text a search matches, backfilled

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 08:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

BATCH = 5000

tasks = sa.table('human_tasks', sa.column('id', sa.String), sa.column('instance_id', sa.Integer),
                 sa.column('process_key', sa.String), sa.column('title', sa.String),
                 sa.column('business', sa.JSON))
instances = sa.table('instances', sa.column('id', sa.Integer), sa.column('title', sa.String))
definitions = sa.table('definitions', sa.column('process_key', sa.String), sa.column('version', sa.Integer),
                       sa.column('descriptor', sa.JSON))


def upgrade() -> None:
    op.add_column('human_tasks', sa.Column('search_text', sa.Text(), nullable=True))
    backfill(op.get_bind())


def backfill(conn) -> int:
    """Every existing task's search text, as the write path now writes it (engine.projections.search_text),
    in batches of BATCH rows in primary-key order; returns the number of rows written."""
    from engine.projections import display_title, search_text

    templates = _latest_templates(conn)
    done, last = 0, ''
    while True:
        rows = conn.execute(
            sa.select(tasks.c.id, tasks.c.instance_id, tasks.c.process_key, tasks.c.title, tasks.c.business,
                      instances.c.title.label('case_title'))
            .select_from(tasks.outerjoin(instances, instances.c.id == tasks.c.instance_id))
            .where(tasks.c.id > last).order_by(tasks.c.id).limit(BATCH)).all()
        if not rows:
            return done
        texts = [(r.id, search_text(r.instance_id, r.title,
                                    display_title(r.case_title, templates.get(r.process_key), r.business),
                                    r.business)) for r in rows]
        if conn.dialect.name == 'postgresql':  # one statement per batch rather than a round trip per row
            conn.execute(sa.text('UPDATE human_tasks AS t SET search_text = v.s FROM '
                                 '(SELECT unnest(CAST(:ids AS text[])) AS id, unnest(CAST(:texts AS text[])) AS s) AS v '
                                 'WHERE t.id = v.id'),
                         {'ids': [i for i, _ in texts], 'texts': [t for _, t in texts]})
        else:
            conn.execute(sa.text('UPDATE human_tasks SET search_text = :s WHERE id = :id'),
                         [{'id': i, 's': t} for i, t in texts])
        done += len(rows)
        last = rows[-1].id


def _latest_templates(conn) -> dict:
    """{process key: title template of its latest version}: what the inbox renders case titles with."""
    latest = sa.select(definitions.c.process_key, sa.func.max(definitions.c.version).label('v')) \
        .group_by(definitions.c.process_key).subquery()
    rows = conn.execute(sa.select(definitions.c.process_key, definitions.c.descriptor).join(
        latest, sa.and_(latest.c.process_key == definitions.c.process_key, latest.c.v == definitions.c.version)))
    return {r.process_key: (r.descriptor or {}).get('title_template') or '' for r in rows}


def downgrade() -> None:
    with op.batch_alter_table('human_tasks', schema=None) as batch_op:
        batch_op.drop_column('search_text')
