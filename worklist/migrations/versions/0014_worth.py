"""What a task is worth: its effort in hours, the revenue it is expected to keep (CNY a year,
net of its cost), where that effect came from and whether it is must-do work
(worklist/worth.py). Tasks raised before have none (NULL): they count no hours against their
owner's day.

Revision ID: 0014_worth
Revises: 0009_department
Create Date: 2026-12-07 14:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014_worth'
down_revision: str | None = '0009_department'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('tasks') as batch:
        batch.add_column(sa.Column('effort_hours', sa.Float(), nullable=True))
        batch.add_column(sa.Column('expected_retained_cny_yearly', sa.Float(), nullable=True))
        batch.add_column(sa.Column('effect_source', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('must_do', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tasks') as batch:
        batch.drop_column('must_do')
        batch.drop_column('effect_source')
        batch.drop_column('expected_retained_cny_yearly')
        batch.drop_column('effort_hours')
