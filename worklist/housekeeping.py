"""Housekeeping of the task store (issue 28): the retention policy's database part.

``HousekeepingStore`` (part of ``TaskStore``) archives closed tasks with their history to
Parquet (worklist/archive.py) and deletes them, clears the bodies of emails sent long ago
(the outbox row stays: who, when, which tasks, the provider's message id), compacts the revenue
history and deletes old quarantined rows. Each step works in batches, one transaction per
batch, and can be killed at any point: what is left is done by the next run, nothing is lost
(an archive file is durable before its rows are deleted). A dry run counts and changes
nothing. ``restore_month`` puts an archived month back.

The reads that must see archived tasks (the department report, the effects report) go through
``all_tasks`` / ``task_rows`` (worklist/kpis.py), which union the archive with the live rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import and_, delete, exists, func, insert, not_, or_, select, text, update
from sqlalchemy.orm import aliased

from kamflow.worklist.archive import TaskArchive, check_month
from kamflow.worklist.db import StoreBase, utc
from kamflow.worklist.faults import crash_point
from kamflow.worklist.models import WITHDRAWN, AccountRevenue, OutboxEmail, Task, TaskEvent
from kamflow.worklist.quarantine import QuarantinedRow

__all__ = ["CLOSED_STATUSES", "HousekeepingPolicy", "HousekeepingStore", "StoreCleanup",
           "default_archive", "with_archived_task_rows"]

CLOSED_STATUSES = ("done", "cancelled", WITHDRAWN)
_TASK_COLUMNS = [c.name for c in Task.__table__.columns]
_EVENT_COLUMNS = [c.name for c in TaskEvent.__table__.columns]
_RESTORED = "restored.json"  # months put back by `--restore`: not archived again


@dataclass(frozen=True)
class HousekeepingPolicy:
    """What is kept and how long (conf/housekeeping.yaml, docs/configuration.md)."""

    reports_days: float = 90
    email_bodies_days: float = 30
    closed_tasks_days: float = 400
    revenue_history_days: float = 400
    archive: Path = Path("archive")
    batch: int = 5000
    warn_within_days: float = 30
    min_free_bytes: int = 1024 ** 3


@dataclass
class StoreCleanup:
    """What one housekeeping pass did to the store (or, dry, would do): rows and bytes."""

    tasks_archived: int = 0
    events_archived: int = 0
    months: list[str] = field(default_factory=list)
    email_bodies_cleared: int = 0
    email_body_bytes: int = 0
    revenue_rows_compacted: int = 0
    quarantine_rows_deleted: int = 0
    archive_files: list[str] = field(default_factory=list)

    def nothing(self) -> bool:
        return not (self.tasks_archived or self.email_bodies_cleared
                    or self.revenue_rows_compacted or self.quarantine_rows_deleted)


def default_archive(url: str) -> Path | None:
    """The archive beside a SQLite file store (``$KAMFLOW_HOME/archive``); None elsewhere
    (a PostgreSQL store is given its archive by conf/housekeeping.yaml)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url[len(prefix):] not in ("", ":memory:"):
        return Path(url[len(prefix):]).parent / "archive"
    return None


