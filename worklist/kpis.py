"""Per-owner KPIs (DOMAIN.md) and the store's row counts, read from the task store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import case, func, select

from kamflow.worklist.db import StoreBase, utc
from kamflow.worklist.models import (
    HELD_OUT,
    OPEN_STATUSES,
    QUEUED,
    AccountRecord,
    OutboxEmail,
    RunFigures,
    Task,
    TaskEvent,
)

__all__ = ["LOST_KPI_DAYS", "KpiStore"]

LOST_KPI_DAYS = 365  # the managers' churn KPI counts accounts lost in the past year


class KpiStore(StoreBase):
    def owner_kpis(self, now: dt.datetime) -> list[dict[str, Any]]:
        """Per owner: open, queued (the backlog waiting for their capacity), overdue, handled
        on time and late, and accounts lost in the past
        year (DOMAIN.md's per-manager KPIs; the loss is counted for the account's last
        manager)."""
        overdue = case((Task.status.in_(OPEN_STATUSES) & (Task.due_at < now), 1), else_=0)
        open_ = case((Task.status.in_(OPEN_STATUSES), 1), else_=0)
        queued = case((Task.status == QUEUED, 1), else_=0)  # backlog: waiting for capacity
        on_time = case((Task.closed_at.is_not(None) & (Task.status == "done")
                        & (Task.closed_at <= Task.due_at), 1), else_=0)
        late = case((Task.closed_at.is_not(None) & (Task.status == "done")
                     & (Task.closed_at > Task.due_at), 1), else_=0)
        with self.session() as session:
            rows = session.execute(
                select(Task.owner_email, Task.owner_name, func.sum(open_), func.sum(queued),
                       func.sum(overdue),
                       func.sum(on_time), func.sum(late), func.count(func.distinct(
                           Task.account_id)))
                .where(Task.status != HELD_OUT)  # the control group is nobody's work
                .group_by(Task.owner_email, Task.owner_name).order_by(Task.owner_email))
            kpis = [{"owner": name, "email": email, "open": int(o or 0),
                     "queued": int(q or 0), "overdue": int(d or 0), "done on time": int(t or 0),
                     "done late": int(late_n or 0), "accounts with tasks": int(a or 0),
                     "accounts lost": 0}
                    for email, name, o, q, d, t, late_n, a in rows]
            # Churn of each manager's own accounts (DOMAIN.md): lost in the past year.
            lost = session.execute(
                select(AccountRecord.manager_email, func.max(AccountRecord.manager_name),
                       func.count())
                .where(AccountRecord.lost_at >= now - dt.timedelta(days=LOST_KPI_DAYS))
                .group_by(AccountRecord.manager_email))
        by_email = {k["email"].lower(): k for k in kpis}
        for email, name, count in lost:
            row = by_email.get(email)
            if row is None:
                row = by_email[email] = {"owner": name, "email": email, "open": 0,
                                         "queued": 0,
                                         "overdue": 0,
                                         "done on time": 0, "done late": 0,
                                         "accounts with tasks": 0, "accounts lost": 0}
                kpis.append(row)
            row["accounts lost"] += int(count)
        return sorted(kpis, key=lambda k: k["email"])

    def task_rows(self, since: dt.datetime) -> pd.DataFrame:
        """Every task raised from ``since`` on: ``account_id``, ``owner_email``,
        ``owner_name``, ``status``, ``created_at``, ``due_at``, ``closed_at`` and
        ``acknowledged_at`` (the first "acknowledged" event of its history; UTC), for the
        department's measures (worklist/measures.py)."""
        columns = ["account_id", "owner_email", "owner_name", "status", "created_at", "due_at",
                   "closed_at", "acknowledged_at"]
        acked = (select(TaskEvent.task_id, func.min(TaskEvent.at).label("at"))
                 .where(TaskEvent.event == "acknowledged").group_by(TaskEvent.task_id)
                 .subquery())
        with self.session() as session:
            rows = session.execute(
                select(Task.account_id, Task.owner_email, Task.owner_name, Task.status,
                       Task.created_at, Task.due_at, Task.closed_at, acked.c.at)
                .outerjoin(acked, acked.c.task_id == Task.id)
                .where(Task.created_at >= utc(since))).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
        for column in ("created_at", "due_at", "closed_at", "acknowledged_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        frame["owner_email"] = frame["owner_email"].str.lower()
        return frame

    def record_run_figures(self, run_id: str, at: dt.datetime,
                           figures: Mapping[str, Any]) -> None:
        """Keep a run's headline figures (the columns of ``run_figures``; a run recorded
        again, e.g. retried, replaces its row)."""
        with self.session() as session:
            session.merge(RunFigures(run_id=run_id, at=utc(at), **figures))

    def run_figures(self, limit: int = 90) -> list[dict[str, Any]]:
        """The last ``limit`` runs' headline figures, oldest first."""
        columns = [c.name for c in RunFigures.__table__.columns]
        with self.session() as session:
            rows = session.execute(select(*(getattr(RunFigures, c) for c in columns))
                                   .order_by(RunFigures.at.desc()).limit(limit)).all()
        return [dict(zip(columns, row, strict=True)) for row in reversed(rows)]

    def counts(self) -> dict[str, int]:
        with self.session() as session:
            tasks = session.scalar(select(func.count()).select_from(Task)) or 0
            emails = session.scalar(select(func.count()).select_from(OutboxEmail)) or 0
            unsent = session.scalar(select(func.count()).select_from(OutboxEmail).where(
                OutboxEmail.sent_at.is_(None))) or 0
        return {"tasks": tasks, "emails": emails, "unsent_emails": unsent}
