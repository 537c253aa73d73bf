"""The quarantine table: every input row validation rejected, per run, with why.

Kept beside the CSV under ``$KAMFLOW_HOME/quarantine/<run>/`` so that ops can query rejected rows
across runs (which accounts keep failing, which expectation) without collecting files. Written
only by ``TaskStore.record_quarantine``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kamflow.worklist.models import Base


class QuarantinedRow(Base):
    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    table_name: Mapped[str] = mapped_column(String(64))  # accounts, billing, customer_view, ...
    row: Mapped[int | None] = mapped_column(Integer, nullable=True)  # line in the file
    account_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    column_name: Mapped[str] = mapped_column(String(200), default="")
    value: Mapped[str] = mapped_column(Text, default="")
    expectation: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")


Index("ix_quarantine_expectation", QuarantinedRow.run_id, QuarantinedRow.expectation)