class HousekeepingStore(StoreBase):
    archive: TaskArchive | None = None

    # -- the archive ----------------------------------------------------------------------
    def archive_closed_tasks(self, before: dt.datetime, batch: int, dry_run: bool = False,
                             cleanup: StoreCleanup | None = None) -> StoreCleanup:
        """Move the tasks closed before ``before`` (and their history) to the archive, one
        batch of ``batch`` tasks per transaction; months restored by ``restore_month`` stay."""
        cleanup = cleanup or StoreCleanup()
        archive = self._archive()
        where = self._archivable(utc(before), archive)
        if dry_run:
            with self.session() as session:
                cleanup.tasks_archived += session.scalar(
                    select(func.count()).select_from(Task).where(where)) or 0
                cleanup.events_archived += session.scalar(
                    select(func.count()).select_from(TaskEvent).join(
                        Task, Task.id == TaskEvent.task_id).where(where)) or 0
                months = session.scalars(select(Task.closed_at).where(where)).all()
            cleanup.months = sorted({_month(m) for m in months} | set(cleanup.months))
            return cleanup
        while True:
            with self.session() as session:
                tasks = _frame(session.execute(select(Task.__table__).where(where)
                                               .order_by(Task.id).limit(batch)), _TASK_COLUMNS)
                if tasks.empty:
                    return cleanup
                ids = [int(i) for i in tasks["id"]]
                events = _frame(session.execute(select(TaskEvent.__table__).where(
                    TaskEvent.task_id.in_(ids)).order_by(TaskEvent.id)), _EVENT_COLUMNS)
            month_of = dict(zip(tasks["id"], tasks["closed_at"].map(_month), strict=True))
            for month, part in tasks.groupby(tasks["closed_at"].map(_month)):
                first, last = int(part["id"].min()), int(part["id"].max())
                cleanup.archive_files.append(str(archive.write("tasks", month, part, first,
                                                               last)))
                archive.write("task_events", month,
                              events[events["task_id"].map(month_of) == month], first, last)
                if month not in cleanup.months:
                    cleanup.months.append(month)
            crash_point("housekeeping.archived")
            with self.write_session() as session:  # durable in the archive: now delete
                session.execute(delete(TaskEvent).where(TaskEvent.task_id.in_(ids)))
                session.execute(delete(Task).where(Task.id.in_(ids)))
            crash_point("housekeeping.deleted")
            cleanup.tasks_archived += len(ids)
            cleanup.events_archived += len(events)

    def restore_month(self, month: str) -> int:
        """Put the tasks archived for ``month`` (YYYY-MM, of closing) back in the store with
        their history, and keep the month out of later archiving; returns the tasks restored.
        Safe to run again after a kill: rows already back are skipped."""
        archive = self._archive()
        check_month(month)
        tasks = archive.read("tasks", [month])
        events = archive.read("task_events", [month])
        restored = _restored(archive)
        if month not in restored:  # first: a kill after the insert must not re-archive it
            _write_restored(archive, sorted({*restored, month}))
        count = 0
        with self.write_session() as session:
            if not tasks.empty:
                have = set(session.scalars(select(Task.id).where(
                    Task.id.in_([int(i) for i in tasks["id"]]))))
                rows = [r for r in _records(tasks) if r["id"] not in have]
                if rows:
                    session.execute(insert(Task), rows)
                count = len(rows)
            if not events.empty:
                have = set(session.scalars(select(TaskEvent.id).where(
                    TaskEvent.id.in_([int(i) for i in events["id"]]))))
                rows = [r for r in _records(events) if r["id"] not in have]
                if rows:
                    session.execute(insert(TaskEvent), rows)
        archive.remove_month(month)
        return count

    def all_tasks(self, since: dt.datetime | None = None) -> pd.DataFrame:
        """Every task raised from ``since`` on (default: all), live and archived, one row per
        task with every column of ``tasks`` (UTC datetimes): the read for reports over long
        periods (the department and effects reports)."""
        query = select(Task.__table__)
        if since is not None:
            query = query.where(Task.created_at >= utc(since))
        with self.session() as session:
            live = _frame(session.execute(query), _TASK_COLUMNS)
        return _union(live, self._archived("tasks", since, "created_at"))

    def all_task_events(self, task_ids: list[int] | None = None) -> pd.DataFrame:
        """The history (``task_events``) of the tasks ``task_ids`` (default: all), live and
        archived."""
        query = select(TaskEvent.__table__)
        if task_ids is not None:
            query = query.where(TaskEvent.task_id.in_(task_ids))
        with self.session() as session:
            live = _frame(session.execute(query), _EVENT_COLUMNS)
        archived = self._archived("task_events", None, None)
        if task_ids is not None and not archived.empty:
            archived = archived[archived["task_id"].isin(task_ids)]
        return _union(live, archived)

    def _archived(self, table: str, since: dt.datetime | None, column: str | None
                  ) -> pd.DataFrame:
        if self.archive is None:
            return pd.DataFrame()
        frame = self.archive.read(table)
        if frame.empty:
            return frame
        for name in frame.columns:
            if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
                frame[name] = frame[name].dt.tz_convert("UTC")
        if since is not None and column is not None:
            frame = frame[frame[column] >= pd.Timestamp(utc(since))]
        return frame

    def _archive(self) -> TaskArchive:
        if self.archive is None:
            raise ValueError("this task store has no archive folder (TaskStore(url, archive=))")
        return self.archive

    def _archivable(self, before: dt.datetime, archive: TaskArchive) -> Any:
        # never the newest task: SQLite would give its id to the next task raised
        newest = select(func.max(Task.id)).scalar_subquery()
        where = and_(Task.status.in_(CLOSED_STATUSES), Task.closed_at < before,
                     Task.id < newest)
        for month in _restored(archive):
            start = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.UTC)
            end = (start + dt.timedelta(days=32)).replace(day=1)
            where = and_(where, not_(and_(Task.closed_at >= start, Task.closed_at < end)))
        return where

    # -- email bodies, revenue history, quarantine ----------------------------------------
    def clear_email_bodies(self, sent_before: dt.datetime, batch: int, dry_run: bool = False,
                           cleanup: StoreCleanup | None = None) -> StoreCleanup:
        """Empty the text, HTML and pictures of the emails sent before ``sent_before``; the
        row (recipient, subject, when, which tasks, message id) stays."""
        cleanup = cleanup or StoreCleanup()
        where = and_(OutboxEmail.sent_at.is_not(None), OutboxEmail.sent_at < utc(sent_before),
                     or_(OutboxEmail.body_text != "", OutboxEmail.body_html != "",
                         OutboxEmail.inline_images.is_not(None)))
        size = (func.length(OutboxEmail.body_text) + func.length(OutboxEmail.body_html)
                + func.coalesce(func.length(OutboxEmail.inline_images), 0))
        while True:
            with self.session() as session:
                if dry_run:
                    count, total = session.execute(
                        select(func.count(), func.coalesce(func.sum(size), 0)).where(where)).one()
                    cleanup.email_bodies_cleared += int(count)
                    cleanup.email_body_bytes += int(total)
                    return cleanup
                found = session.execute(select(OutboxEmail.id, size).where(where)
                                        .order_by(OutboxEmail.id).limit(batch)).all()
            if not found:
                return cleanup
            with self.write_session() as session:
                session.execute(update(OutboxEmail).where(
                    OutboxEmail.id.in_([i for i, _ in found])).values(
                    body_text="", body_html="", inline_images=None))
            cleanup.email_bodies_cleared += len(found)
            cleanup.email_body_bytes += sum(int(n or 0) for _, n in found)

    def compact_revenue_history(self, before: dt.datetime, dry_run: bool = False,
                                cleanup: StoreCleanup | None = None) -> StoreCleanup:
        """Keep of each account's revenue rows before ``before`` only the last: its revenue as
        of then, the only one a period starting after ``before`` reads."""
        cleanup = cleanup or StoreCleanup()
        newer = aliased(AccountRevenue)
        cut = utc(before)
        superseded = and_(AccountRevenue.at < cut, exists(select(newer.id).where(
            newer.account_id == AccountRevenue.account_id, newer.at < cut,
            or_(newer.at > AccountRevenue.at,
                and_(newer.at == AccountRevenue.at, newer.id > AccountRevenue.id)))))
        with self.session() as session:
            if dry_run:
                cleanup.revenue_rows_compacted += session.scalar(
                    select(func.count()).select_from(AccountRevenue).where(superseded)) or 0
                return cleanup
        with self.write_session() as session:
            cleanup.revenue_rows_compacted += session.execute(
                delete(AccountRevenue).where(superseded)).rowcount or 0  # type: ignore[attr-defined]
        return cleanup

    def delete_quarantine(self, before: dt.datetime, dry_run: bool = False,
                          cleanup: StoreCleanup | None = None) -> StoreCleanup:
        """Delete the quarantined rows recorded before ``before``."""
        cleanup = cleanup or StoreCleanup()
        where = QuarantinedRow.recorded_at < utc(before)
        with self.session() as session:
            if dry_run:
                cleanup.quarantine_rows_deleted += session.scalar(
                    select(func.count()).select_from(QuarantinedRow).where(where)) or 0
                return cleanup
        with self.write_session() as session:
            cleanup.quarantine_rows_deleted += session.execute(
                delete(QuarantinedRow).where(where)).rowcount or 0  # type: ignore[attr-defined]
        return cleanup

    # -- size -----------------------------------------------------------------------------
    def store_bytes(self) -> int:
        """The store's size on disk: the SQLite file with its WAL, or the PostgreSQL
        database's."""
        if self.engine.dialect.name == "sqlite":
            name = self.engine.url.database
            if not name or name == ":memory:":
                return 0
            return sum(os.path.getsize(p) for p in (name, f"{name}-wal", f"{name}-shm")
                       if os.path.exists(p))
        with self.session() as session:
            return int(session.scalar(text("SELECT pg_database_size(current_database())")) or 0)


