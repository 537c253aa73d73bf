"""Per-owner KPIs (DOMAIN.md) and the store's row counts, read from the task store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import case, func, inspect, select

from kamflow.worklist.db import StoreBase, utc
from kamflow.worklist.effects import EffectsConfig, MeasuredEffects, measure
from kamflow.worklist.housekeeping import with_archived_task_rows
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
        department's measures (worklist/measures.py); archived tasks included."""
        columns = ["account_id", "owner_email", "owner_name", "status", "created_at", "due_at",
                   "closed_at", "acknowledged_at"]
        acked = (select(TaskEvent.task_id, func.min(TaskEvent.at).label("at"))
                 .where(TaskEvent.event == "acknowledged").group_by(TaskEvent.task_id)
                 .subquery())
        with self.session() as session:
            rows = session.execute(
                select(Task.id, Task.account_id, Task.owner_email, Task.owner_name, Task.status,
                       Task.created_at, Task.due_at, Task.closed_at, acked.c.at)
                .outerjoin(acked, acked.c.task_id == Task.id)
                .where(Task.created_at >= utc(since))).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=["id", *columns])
        # and the tasks archived by housekeeping (worklist/housekeeping.py), each once
        frame = with_archived_task_rows(frame, getattr(self, "archive", None), since)
        frame = frame[columns]
        for column in ("created_at", "due_at", "closed_at", "acknowledged_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        frame["owner_email"] = frame["owner_email"].str.lower()
        return frame

    def decision_rows(self, since: dt.datetime,
                      until: dt.datetime | None = None) -> pd.DataFrame:
        """Every decision from ``since`` (to ``until``), tasks and held-out ones alike, for the
        effects report (worklist/effects.py): ``account_id``, ``action``, ``status``,
        ``rule_id`` (its reason) and ``created_at`` (its date, UTC), and where the tasks table
        has them ``value_class``, ``minutes`` (spent, over every attempt) and ``outcome``; a
        follow-up task raised by an outcome is no decision of its own. One query; plain driver
        tuples into one object array (5M rows: a DataFrame built from tuples costs 5 s more)."""
        columns = ["account_id", "action", "status", "rule_id", "created_at"]
        with self.session() as session:
            present = {c["name"] for c in inspect(session.connection()).get_columns("tasks")}
            extras = {name: stored for name, stored in DECISION_EXTRAS.items()
                      if stored in present}
            columns += list(extras)
            selected = [*columns[:5], *(f"{stored} AS {name}" if stored != name else name
                                        for name, stored in extras.items())]
            # a follow-up task (an outcome's "follow-up needed") continues its decision: not
            # another one
            own = " AND follow_up_of IS NULL" if "follow_up_of" in present else ""
            driver = session.connection().connection.driver_connection
            assert driver is not None
            cursor = driver.cursor()
            try:
                marker = "?" if self.engine.dialect.name == "sqlite" else "%s"
                bounds = [_stored_time(self.engine, since)]
                if until is not None:
                    bounds.append(_stored_time(self.engine, until))
                cursor.execute(f"SELECT {', '.join(selected)} FROM tasks WHERE created_at >= "
                               f"{marker}" + (f" AND created_at <= {marker}" if until else "")
                               + own, tuple(bounds))
                rows = cursor.fetchall()
            finally:
                cursor.close()
        values = np.array(rows, dtype=object).reshape(len(rows), len(columns))
        frame = pd.DataFrame({c: values[:, i] for i, c in enumerate(columns)})
        # one parse per distinct time (a run's tasks share theirs); SQLite gives text
        codes, stamps = pd.factorize(frame["created_at"])
        frame["created_at"] = pd.to_datetime(pd.Series(stamps, dtype=object), utc=True,
                                             format="mixed").take(codes).reset_index(drop=True)
        if "minutes" in frame:
            frame["minutes"] = pd.to_numeric(frame["minutes"], errors="coerce")
        return frame

    def decision_volume(self, since: dt.datetime) -> pd.DataFrame:
        """Per action and status, the decisions from ``since`` on and the first of them
        (``action``, ``status``, ``decisions``, ``first_at``) and the sum and count of their
        appraised net revenue kept (``worth_sum``, ``worth_n``): the effects report's volume
        and the holdout's cost, counted in the database."""
        worth = Task.expected_retained_cny_yearly
        with self.session() as session:
            rows = session.execute(
                select(Task.action, Task.status, func.count(), func.min(Task.created_at),
                       func.coalesce(func.sum(worth), 0.0), func.count(worth))
                .where(Task.created_at >= utc(since), Task.follow_up_of.is_(None))
                .group_by(Task.action, Task.status)).all()
        frame = pd.DataFrame([tuple(r) for r in rows],
                             columns=["action", "status", "decisions", "first_at", "worth_sum",
                                      "worth_n"]).astype({"worth_sum": "float64"})
        frame["first_at"] = pd.to_datetime(frame["first_at"], utc=True)
        return frame

    def measured_effects(self, config: EffectsConfig, since: dt.datetime | None = None,
                         now: dt.datetime | None = None) -> MeasuredEffects:
        """The effects report (worklist/effects.py) as the last snapshot (``now``: default the
        latest run's) shows it: the decisions from ``since`` (default a year before the
        horizon) whose horizon is over, joined to the roster and the revenue history, with
        every decision's volume."""
        now = now or self.last_snapshot_at() or dt.datetime.now(dt.UTC)
        start = since or now - dt.timedelta(days=config.horizon_days + EFFECTS_LOOKBACK_DAYS)
        matured = self.decision_rows(start, now - dt.timedelta(days=config.horizon_days))
        roster: Any = self  # TaskStore mixes the roster's reads (worklist/roster.py) in
        return measure(matured, roster.roster_rows(), roster.revenue_rows(), now, config,
                       self.decision_volume(start))

    def last_snapshot_at(self) -> dt.datetime | None:
        """When the latest run recorded its figures (its snapshot), or None before any."""
        with self.session() as session:
            at = session.scalar(select(func.max(RunFigures.at)))
        return None if at is None else utc(at)

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


EFFECTS_LOOKBACK_DAYS = 365  # the effects report pools a year of decisions, plus the horizon

# Optional columns of the tasks table the effects report reads when present, by the name the
# report gives them: the decision's value class, the minutes recorded over every attempt
# (migration 0012_outcomes: ``minutes_spent``), the outcome last recorded.
DECISION_EXTRAS = {"value_class": "value_class", "minutes": "minutes_spent",
                   "outcome": "outcome"}


def _stored_time(engine: Any, when: dt.datetime) -> Any:
    """``when`` as the driver compares it with a stored time: SQLite keeps SQLAlchemy's text
    form (``2026-12-07 13:00:00.000000``), PostgreSQL a timestamptz."""
    when = utc(when)
    if engine.dialect.name == "sqlite":
        return when.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return when
