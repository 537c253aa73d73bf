"""The task store: the only code that writes the database.

``raise_tasks`` writes new tasks, their history rows and the outbox emails announcing them in one
transaction, so a crash leaves either all of them or none. One open task per (account, action) is
enforced by a unique key; a closed task blocks its action for the rule's cooldown. Emails are sent
later by draining the outbox (``unsent_emails`` / ``mark_sent``), so a crash between writing and
sending loses nothing: the next run sends what is still unsent.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Engine, create_engine, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from worklist.models import OPEN_STATUSES, STATUSES, Base, OutboxEmail, Task, TaskEvent

log = logging.getLogger(__name__)

# Renders one owner's email for their new tasks: (owner_name, owner_email, tasks) -> (subject,
# text, html). Passed in by the flow so the store does not depend on the notifications stage.
Renderer = Callable[[str, str, list[dict[str, Any]]], tuple[str, str, str]]

TASK_FIELDS = ("account_id", "account_name", "action", "action_title", "owner_role", "owner_name",
               "owner_email", "priority", "rule_id", "ruleset_version", "reason", "created_at",
               "due_at", "cooldown_days", "open_key")
_CHUNK = 5000


@dataclass(frozen=True)
class RaiseResult:
    created: int
    skipped_open: int
    skipped_cooldown: int
    emails: int
    created_by_action: dict[str, int] = field(default_factory=dict)


class TaskStore:
    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, echo=echo, future=True)
        Base.metadata.create_all(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._session.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    # -- raising tasks ---------------------------------------------------------------------
    def raise_tasks(self, planned: pd.DataFrame, run_id: str, render: Renderer,
                    now: dt.datetime) -> RaiseResult:
        if planned.empty:
            return RaiseResult(0, 0, 0, 0, {})
        with self.session() as session:
            open_keys = set(session.scalars(select(Task.open_key).where(
                Task.open_key.is_not(None))))
            cooling = self._cooling(session, now)
            is_open = planned["open_key"].isin(open_keys)
            in_cooldown = planned["open_key"].map(cooling).notna() & ~is_open
            if in_cooldown.any():
                # still cooling when closed_at + this decision's cooldown is in the future
                until = planned.loc[in_cooldown, "open_key"].map(cooling) + pd.to_timedelta(
                    planned.loc[in_cooldown, "cooldown_days"].astype(float), unit="D")
                in_cooldown.loc[in_cooldown] = (until > pd.Timestamp(now)).to_numpy()
            fresh = planned.loc[~is_open & ~in_cooldown]
            rows = [_task_row(record, run_id) for record in
                    fresh[list(TASK_FIELDS)].to_dict("records")]
            ids: list[int] = []
            for start in range(0, len(rows), _CHUNK):
                ids += session.scalars(insert(Task).returning(Task.id),
                                       rows[start:start + _CHUNK]).all()
            if ids:
                session.execute(insert(TaskEvent), [
                    {"task_id": i, "at": now, "event": "created", "detail": f"run {run_id}"}
                    for i in ids])
            emails = self._write_emails(session, fresh, ids, run_id, render, now)
        result = RaiseResult(len(ids), int(is_open.sum()), int(in_cooldown.sum()), emails,
                             {str(k): int(v) for k, v in fresh["action"].value_counts().items()})
        log.info("task store: %d new task(s), %d already open, %d in cooldown, %d email(s) queued",
                 *(result.created, result.skipped_open, result.skipped_cooldown, result.emails))
        return result

    @staticmethod
    def _cooling(session: Session, now: dt.datetime) -> dict[str, pd.Timestamp]:
        """Latest close time per (account, action) key among recently closed tasks."""
        rows = session.execute(
            select(Task.account_id, Task.action, Task.closed_at).where(
                Task.closed_at.is_not(None), Task.status.not_in(OPEN_STATUSES),
                Task.closed_at > now - dt.timedelta(days=366)))
        latest: dict[str, pd.Timestamp] = {}
        for account_id, action, closed_at in rows:
            key = f"{account_id}|{action}"
            stamp = pd.Timestamp(_aware(closed_at))
            if key not in latest or stamp > latest[key]:
                latest[key] = stamp
        return latest

    @staticmethod
    def _write_emails(session: Session, fresh: pd.DataFrame, ids: Sequence[int], run_id: str,
                      render: Renderer, now: dt.datetime) -> int:
        if not ids:
            return 0
        tasks = fresh.assign(task_id=list(ids))
        count = 0
        for (owner_email, owner_name), group in tasks.groupby(["owner_email", "owner_name"],
                                                              sort=True):
            views = group[["task_id", "account_id", "account_name", "action", "action_title",
                           "priority", "due_at", "reason", "rule_id"]].to_dict("records")
            subject, text, html = render(owner_name, owner_email, views)
            session.add(OutboxEmail(
                key=uuid.uuid4().hex, recipient=owner_email, recipient_name=owner_name,
                subject=subject, body_text=text, body_html=html,
                task_ids=",".join(str(v["task_id"]) for v in views), created_at=now,
                run_id=run_id))
            count += 1
        return count

    def set_status(self, task_id: int, status: str, now: dt.datetime, detail: str = "") -> Task:
        """Move a task to a new status, recording the change in its history."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; known: {', '.join(STATUSES)}")
        with self.session() as session:
            task = session.get(Task, task_id)
            if task is None:
                raise LookupError(f"no task with id {task_id}")
            closing = status not in OPEN_STATUSES
            task.status = status
            task.closed_at = now if closing else None
            task.open_key = None if closing else f"{task.account_id}|{task.action}"
            session.add(TaskEvent(task_id=task_id, at=now, event=status, detail=detail))
        return task

    def history(self, task_id: int) -> list[TaskEvent]:
        with self.session() as session:
            return list(session.scalars(select(TaskEvent).where(
                TaskEvent.task_id == task_id).order_by(TaskEvent.id)))

    # -- the outbox ------------------------------------------------------------------------
    def unsent_emails(self) -> list[OutboxEmail]:
        with self.session() as session:
            return list(session.scalars(select(OutboxEmail).where(
                OutboxEmail.sent_at.is_(None)).order_by(OutboxEmail.id)))

    def mark_sent(self, email_id: int, backend: str, provider_id: str,
                  now: dt.datetime) -> None:
        with self.session() as session:
            session.execute(update(OutboxEmail).where(OutboxEmail.id == email_id).values(
                sent_at=now, backend=backend, provider_id=provider_id,
                attempts=OutboxEmail.attempts + 1, last_error=None))

    def mark_failed(self, email_id: int, error: str) -> None:
        with self.session() as session:
            session.execute(update(OutboxEmail).where(OutboxEmail.id == email_id).values(
                attempts=OutboxEmail.attempts + 1, last_error=error[:2000]))

    # -- reading -------------------------------------------------------------------------
    def list_tasks(self, status: str | None = None, limit: int | None = None) -> list[Task]:
        with self.session() as session:
            query = select(Task).order_by(Task.id)
            if status:
                query = query.where(Task.status == status)
            if limit:
                query = query.limit(limit)
            return list(session.scalars(query))

    def owner_kpis(self, now: dt.datetime) -> list[dict[str, Any]]:
        """Per owner: open, overdue, handled on time and late (DOMAIN.md's per-manager KPIs)."""
        from sqlalchemy import case, func

        overdue = case((Task.status.in_(OPEN_STATUSES) & (Task.due_at < now), 1), else_=0)
        open_ = case((Task.status.in_(OPEN_STATUSES), 1), else_=0)
        on_time = case((Task.closed_at.is_not(None) & (Task.status == "done")
                        & (Task.closed_at <= Task.due_at), 1), else_=0)
        late = case((Task.closed_at.is_not(None) & (Task.status == "done")
                     & (Task.closed_at > Task.due_at), 1), else_=0)
        with self.session() as session:
            rows = session.execute(
                select(Task.owner_email, Task.owner_name, func.sum(open_), func.sum(overdue),
                       func.sum(on_time), func.sum(late), func.count(func.distinct(
                           Task.account_id)))
                .group_by(Task.owner_email, Task.owner_name).order_by(Task.owner_email))
            return [{"owner": name, "email": email, "open": int(o or 0),
                     "overdue": int(d or 0), "done on time": int(t or 0), "done late": int(l or 0),
                     "accounts with tasks": int(a or 0)}
                    for email, name, o, d, t, l, a in rows]

    def counts(self) -> dict[str, int]:
        with self.session() as session:
            tasks = session.scalar(select(_count()).select_from(Task)) or 0
            emails = session.scalar(select(_count()).select_from(OutboxEmail)) or 0
            unsent = session.scalar(select(_count()).select_from(OutboxEmail).where(
                OutboxEmail.sent_at.is_(None))) or 0
        return {"tasks": tasks, "emails": emails, "unsent_emails": unsent}


def _count() -> Any:
    from sqlalchemy import func
    return func.count()


def _aware(stamp: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes; everything kamflow stores is UTC."""
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _task_row(record: dict[str, Any], run_id: str) -> dict[str, Any]:
    row = dict(record)
    for key in ("created_at", "due_at"):
        row[key] = pd.Timestamp(row[key]).to_pydatetime()
    row["priority"] = int(row["priority"])
    row["cooldown_days"] = float(row["cooldown_days"])
    row["status"] = "open"
    row["run_id"] = run_id
    return row