def with_archived_task_rows(live: pd.DataFrame, archive: TaskArchive | None,
                            since: dt.datetime) -> pd.DataFrame:
    """``live`` (KpiStore.task_rows' columns with ``id``) with the archived tasks raised from
    ``since`` on that are not live, their ``acknowledged_at`` from the archived history."""
    if archive is None or not archive.months():
        return live
    tasks = archive.read("tasks")
    tasks = tasks[(pd.to_datetime(tasks["created_at"], utc=True) >= pd.Timestamp(utc(since)))
                  & ~tasks["id"].isin(live["id"])]
    if tasks.empty:
        return live
    events = archive.read("task_events")
    acked = (events[events["event"] == "acknowledged"].groupby("task_id")["at"].min()
             if not events.empty else pd.Series(dtype="datetime64[ns, UTC]"))
    rows = tasks.assign(acknowledged_at=tasks["id"].map(acked))
    for column in ("created_at", "due_at", "closed_at", "acknowledged_at"):
        rows[column] = pd.to_datetime(rows[column], utc=True)
    rows["owner_email"] = rows["owner_email"].str.lower()
    rows = rows.reindex(columns=live.columns)
    return rows.reset_index(drop=True) if live.empty else pd.concat([live, rows],
                                                                     ignore_index=True)


