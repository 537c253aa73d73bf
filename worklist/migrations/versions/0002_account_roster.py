"""The account roster: every key account seen in a snapshot, and when it was lost.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 08:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('manager_email', sa.String(length=320), nullable=False),
    sa.Column('manager_name', sa.String(length=200), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lost_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('account_id'),
    sqlite_with_rowid=False
    )


def downgrade() -> None:
    op.drop_table('accounts')
