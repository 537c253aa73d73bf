"""PostgreSQL: the outbox's email bodies compressed with lz4 instead of pglz.

A national first run stores 3 GB of email in the outbox; pglz spent ~5 s of the database
server's CPU compressing it (on the same 2 cores as the job), lz4 a fraction of that. Needs
PostgreSQL 14 or newer built with lz4 (the Debian and official builds are); anywhere else, and on
SQLite, nothing changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 07:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BODIES = ("body_text", "body_html")


def _lz4_available() -> bool:
    bind = op.get_bind()
    version = bind.dialect.server_version_info
    if bind.dialect.name != "postgresql" or version is None or version < (14,):
        return False
    values = bind.execute(sa.text(
        "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")).scalar()
    return values is not None and "lz4" in values


def upgrade() -> None:
    if _lz4_available():
        for column in BODIES:
            op.execute(f"ALTER TABLE outbox ALTER COLUMN {column} SET COMPRESSION lz4")


def downgrade() -> None:
    if _lz4_available():
        for column in BODIES:
            op.execute(f"ALTER TABLE outbox ALTER COLUMN {column} SET COMPRESSION pglz")
