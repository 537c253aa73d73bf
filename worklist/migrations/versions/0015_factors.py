"""A task's churn factors as data (issue 25): ``tasks.factors``, JSON (kamflow.core.factors).

Emails word a task's factors from it in their reader's language; the text ``reason`` stays what
``kamflow tasks show`` prints. Existing tasks are converted from their reason's text where it
reads (``factors.from_reason``: the words scoring wrote before this revision); a task whose
reason names no factor it can read keeps NULL, and its emails read the reason as before.
Downgrading drops the column: the reasons still hold every factor as text.

Revision ID: 0015_factors
Revises: 0012_outcomes
Create Date: 2026-12-08 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from kamflow.core.factors import FACTORS_MARK, dumps, from_reason

revision: str = '0015_factors'
down_revision: str | None = '0012_outcomes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 10_000  # rows converted per UPDATE round trip


def upgrade() -> None:
    op.add_column('tasks', sa.Column('factors', sa.Text(), nullable=True))
    tasks = sa.table('tasks', sa.column('id', sa.Integer()), sa.column('reason', sa.Text()),
                     sa.column('factors', sa.Text()))
    connection = op.get_bind()
    update = sa.update(tasks).where(tasks.c.id == sa.bindparam('target')).values(
        factors=sa.bindparam('data'))
    # Read in id order, a batch at a time: a national store holds millions of tasks.
    last = 0
    while True:
        rows = connection.execute(
            sa.select(tasks.c.id, tasks.c.reason).where(
                tasks.c.id > last, tasks.c.reason.contains(FACTORS_MARK, autoescape=True))
            .order_by(tasks.c.id).limit(BATCH)).all()
        if not rows:
            break
        last = rows[-1][0]
        converted = []
        for task_id, reason in rows:
            found = from_reason(reason)
            if found:
                converted.append({'target': task_id, 'data': dumps(found)})
        if converted:
            connection.execute(update, converted)


def downgrade() -> None:
    with op.batch_alter_table('tasks') as batch:  # SQLite drops columns by copying
        batch.drop_column('factors')
