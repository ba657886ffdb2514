"""inbox indexes: a unit's queue, tasks by candidate, by who finished them, open tasks oldest first

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 05:00:00
"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

INDEXES = (
    # A unit's queue: equality on the first five, then everything the inbox sorts, counts and
    # filters on, so the count and the page's order never read the table.
    ('ix_tasks_queue', ['org_code', 'role', 'state', 'assignee_id', 'candidate_user_id', 'due_at', 'created_at',
                        'id', 'process_key']),
    ('ix_tasks_candidate_state', ['candidate_user_id', 'state']),
    # What someone finished (or finished acting for someone), newest first, covering the "done" tab.
    ('ix_tasks_completed_by', ['completed_by', 'created_at', 'state', 'id']),
    ('ix_tasks_acting_for', ['acting_for', 'created_at', 'state', 'id']),
    # Every open task oldest first (scope=all lists of administrators and supervisors).
    ('ix_tasks_state_created', ['state', 'created_at']),
)


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(name, 'human_tasks', columns, unique=False)


def downgrade() -> None:
    for name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name='human_tasks')
