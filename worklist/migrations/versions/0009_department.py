"""The department's partial churn and value at risk, and the weekly report's charts.

The roster keeps each account's value at risk (CNY a month) as last seen; ``account_revenue``
keeps each account's monthly revenue whenever it changed, so a period's partial churn compares
retained accounts' revenue with their revenue at its start (worklist/measures.py); each run's
figures keep its partial churn and value at risk; the outbox keeps an email's inline images
(the weekly report's charts). Accounts already on the roster get one revenue row, their revenue
as last seen, from when they were first seen.

Revision ID: 0009_department
Revises: 0008_capacity
Create Date: 2026-12-01 15:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009_department'
down_revision: str | None = '0008_capacity'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('accounts', sa.Column('value_at_risk', sa.Float(), nullable=True))
    op.add_column('run_figures', sa.Column('partial_churn_rate_12m', sa.Float(), nullable=True))
    op.add_column('run_figures', sa.Column('value_at_risk', sa.Float(), nullable=True))
    op.add_column('outbox', sa.Column('inline_images', sa.Text(), nullable=True))
    op.create_table('account_revenue',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('monthly_revenue', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_account_revenue_account_at', 'account_revenue', ['account_id', 'at'],
                    unique=False)
    op.execute("INSERT INTO account_revenue (account_id, at, monthly_revenue) "
               "SELECT account_id, first_seen, monthly_revenue FROM accounts "
               "WHERE monthly_revenue IS NOT NULL")


def downgrade() -> None:
    op.drop_index('ix_account_revenue_account_at', table_name='account_revenue')
    op.drop_table('account_revenue')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('inline_images')
    with op.batch_alter_table('run_figures') as batch:  # SQLite drops columns by copying
        batch.drop_column('value_at_risk')
        batch.drop_column('partial_churn_rate_12m')
    with op.batch_alter_table('accounts') as batch:
        batch.drop_column('value_at_risk')
