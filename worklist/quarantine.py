"""The quarantine table: every input row validation rejected, per run, with why.

Kept beside the CSV under ``$KAMFLOW_HOME/quarantine/<run>/`` so that ops can query rejected rows
across runs (which accounts keep failing, which expectation) without collecting files. Written
only by ``QuarantineStore.record_quarantine`` (part of ``TaskStore``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import DateTime, Index, Integer, String, Text, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from kamflow.worklist.bulk import CHUNK
from kamflow.worklist.db import StoreBase
from kamflow.worklist.models import Base

__all__ = ["QuarantineStore", "QuarantinedRow"]


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


class QuarantineStore(StoreBase):
    def record_quarantine(self, run_id: str, frame: pd.DataFrame,
                          now: dt.datetime | None = None) -> int:
        """Keep a run's rejected rows (table, row, account, column, value, expectation, reason)
        in the ``quarantine`` table, in bulk; returns how many were written."""
        if frame.empty:
            return 0
        now = now or dt.datetime.now(dt.UTC)
        rows = [_quarantine_row(record, run_id, now) for record in frame.reindex(columns=[
            "table", "row", "account_id", "column", "value", "expectation", "reason"]).to_dict(
            "records")]
        with self.session() as session:
            for start in range(0, len(rows), CHUNK):
                session.execute(insert(QuarantinedRow), rows[start:start + CHUNK])
        return len(rows)

    def quarantine(self, run_id: str) -> list[QuarantinedRow]:
        with self.session() as session:
            return list(session.scalars(select(QuarantinedRow).where(
                QuarantinedRow.run_id == run_id).order_by(QuarantinedRow.id)))


def _quarantine_row(record: dict[str, Any], run_id: str, now: dt.datetime) -> dict[str, Any]:
    def text(value: Any, limit: int) -> str:
        text = "" if not isinstance(value, str) and pd.isna(value) else str(value)
        return text if len(text) <= limit else text[:limit - 1] + "…"  # an absurd field stays

    row = record["row"]
    return {"run_id": run_id, "recorded_at": now, "table_name": text(record["table"], 64),
            "row": None if pd.isna(row) else int(row),
            "account_id": text(record["account_id"], 64) or None,
            "column_name": text(record["column"], 200), "value": text(record["value"], 2000),
            "expectation": text(record["expectation"], 128),
            "reason": text(record["reason"], 2000)}