# -- helpers ------------------------------------------------------------------------------
def _month(stamp: Any) -> str:
    """The UTC month of a stored time (SQLite gives them naive, in UTC)."""
    at = pd.Timestamp(stamp)
    return (at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")).strftime(
        "%Y-%m")


def _frame(result: Any, columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame([tuple(r) for r in result], columns=columns)
    for column in ("created_at", "due_at", "closed_at", "released_at", "at"):
        if column in frame.columns:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="mixed")
    return frame


def _union(live: pd.DataFrame, archived: pd.DataFrame) -> pd.DataFrame:
    """Live rows, and the archived ones not live (a batch archived but not yet deleted)."""
    if archived.empty:
        return live
    archived = archived[~archived["id"].isin(live["id"])].reindex(columns=live.columns)
    if live.empty:
        return archived.reset_index(drop=True)
    return pd.concat([live, archived], ignore_index=True)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for record in frame.to_dict("records"):
        row: dict[str, Any] = {}
        for key, value in record.items():
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                row[key] = None
            elif isinstance(value, pd.Timestamp):
                row[key] = value.to_pydatetime()
            elif hasattr(value, "item"):  # numpy scalars
                row[key] = value.item()
            else:
                row[key] = value
        out.append(row)
    return out


def _restored(archive: TaskArchive) -> list[str]:
    path = archive.root / _RESTORED
    return list(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else []


def _write_restored(archive: TaskArchive, months: list[str]) -> None:
    archive.root.mkdir(parents=True, exist_ok=True)
    temp = archive.root / f".{_RESTORED}.tmp"
    temp.write_text(json.dumps(months), encoding="utf-8")
    os.replace(temp, archive.root / _RESTORED)
