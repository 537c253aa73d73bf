"""The account roster keeps each account's monthly revenue, region, industry and value class as
last seen, so churn can be measured in revenue and broken down (worklist/measures.py); each
run's headline figures are kept in ``run_figures`` for their trend.

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-01 13:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("monthly_revenue", sa.Float()), ("region", sa.String(length=100)),
           ("industry", sa.String(length=50)), ("value_class", sa.String(length=20)))


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column('accounts', sa.Column(name, type_, nullable=True))
    op.create_table('run_figures',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('accounts', sa.Integer(), nullable=False),
    sa.Column('accounts_lost', sa.Integer(), nullable=False),
    sa.Column('churn_rate_12m', sa.Float(), nullable=False),
    sa.Column('churn_ceiling_12m', sa.Float(), nullable=False),
    sa.Column('revenue_churn_rate_12m', sa.Float(), nullable=False),
    sa.Column('revenue_lost_12m', sa.Float(), nullable=False),
    sa.Column('top_value_share', sa.Float(), nullable=False),
    sa.Column('tasks_created', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('run_id')
    )
    op.create_index(op.f('ix_run_figures_at'), 'run_figures', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_run_figures_at'), table_name='run_figures')
    op.drop_table('run_figures')
    with op.batch_alter_table('accounts') as batch:  # SQLite drops columns by copying
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
