"""The task store: the only code that writes the database.

``raise_tasks`` writes new tasks, their history rows and the outbox emails announcing them in one
transaction, so a crash leaves either all of them or none. One open task per (account, action) is
enforced by a unique key; a closed task blocks its action for the rule's cooldown. Emails are sent
later by draining the outbox (``unsent_emails`` / ``mark_sent``), so a crash between writing and
sending loses nothing: the next run sends what is still unsent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import DateTime, Engine, bindparam, create_engine, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from kamflow.worklist.faults import crash_point
from kamflow.worklist.models import (
    OPEN_STATUSES,
    STATUSES,
    AccountRecord,
    OutboxEmail,
    Task,
    TaskEvent,
)
from kamflow.worklist.quarantine import QuarantinedRow

log = logging.getLogger(__name__)

# Renders one owner's email for their new tasks: (owner_name, owner_email, tasks) -> (subject,
# text, html). Passed in by the flow so the store does not depend on the notifications stage.
Renderer = Callable[[str, str, list[dict[str, Any]]], tuple[str, str, str]]
# Renders many such emails, yielding results in order: (owner_name, owner_email, tasks) parts in.
# The flow passes one that uses worker processes for a national run; the store just consumes it.
ManyRenderer = Callable[[Iterable[tuple[str, str, list[dict[str, Any]]]]],
                        Iterable[tuple[str, str, str]]]

TASK_FIELDS = ("account_id", "account_name", "action", "action_title", "owner_role", "owner_name",
               "owner_email", "priority", "rule_id", "ruleset_version", "reason", "created_at",
               "due_at", "cooldown_days", "open_key")
_CHUNK = 5000
_ROSTER_CHUNK = 100_000  # roster rows inserted at a time
_EMAIL_CHUNK = 200  # outbox rows rendered and inserted at a time (bounded memory)
MAX_TASKS_PER_EMAIL = 200  # tasks listed in one email; more go into further emails


MAX_LOST_SHARE = 0.05  # more of the roster gone in one snapshot looks like a partial export
LOST_KPI_DAYS = 365  # the managers' churn KPI counts accounts lost in the past year


@dataclass(frozen=True)
class RosterChange:
    new: int  # accounts seen for the first time
    lost: int  # in the roster, missing from this snapshot: marked lost
    returned: int  # marked lost before, back in this snapshot
    held: int = 0  # missing but not marked lost: too many at once (a partial export?)


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
        migrate(self.engine)  # schema from worklist/migrations (Alembic), never create_all
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._session.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    # -- raising tasks ---------------------------------------------------------------------
    def raise_tasks(self, planned: pd.DataFrame, run_id: str, render: Renderer,
                    now: dt.datetime, render_many: ManyRenderer | None = None) -> RaiseResult:
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
            rows = [_task_row(record, run_id) for record in _records(fresh, TASK_FIELDS)]
            ids = _insert_returning_ids(session, Task.__table__, rows)
            del rows  # written: let 450,000 row dicts go before the emails are rendered
            if ids:
                _insert(session, TaskEvent.__table__, [
                    {"task_id": i, "at": now, "event": "created", "detail": f"run {run_id}"}
                    for i in ids])
            crash_point("dispatch.tasks_written")
            emails = self._write_emails(session, fresh, ids, run_id, render_many or
                                        _one_by_one(render), now)
            crash_point("dispatch.emails_written")
        crash_point("dispatch.committed")
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
                      render_many: ManyRenderer, now: dt.datetime) -> int:
        if not ids:
            return 0
        columns = ["account_id", "account_name", "action", "action_title", "priority", "due_at",
                   "reason", "rule_id", "owner_email", "owner_name"]
        # An action whose email mode is "own" (rules/actions.yaml) gets an email of its own;
        # the rest go into one email per owner listing their new tasks.
        own = (fresh["email"] == "own").to_numpy() if "email" in fresh else \
            np.zeros(len(fresh), dtype=bool)
        groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        for task_id, alone, record in zip(ids, own, _records(fresh, columns), strict=True):
            owner = (record.pop("owner_email"), record.pop("owner_name"), task_id if alone else 0)
            record["task_id"] = task_id
            groups.setdefault(owner, []).append(record)
        # Rendered and stored a few hundred at a time: a national first run renders 3 GB of
        # email, which must not sit in memory at once (all still in the one transaction).
        rows: list[dict[str, Any]] = []
        parts = [(owner, part) for owner, views in sorted(groups.items())
                 for part in email_parts(sorted(views, key=_urgency))]
        del groups
        rendered = render_many((name, email, views) for (email, name, _), views in parts)
        for done, (((owner_email, owner_name, _), views), (subject, text, html)) in enumerate(
                zip(parts, rendered, strict=True), start=1):
            rows.append(QueuedEmail(uuid.uuid4().hex, owner_email, owner_name, subject, text,
                                    html, "new_tasks", tuple(v["task_id"] for v in views))
                        .values(now, run_id))
            if len(rows) == _EMAIL_CHUNK:
                _insert(session, OutboxEmail.__table__, rows)
                rows = []
                if len(parts) >= 10 * _EMAIL_CHUNK and done % (10 * _EMAIL_CHUNK) == 0:
                    log.info("task store: %d of %d email(s) rendered and queued", done,
                             len(parts))
        _insert(session, OutboxEmail.__table__, rows)
        return len(parts)

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

    def get_task(self, task_id: int) -> Task:
        """The task with this id; LookupError naming the id when there is none."""
        with self.session() as session:
            task = session.get(Task, task_id)
        if task is None:
            raise LookupError(f"no task with id {task_id}")
        return task

    # -- closing the loop: acknowledge, done, reassign ----------------------------------------
    def transition(self, task_id: int, action: str, now: dt.datetime, actor: str,
                   note: str = "") -> tuple[Task, bool]:
        """``ack`` or ``done`` a task on behalf of ``actor``; returns (task, changed).

        Repeating what is already so (done twice, ack twice) changes nothing and returns
        changed=False. Acknowledging a closed task, or finishing a cancelled one, raises
        ``TaskClosedError``. The change and its history row are one transaction, and the update
        is conditional on the status read, so a concurrent change (sla_watch escalating, another
        click) cannot be overwritten unseen.
        """
        targets = {"ack": "acknowledged", "done": "done"}
        if action not in targets:
            raise ValueError(f"unknown action {action!r}; use ack or done")
        status = targets[action]
        now = _utc(now)
        with self.session() as session:
            task = session.get(Task, task_id)
            if task is None:
                raise LookupError(f"no task with id {task_id}")
            if task.status == status:
                return task, False
            if task.status not in OPEN_STATUSES:
                raise TaskClosedError(f"task {task_id} is already {task.status}; it cannot be "
                                      f"{'acknowledged' if action == 'ack' else 'marked done'}")
            closing = status == "done"
            changed = session.execute(
                update(Task).where(Task.id == task_id, Task.status == task.status).values(
                    status=status, closed_at=now if closing else None,
                    open_key=None if closing else Task.open_key)).rowcount
            if changed != 1:
                raise TaskClosedError(f"task {task_id} changed while it was being updated; "
                                      "try again")
            detail = f"by {actor}" + (f": {note}" if note else "")
            session.add(TaskEvent(task_id=task_id, at=now, event=status, detail=detail))
        return self.get_task(task_id), True

    def reassign(self, task_id: int, owner_email: str, owner_name: str, now: dt.datetime,
                 actor: str, note: str = "", due_at: dt.datetime | None = None,
                 email: QueuedEmail | None = None) -> Task:
        """Give an open task to someone else (history row, optional new deadline, and the email
        telling the new owner, all in one transaction)."""
        now = _utc(now)
        with self.session() as session:
            task = session.get(Task, task_id)
            if task is None:
                raise LookupError(f"no task with id {task_id}")
            if task.status not in OPEN_STATUSES:
                raise TaskClosedError(f"task {task_id} is already {task.status}; it cannot be "
                                      "reassigned")
            previous = task.owner_email
            task.owner_email, task.owner_name = owner_email, owner_name
            if due_at is not None:
                task.due_at = _utc(due_at)
            detail = f"{previous} -> {owner_email} by {actor}" + (f": {note}" if note else "")
            if due_at is not None:
                detail += f"; due {_utc(due_at).isoformat()}"
            session.add(TaskEvent(task_id=task_id, at=now, event="reassigned", detail=detail))
            if email is not None:
                session.add(email.row(now, f"reassign-{task_id}"))
        return self.get_task(task_id)

    # -- SLA: overdue tasks and escalation -------------------------------------------------------
    def overdue_tasks(self, now: dt.datetime) -> list[Task]:
        """Open tasks (open, acknowledged, escalated) whose deadline has passed, oldest first."""
        with self.session() as session:
            return list(session.scalars(select(Task).where(
                Task.status.in_(OPEN_STATUSES), Task.due_at < _utc(now))
                .order_by(Task.due_at, Task.id)))

    def escalate(self, task: Task, owner_email: str, owner_name: str, due_at: dt.datetime,
                 now: dt.datetime, detail: str, email: QueuedEmail | None) -> bool:
        """Move an overdue task one rung up the ladder: new owner and deadline, status
        ``escalated``, a history row and the email to the new owner, in one transaction.

        Only if the task is still as it was read (same level, still open and overdue); returns
        False when someone acted on it meanwhile, so a task escalates once per step.
        """
        now = _utc(now)
        with self.session() as session:
            changed = session.execute(update(Task).where(
                Task.id == task.id, Task.escalation_level == task.escalation_level,
                Task.owner_email == task.owner_email, Task.status.in_(OPEN_STATUSES),
                Task.due_at < now).values(
                owner_email=owner_email, owner_name=owner_name, status="escalated",
                escalation_level=task.escalation_level + 1, due_at=_utc(due_at))).rowcount
            if changed != 1:
                return False
            session.add(TaskEvent(task_id=task.id, at=now, event="escalated", detail=detail))
            if email is not None:
                session.add(email.row(now, f"sla-{task.id}-{task.escalation_level + 1}"))
            crash_point("escalate.written")
        crash_point("escalate.committed")
        return True

    # -- the daily digest ---------------------------------------------------------------------
    def open_tasks_by_owner(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """Every open task, grouped by (owner email, owner name), most urgent first."""
        with self.session() as session:
            rows = session.execute(select(
                Task.id, Task.account_id, Task.account_name, Task.action, Task.action_title,
                Task.priority, Task.due_at, Task.reason, Task.rule_id, Task.status,
                Task.escalation_level, Task.owner_email, Task.owner_name).where(
                Task.status.in_(OPEN_STATUSES)).order_by(
                Task.owner_email, Task.priority, Task.due_at, Task.id))
            grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
            names: dict[str, str] = {}
            for row in rows:
                *values, owner_email, owner_name = row
                view = dict(zip(DIGEST_FIELDS, values, strict=True))
                view["due_at"] = _aware(view["due_at"])
                name = names.setdefault(owner_email, owner_name)
                grouped.setdefault((owner_email, name), []).append(view)
        return grouped

    def queue_digests(self, day: dt.date, render: DigestRenderer, now: dt.datetime,
                      render_many: ManyRenderer | None = None) -> int:
        """One email per owner listing all their open tasks, at most one per owner and day
        (the outbox key is derived from both): running it twice on a day queues nothing more."""
        now = _utc(now)
        prefix = f"digest-{day.isoformat()}-"
        grouped = self.open_tasks_by_owner()
        count = 0
        with self.session() as session:
            done = set(session.scalars(select(OutboxEmail.key).where(
                OutboxEmail.key.like(f"{prefix}%"))))
            parts = [(digest_key(day, owner_email, number), owner_email, owner_name, views)
                     for (owner_email, owner_name), all_views in grouped.items()
                     for number, views in enumerate(email_parts(all_views), start=1)]
            parts = [part for part in parts if part[0] not in done]
            del grouped
            rendered = (render_many or _one_by_one(render))(
                (name, email, views) for _, email, name, views in parts)
            rows: list[dict[str, Any]] = []
            for (key, owner_email, owner_name, views), (subject, text, html) in zip(
                    parts, rendered, strict=True):
                rows.append(QueuedEmail(key, owner_email, owner_name, subject, text, html,
                                        "daily_digest", tuple(v["task_id"] for v in views))
                            .values(now, f"digest-{day.isoformat()}"))
                count += 1
                if len(rows) == _EMAIL_CHUNK:  # stored as they come, not all held to the end
                    _insert(session, OutboxEmail.__table__, rows)
                    rows = []
            _insert(session, OutboxEmail.__table__, rows)
            crash_point("digest.written")
        crash_point("digest.committed")
        log.info("task store: %d daily digest(s) queued for %s", count, day)
        return count

    def open_task_count(self) -> int:
        with self.session() as session:
            return session.scalar(select(_count()).select_from(Task).where(
                Task.status.in_(OPEN_STATUSES))) or 0

    # -- the outbox ------------------------------------------------------------------------
    def unsent_emails(self, after_id: int = 0, limit: int | None = None) -> list[OutboxEmail]:
        """Unsent emails in outbox order, from the one after ``after_id``; ``limit`` of them
        (the drain pages through a big outbox rather than holding every body at once)."""
        with self.session() as session:
            query = select(OutboxEmail).where(OutboxEmail.sent_at.is_(None),
                                              OutboxEmail.id > after_id).order_by(OutboxEmail.id)
            return list(session.scalars(query.limit(limit) if limit else query))

    def unsent_count(self) -> int:
        with self.session() as session:
            return int(session.scalar(select(_count()).select_from(OutboxEmail).where(
                OutboxEmail.sent_at.is_(None))) or 0)

    def mark_sent(self, email_id: int, backend: str, provider_id: str,
                  now: dt.datetime) -> None:
        self.mark_sent_many([(email_id, provider_id)], backend, now)

    def mark_sent_many(self, sent: Sequence[tuple[int, str]], backend: str,
                       now: dt.datetime) -> None:
        """Record in one transaction that the backend accepted these (outbox id, provider id)."""
        if not sent:
            return
        table = OutboxEmail.__table__
        statement = update(table).where(table.c.id == bindparam("email_id")).values(
            sent_at=_utc(now), backend=backend, provider_id=bindparam("provider"),
            attempts=table.c.attempts + 1, last_error=None, in_flight_since=None)
        with self.session() as session:  # one executemany, not one statement per email
            session.connection().execute(statement, [
                {"email_id": email_id, "provider": (provider_id or "")[:500]}
                for email_id, provider_id in sent])

    def mark_failed(self, email_id: int, error: str) -> None:
        with self.session() as session:
            session.execute(update(OutboxEmail).where(OutboxEmail.id == email_id).values(
                attempts=OutboxEmail.attempts + 1, last_error=error[:2000],
                in_flight_since=None))

    def mark_in_flight(self, email_ids: Sequence[int], now: dt.datetime) -> None:
        """Note that these emails are being handed to a backend right now. If the process dies
        before ``mark_sent``/``mark_failed``, the next drain sees them still in flight: they may
        have been delivered, and are sent again (at least once, never silently lost)."""
        if not email_ids:
            return
        with self.session() as session:
            session.execute(update(OutboxEmail).where(OutboxEmail.id.in_(list(email_ids)))
                            .values(in_flight_since=now))

    def queue_email(self, email: QueuedEmail, now: dt.datetime, run_id: str = "") -> bool:
        """Put one email in the outbox unless one with the same key is there already."""
        with self.session() as session:
            if session.scalar(select(OutboxEmail.id).where(OutboxEmail.key == email.key)):
                return False
            session.add(email.row(now, run_id))
        return True

    # -- quarantine ----------------------------------------------------------------------
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
            for start in range(0, len(rows), _CHUNK):
                session.execute(insert(QuarantinedRow), rows[start:start + _CHUNK])
        return len(rows)

    def record_accounts(self, accounts: pd.DataFrame, now: dt.datetime,
                        max_lost_share: float = MAX_LOST_SHARE) -> RosterChange:
        """Bring the account roster up to this snapshot (``account_id``, ``account_manager``,
        ``manager_email``: every account in it, accepted or quarantined). New accounts are
        added; accounts of the roster missing from the snapshot are marked lost (their
        manager's churn), unless more than ``max_lost_share`` of the roster went missing at
        once, which looks like a partial export: then nothing is marked and a warning says
        so. Accounts back in the snapshot are not lost any more; managers are kept current."""
        now = _utc(now)
        today = _roster_frame(accounts)
        with self.session() as session:
            cursor = session.connection().connection.driver_connection.cursor()
            try:  # plain tuples from the driver: SQLAlchemy rows cost 5 s per million here
                cursor.execute("SELECT account_id, manager_email, lost_at IS NULL FROM accounts")
                known = pd.DataFrame(cursor.fetchall(),
                                     columns=["account_id", "known_email", "active"])
            finally:
                cursor.close()
            if known.empty:  # the first snapshot: everyone is new
                merged = today.assign(known_email=None, active=False, _merge="left_only")
            else:
                known["account_id"] = known["account_id"].astype(today["account_id"].dtype)
                merged = today.merge(known, on="account_id", how="outer", indicator=True)
            present = (merged["_merge"] != "right_only").to_numpy()
            both = (merged["_merge"] == "both").to_numpy()
            active = (merged["active"].astype("float64").fillna(0.0) > 0).to_numpy()
            new = merged.loc[merged["_merge"] == "left_only"]
            missing = merged.loc[~present & active, "account_id"].tolist()
            returned = merged.loc[both & ~active, "account_id"].tolist()
            moved = merged.loc[both & (merged["manager_email"] != merged["known_email"])
                               .to_numpy()]
            for start in range(0, len(new), _ROSTER_CHUNK):  # bounded memory at 1M accounts
                part = new.iloc[start:start + _ROSTER_CHUNK]
                _insert(session, AccountRecord.__table__, [
                    {"account_id": a, "manager_email": e, "manager_name": n, "first_seen": now}
                    for a, e, n in zip(part["account_id"].tolist(),
                                       part["manager_email"].tolist(),
                                       part["manager_name"].tolist(), strict=True)])
            held = 0
            if missing and len(missing) > max_lost_share * int(active.sum()):
                held, missing = len(missing), []
                log.warning("%d of %d accounts are missing from this snapshot, more than %.0f%%: "
                            "it looks like a partial export, so none is marked lost", held,
                            int(active.sum()), 100 * max_lost_share)
            table = AccountRecord.__table__
            for ids, value in ((missing, now), (returned, None)):
                if ids:
                    session.execute(update(table).where(table.c.account_id == bindparam("a"))
                                    .values(lost_at=value), [{"a": a} for a in ids])
            if len(moved):
                session.execute(update(table).where(table.c.account_id == bindparam("a"))
                                .values(manager_email=bindparam("e"), manager_name=bindparam("n")),
                                [{"a": a, "e": e, "n": n} for a, e, n in zip(
                                    moved["account_id"].tolist(),
                                    moved["manager_email"].tolist(),
                                    moved["manager_name"].tolist(), strict=True)])
        change = RosterChange(len(new), len(missing), len(returned), held)
        log.info("account roster: %d new, %d lost, %d back, %d missing but not marked",
                 change.new, change.lost, change.returned, change.held)
        return change

    def quarantine(self, run_id: str) -> list[QuarantinedRow]:
        with self.session() as session:
            return list(session.scalars(select(QuarantinedRow).where(
                QuarantinedRow.run_id == run_id).order_by(QuarantinedRow.id)))

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
        """Per owner: open, overdue, handled on time and late, and accounts lost in the past
        year (DOMAIN.md's per-manager KPIs; the loss is counted for the account's last
        manager)."""
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
            kpis = [{"owner": name, "email": email, "open": int(o or 0),
                     "overdue": int(d or 0), "done on time": int(t or 0),
                     "done late": int(late_n or 0), "accounts with tasks": int(a or 0),
                     "accounts lost": 0}
                    for email, name, o, d, t, late_n, a in rows]
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
                row = by_email[email] = {"owner": name, "email": email, "open": 0, "overdue": 0,
                                         "done on time": 0, "done late": 0,
                                         "accounts with tasks": 0, "accounts lost": 0}
                kpis.append(row)
            row["accounts lost"] += int(count)
        return sorted(kpis, key=lambda k: k["email"])

    def counts(self) -> dict[str, int]:
        with self.session() as session:
            tasks = session.scalar(select(_count()).select_from(Task)) or 0
            emails = session.scalar(select(_count()).select_from(OutboxEmail)) or 0
            unsent = session.scalar(select(_count()).select_from(OutboxEmail).where(
                OutboxEmail.sent_at.is_(None))) or 0
        return {"tasks": tasks, "emails": emails, "unsent_emails": unsent}


MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Any:
    """The Alembic configuration of the task store, built in code (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser escaping
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (``alembic upgrade head``) on the engine's own
    connection. A database created before kamflow used migrations is refused with what to do."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as connection:
            tables = set(inspect(connection).get_table_names())
            if "tasks" in tables and "alembic_version" not in tables:
                raise RuntimeError(
                    f"the task store at {engine.url!r} was created before kamflow used schema "
                    "migrations and cannot be upgraded in place: move it aside (a new one is "
                    "created on the next start), or after checking its schema matches, record "
                    "it with `alembic -c worklist/migrations/alembic.ini -x url=URL stamp head`")
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    except RuntimeError:
        raise
    except Exception:
        # Two processes migrating one new SQLite file at once: the loser fails on "table
        # exists". Fine if the winner got the schema to head; anything else is a real error.
        from alembic.runtime.migration import MigrationContext

        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        if current != ScriptDirectory.from_config(cfg).get_current_head():
            raise


@dataclass(frozen=True)
class QueuedEmail:
    """An email to write into the outbox (rendered by the caller)."""

    key: str
    recipient: str
    recipient_name: str
    subject: str
    text: str
    html: str
    kind: str
    task_ids: tuple[int, ...] = ()

    def values(self, now: dt.datetime, run_id: str) -> dict[str, Any]:
        """The outbox row's column values (bulk inserts take these)."""
        return {"key": self.key, "recipient": self.recipient,
                "recipient_name": self.recipient_name, "subject": self.subject,
                "body_text": self.text, "body_html": self.html,
                "task_ids": ",".join(map(str, self.task_ids)), "created_at": _utc(now),
                "run_id": run_id, "kind": self.kind, "attempts": 0}

    def row(self, now: dt.datetime, run_id: str) -> OutboxEmail:
        return OutboxEmail(**self.values(now, run_id))


class TaskClosedError(ValueError):
    """The task is closed (done or cancelled): it can no longer be acknowledged or moved."""


# Renders one owner's daily digest: (owner_name, owner_email, open tasks) -> (subject, text, html)
DigestRenderer = Callable[[str, str, list[dict[str, Any]]], tuple[str, str, str]]
DIGEST_FIELDS = ("task_id", "account_id", "account_name", "action", "action_title", "priority",
                 "due_at", "reason", "rule_id", "status", "escalation_level")


def _one_by_one(render: Renderer) -> ManyRenderer:
    return lambda parts: (render(*part) for part in parts)


def digest_key(day: dt.date, owner_email: str, part: int = 1) -> str:
    """The outbox key of one owner's digest (or its ``part``-th email) for one day: a second
    digest is a duplicate key."""
    digest = hashlib.sha256(owner_email.strip().lower().encode("utf-8")).hexdigest()[:16]
    return f"digest-{day.isoformat()}-{digest}" + (f"-{part}" if part > 1 else "")


def email_parts(views: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """An owner's tasks (most urgent first) in emails of at most ``MAX_TASKS_PER_EMAIL``: a
    team mailbox can receive tens of thousands of tasks on a first national run, and one email
    of them would exceed every mail server's size limit (SendGrid's is 30 MB)."""
    return [views[i:i + MAX_TASKS_PER_EMAIL] for i in range(0, len(views), MAX_TASKS_PER_EMAIL)]


def _urgency(view: dict[str, Any]) -> tuple[Any, ...]:
    due = view["due_at"]
    if not isinstance(due, dt.datetime):
        due = pd.Timestamp(due).to_pydatetime()
    return (int(view["priority"]), due, view["task_id"])


def _utc(stamp: dt.datetime) -> dt.datetime:
    return _aware(stamp).astimezone(dt.UTC)


def _roster_frame(accounts: pd.DataFrame) -> pd.DataFrame:
    """One row per account id of a snapshot's accounts (the last row of a duplicate id)."""
    def text(column: str, limit: int) -> pd.Series:
        values = accounts[column] if column in accounts else pd.Series(
            "", index=accounts.index, dtype="str")
        return values.astype("str").fillna("").str.strip().str.slice(0, limit)

    frame = pd.DataFrame({"account_id": text("account_id", 64),
                          "manager_email": text("manager_email", 320).str.lower(),
                          "manager_name": text("account_manager", 200)})
    frame = frame.loc[accounts["account_id"].notna().to_numpy() & (frame["account_id"] != "")
                      .to_numpy()]
    return frame.drop_duplicates("account_id", keep="last").reset_index(drop=True)


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


def _count() -> Any:
    from sqlalchemy import func
    return func.count()


def _aware(stamp: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes; everything kamflow stores is UTC."""
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _insert_returning_ids(session: Session, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` and return their new ids, in order. On PostgreSQL the ids are drawn from
    the table's sequence and the rows sent with COPY (psycopg spends seconds parsing multi-row
    INSERTs of 100,000 rows); elsewhere a Core INSERT ... RETURNING in chunks."""
    if not rows:
        return []
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        ids = list(connection.exec_driver_sql(
            f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) "
            f"FROM generate_series(1, {len(rows)})").scalars())
        for row, i in zip(rows, ids, strict=True):
            row["id"] = i  # in place: a copy of every row dict costs 0.5 GB at 450,000 tasks
        _copy(connection, table, rows)
        return ids
    # SQLite: the first row's INSERT ... RETURNING takes the database's write lock, held to the
    # commit, and its id is above every id in use; the rest take the ids after it in one
    # executemany (RETURNING with ordered parameters costs one statement per row: 12 s at 1M).
    first = connection.execute(insert(table).returning(table.c.id), rows[0]).scalar_one()
    ids = list(range(first, first + len(rows)))
    for row, i in zip(rows[1:], ids[1:], strict=True):
        row["id"] = i
    _insert(session, table, rows[1:])
    return ids


def _insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows: COPY on PostgreSQL, chunked executemany elsewhere."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        _copy(connection, table, rows)
        return
    if connection.dialect.name == "sqlite":
        _executemany(connection, table, rows)
        return
    for start in range(0, len(rows), _CHUNK):
        connection.execute(insert(table), rows[start:start + _CHUNK])


def _executemany(connection: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """One driver-level executemany inside the session's transaction, each value converted by
    its column type's own SQLAlchemy bind processor (so stored exactly as an ORM insert stores
    it). SQLAlchemy's per-row parameter handling cost 1.3 s per 100,000 task rows."""
    columns = _insert_columns(table, rows)
    names = ", ".join(f'"{c.name}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    by_column = []  # converted column by column: one C-level map per column, not per value
    for column in columns:
        convert = column.type._cached_bind_processor(connection.dialect)
        if column.name in rows[0]:
            values = [row[column.name] for row in rows]
        else:
            values = [column.default.arg] * len(rows)
        if convert is not None and isinstance(column.type, DateTime):
            # a run's tasks share a few creation and due times: convert each distinct one once
            convert = _memoised(convert)
        by_column.append(list(map(convert, values)) if convert else values)
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})',
                           zip(*by_column, strict=True))
    finally:
        cursor.close()


def _memoised(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert`` remembering its results; keyed by the value and its tzinfo too, since equal
    instants in two zones compare (and hash) equal but are written as different text."""
    memo: dict[tuple[Any, Any], Any] = {}

    def cached(value: Any) -> Any:
        key = (value, getattr(value, "tzinfo", None))
        if key in memo:
            return memo[key]
        result = convert(value)
        if len(memo) < 65_536:  # bounded: a column of all-distinct times just converts
            memo[key] = result
        return result

    return cached


def _insert_columns(table: Any, rows: list[dict[str, Any]]) -> list[Any]:
    """The columns an insert of ``rows`` writes: theirs, and those with a scalar default."""
    return [c for c in table.columns if c.name in rows[0] or (
        c.default is not None and getattr(c.default, "is_scalar", False))]


def _copy(connection: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """``COPY table FROM STDIN`` inside the session's transaction (psycopg 3). Columns left out
    of the rows get their Python-side default when they have a scalar one."""
    columns = _insert_columns(table, rows)
    defaults = {c.name: c.default.arg for c in columns if c.name not in rows[0]}
    names = ", ".join(f'"{c.name}"' for c in columns)
    cursor = connection.connection.driver_connection.cursor()
    try:
        with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(tuple(row.get(c.name, defaults.get(c.name)) for c in columns))
    finally:
        cursor.close()


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """``frame[columns].to_dict("records")`` with plain Python values (datetimes, ints, floats)
    and about ten times faster on 100,000 rows (pandas boxes every cell as it goes)."""
    values = []
    for column in columns:
        series = frame[column]
        if pd.api.types.is_datetime64_any_dtype(series):
            values.append(list(series.dt.to_pydatetime()))
        else:
            values.append(series.tolist())
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def _task_row(record: dict[str, Any], run_id: str) -> dict[str, Any]:
    row = record  # a fresh dict from _records: completed in place, not copied
    for key in ("created_at", "due_at"):
        if not isinstance(row[key], dt.datetime):  # _records gives datetimes already
            row[key] = pd.Timestamp(row[key]).to_pydatetime()
    row["priority"] = int(row["priority"])
    row["cooldown_days"] = float(row["cooldown_days"])
    row["status"] = "open"
    row["run_id"] = run_id
    return row
