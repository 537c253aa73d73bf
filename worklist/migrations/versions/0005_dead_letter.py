"""The outbox's dead letters: an email that failed permanently N times is no longer retried.

``permanent_failures`` counts the backend's permanent refusals of an email (a rejected address,
an email that cannot be built); ``dead_at`` is set when it reaches the limit
(``KAMFLOW_DEAD_LETTER_AFTER``), after which the drain leaves the row alone and ops have been
told once.

Revision ID: 0005
Revises: 0003 (re-chained after 0004, the outbox claims, when both are merged)
Create Date: 2026-12-01 13:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('outbox', sa.Column('permanent_failures', sa.Integer(), nullable=False,
                                      server_default='0'))
    op.add_column('outbox', sa.Column('dead_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:  # SQLite drops columns by copying the table
        batch.drop_column('dead_at')
        batch.drop_column('permanent_failures')
