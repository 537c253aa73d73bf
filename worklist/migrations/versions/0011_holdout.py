"""The randomised holdout: held-out decisions are task rows with status ``held_out``.

Every task of an action under experiment records its experiment period (``2026Q4``), raised or
held out; a held-out row also carries ``holdout_key`` (account|action|period), unique, so an
account is held out of an action once per period however often its rule fires or a run is
repeated. Existing tasks have neither (they were decided before any experiment).

Revision ID: 0011_holdout
Revises: 0009_department
Create Date: 2026-12-07 15:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011_holdout'
down_revision: str | None = '0014_worth'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('experiment_period', sa.String(length=16), nullable=True))
    op.add_column('tasks', sa.Column('holdout_key', sa.String(length=220), nullable=True))
    op.create_index('ix_tasks_holdout_key', 'tasks', ['holdout_key'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_tasks_holdout_key', table_name='tasks')
    with op.batch_alter_table('tasks') as batch:  # SQLite drops columns by copying
        batch.drop_column('holdout_key')
        batch.drop_column('experiment_period')
