"""Capacity per owner (issue 12): tasks keep their value at risk and when they became open.

``value_at_risk`` (CNY a month, nullable) is the account's monthly revenue x churn probability
when the task was decided; ``released_at`` is when the task became open (raised open, or
released from the queue), by which an owner's new tasks of a day are counted. Tasks raised
before this revision were open from their creation: their ``released_at`` is their
``created_at``. The statuses ``queued`` and ``withdrawn`` need no schema change (``status`` is
a plain string column).

Revision ID: 0008_capacity
Revises: 0007
Create Date: 2026-12-01 15:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008_capacity'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('value_at_risk', sa.Float(), nullable=True))
    op.add_column('tasks', sa.Column('released_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE tasks SET released_at = created_at")
    # the day's released tasks per owner, and the backlog, are read by every dispatch
    op.create_index('ix_tasks_owner_status', 'tasks', ['owner_email', 'status'], unique=False)
    op.create_index('ix_tasks_released_at', 'tasks', ['released_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tasks_released_at', table_name='tasks')
    op.drop_index('ix_tasks_owner_status', table_name='tasks')
    with op.batch_alter_table('tasks') as batch:  # SQLite drops columns by copying
        batch.drop_column('released_at')
        batch.drop_column('value_at_risk')
