"""Outcomes of closed tasks (issue 23): what happened, how long it took, what comes next.

Each history row (``task_events``) may carry an outcome code (conf/outcomes.yaml), the minutes
spent and the manager's note as fields, and an ``outcome_key`` (unique) by which a resubmitted
form or a re-imported CRM row records nothing more. Each task keeps its latest outcome and when,
the minutes spent over all attempts, the retry date of a customer not reached, and the task a
follow-up came from. Existing rows get NULLs: no outcome was recorded before this revision.

Revision ID: 0012_outcomes
Revises: 0011_holdout
Create Date: 2026-12-07 15:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012_outcomes'
down_revision: str | None = '0011_holdout'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('task_events', sa.Column('outcome', sa.String(length=32), nullable=True))
    op.add_column('task_events', sa.Column('minutes_spent', sa.Integer(), nullable=True))
    op.add_column('task_events', sa.Column('note', sa.Text(), nullable=True))
    op.add_column('task_events', sa.Column('outcome_key', sa.String(length=100), nullable=True))
    op.create_index('ux_task_events_outcome_key', 'task_events', ['outcome_key'], unique=True)
    op.add_column('tasks', sa.Column('outcome', sa.String(length=32), nullable=True))
    op.add_column('tasks', sa.Column('outcome_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tasks', sa.Column('minutes_spent', sa.Integer(), nullable=True))
    op.add_column('tasks', sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tasks', sa.Column('follow_up_of', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tasks') as batch:  # SQLite drops columns by copying
        for column in ('follow_up_of', 'retry_at', 'minutes_spent', 'outcome_at', 'outcome'):
            batch.drop_column(column)
    op.drop_index('ux_task_events_outcome_key', table_name='task_events')
    with op.batch_alter_table('task_events') as batch:
        for column in ('outcome_key', 'note', 'minutes_spent', 'outcome'):
            batch.drop_column(column)
