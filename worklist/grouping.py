"""Email grouping: tasks gathered into one email per owner, split at a size every mail server
takes, rendered by the caller and written to the outbox a few hundred at a time.

Used for the emails announcing a run's new tasks (``new_task_emails``, inside the dispatch
transaction) and for the daily digest of open tasks (``DigestStore.queue_digests``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kamflow.core.urgency import urgency as task_urgency
from kamflow.worklist.bulk import as_datetime, insert_rows, records
from kamflow.worklist.db import StoreBase, aware, utc
from kamflow.worklist.faults import crash_point
from kamflow.worklist.models import OPEN_STATUSES, OutboxEmail, Task
from kamflow.worklist.outbox import EMAIL_CHUNK, QueuedEmail
from kamflow.worklist.plan import owner_address

__all__ = ["DIGEST_FIELDS", "MAX_TASKS_PER_EMAIL", "DigestRenderer", "DigestStore",
           "ManyRenderer", "Renderer", "digest_key", "email_parts", "escalation_emails",
           "escalation_key", "new_task_emails", "one_by_one", "urgency"]

log = logging.getLogger(__name__)

# Renders one owner's email for their new tasks: (owner_name, owner_email, tasks) -> (subject,
# text, html). Passed in by the flow so the store does not depend on the notifications stage.
Renderer = Callable[[str, str, list[dict[str, Any]]], tuple[str, str, str]]
# Renders many such emails, yielding results in order: (owner_name, owner_email, tasks) parts in.
# The flow passes one that uses worker processes for a national run; the store just consumes it.
ManyRenderer = Callable[[Iterable[tuple[str, str, list[dict[str, Any]]]]],
                        Iterable[tuple[str, str, str]]]
# Renders one owner's daily digest: (owner_name, owner_email, open tasks) -> (subject, text, html)
DigestRenderer = Renderer

MAX_TASKS_PER_EMAIL = 200  # tasks listed in one email; more go into further emails
DIGEST_FIELDS = ("task_id", "account_id", "account_name", "action", "action_title", "priority",
                 "due_at", "reason", "rule_id", "status", "escalation_level", "value_at_risk",
                 "effort_hours", "expected_retained_cny_yearly", "must_do", "factors")
_NEW_TASK_COLUMNS = ["account_id", "account_name", "action", "action_title", "priority",
                     "due_at", "reason", "rule_id", "value_at_risk", "owner_email", "owner_name",
                     "effort_hours", "expected_retained_cny_yearly", "must_do", "factors"]


def one_by_one(render: Renderer) -> ManyRenderer:
    return lambda parts: (render(*part) for part in parts)


def digest_key(day: dt.date, owner_email: str, part: int = 1) -> str:
    """The outbox key of one owner's digest (or its ``part``-th email) for one day: a second
    digest is a duplicate key."""
    digest = hashlib.sha256(owner_email.strip().lower().encode("utf-8")).hexdigest()[:16]
    return f"digest-{day.isoformat()}-{digest}" + (f"-{part}" if part > 1 else "")


def escalation_key(owner_email: str, first_task_id: int, level: int) -> str:
    """The outbox key of one escalation email: its recipient and the first task it lists at its
    new level. Each (task, level) step happens once, so a key never repeats across runs."""
    digest = hashlib.sha256(owner_email.strip().lower().encode("utf-8")).hexdigest()[:16]
    return f"escalation-{digest}-{first_task_id}-{level}"


def email_parts(views: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """An owner's tasks (most urgent first) in emails of at most ``MAX_TASKS_PER_EMAIL``: a
    team mailbox can receive tens of thousands of tasks on a first national run, and one email
    of them would exceed every mail server's size limit (SendGrid's is 30 MB)."""
    return [views[i:i + MAX_TASKS_PER_EMAIL] for i in range(0, len(views), MAX_TASKS_PER_EMAIL)]


def urgency(view: dict[str, Any]) -> tuple[Any, ...]:
    """Most urgent first (kamflow.core.urgency: must-do work, then expected net revenue kept
    per hour), then the earliest deadline, then the oldest task."""
    return (*task_urgency(view), as_datetime(view["due_at"]), view["task_id"])


def escalation_order(view: dict[str, Any]) -> tuple[Any, ...]:
    """An escalation email's order: priority, then the most revenue at risk, then the longest
    overdue, then the oldest task."""
    return (int(view["priority"]), -_risk(view.get("value_at_risk")),
            as_datetime(view["overdue_since"]), view["task_id"])


def _risk(value: Any) -> float:
    """A value at risk to sort by (CNY a month): missing or NaN counts as none."""
    if value is None:
        return 0.0
    number = float(value)
    return number if number == number else 0.0


def escalation_emails(session: Session, views: Sequence[tuple[str, str, dict[str, Any]]],
                      run_id: str, render_many: ManyRenderer, now: dt.datetime,
                      summary_size: int | None = None) -> int:
    """One email per new owner listing every task escalated to them in this run (``views``:
    (owner email, owner name, the task as the email shows it), each view with its ``task_id``,
    new ``escalation_level``, ``priority`` and ``overdue_since``), split at
    ``MAX_TASKS_PER_EMAIL``; written inside the caller's transaction. Returns how many.

    With ``summary_size`` (an escalation storm) each owner gets exactly one summary email
    instead: their ``summary_size`` most urgent tasks, each view marked with ``storm_total``
    (how many were escalated to them); the outbox row still names every task."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    names: dict[str, str] = {}
    for owner_email, owner_name, view in views:
        address = owner_address(owner_email)
        name = names.setdefault(address, owner_name)
        groups.setdefault((address, name), []).append(view)
    parts: list[tuple[tuple[str, str], list[dict[str, Any]], list[dict[str, Any]]]] = []
    for owner, group in sorted(groups.items()):
        ordered = sorted(group, key=escalation_order)
        if summary_size is None:
            parts += [(owner, part, part) for part in email_parts(ordered)]
        else:
            shown = [{**v, "storm_total": len(ordered)} for v in ordered[:summary_size]]
            parts.append((owner, shown, ordered))
    rendered = render_many((name, email, shown) for (email, name), shown, _ in parts)
    for ((owner_email, owner_name), _, listed), (subject, text, html) in zip(parts, rendered,
                                                                            strict=True):
        first = listed[0]
        key = escalation_key(owner_email, first["task_id"], first["escalation_level"])
        insert_rows(session, OutboxEmail.__table__, [QueuedEmail(
            key, owner_email, owner_name, subject, text, html, "escalation",
            tuple(v["task_id"] for v in listed)).values(now, run_id)])
        crash_point("escalate.written")
    return len(parts)


def new_task_emails(session: Session, fresh: pd.DataFrame, ids: Sequence[int], run_id: str,
                    render_many: ManyRenderer, now: dt.datetime,
                    backlog: Mapping[str, int] | None = None) -> int:
    """Write the emails announcing newly raised tasks (``fresh``, whose ids are ``ids``) into
    the outbox, inside the caller's transaction; returns how many. ``backlog``: per owner
    address, their tasks still queued for capacity (the routine email says how many)."""
    if not ids:
        return 0
    # Tasks of an action whose email mode is "own" (rules/actions.yaml) go into one "urgent"
    # email per owner (views marked ``urgent``), apart from the routine one listing the rest.
    own = (fresh["email"] == "own").to_numpy() if "email" in fresh else \
        np.zeros(len(fresh), dtype=bool)
    groups: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    names: dict[str, str] = {}  # one owner, one email: the first name seen for an address
    for task_id, urgent, record in zip(ids, own, records(fresh, _NEW_TASK_COLUMNS), strict=True):
        address = owner_address(record.pop("owner_email"))
        owner = (address, names.setdefault(address, record.pop("owner_name")), bool(urgent))
        record["task_id"] = task_id
        if urgent:
            record["urgent"] = True
        elif backlog:
            record["queued_total"] = int(backlog.get(address, 0))
        groups.setdefault(owner, []).append(record)
    # Rendered and stored a few hundred at a time: a national first run renders 3 GB of
    # email, which must not sit in memory at once (all still in the one transaction).
    rows: list[dict[str, Any]] = []
    parts = [(owner, part) for owner, views in sorted(groups.items())
             for part in email_parts(sorted(views, key=urgency))]
    del groups
    rendered = render_many((name, email, views) for (email, name, _), views in parts)
    for done, (((owner_email, owner_name, urgent), views), (subject, text, html)) in enumerate(
            zip(parts, rendered, strict=True), start=1):
        rows.append(QueuedEmail(uuid.uuid4().hex, owner_email, owner_name, subject, text,
                                html, "urgent_tasks" if urgent else "new_tasks",
                                tuple(v["task_id"] for v in views)).values(now, run_id))
        if len(rows) == EMAIL_CHUNK:
            insert_rows(session, OutboxEmail.__table__, rows)
            rows = []
            if len(parts) >= 10 * EMAIL_CHUNK and done % (10 * EMAIL_CHUNK) == 0:
                log.info("task store: %d of %d email(s) rendered and queued", done, len(parts))
    insert_rows(session, OutboxEmail.__table__, rows)
    return len(parts)


class DigestStore(StoreBase):
    """The daily digest: every owner's open tasks in one email (or a few), once per day."""

    def open_tasks_by_owner(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """Every open task, grouped by (owner email, owner name), most urgent first."""
        with self.session() as session:
            rows = session.execute(select(
                Task.id, Task.account_id, Task.account_name, Task.action, Task.action_title,
                Task.priority, Task.due_at, Task.reason, Task.rule_id, Task.status,
                Task.escalation_level, Task.value_at_risk, Task.effort_hours,
                Task.expected_retained_cny_yearly, Task.must_do, Task.factors, Task.owner_email,
                Task.owner_name).where(
                Task.status.in_(OPEN_STATUSES)).order_by(
                Task.owner_email, Task.priority, Task.due_at, Task.id))
            grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
            names: dict[str, str] = {}
            for row in rows:
                *values, owner_email, owner_name = row
                view = dict(zip(DIGEST_FIELDS, values, strict=True))
                view["due_at"] = aware(view["due_at"])
                address = owner_address(owner_email)  # Wang@ and wang@: one owner, one key
                name = names.setdefault(address, owner_name)
                grouped.setdefault((address, name), []).append(view)
        # spellings of one address were apart in the query's order: most urgent first again
        return {owner: sorted(views, key=urgency) for owner, views in grouped.items()}

    def queue_digests(self, day: dt.date, render: DigestRenderer, now: dt.datetime,
                      render_many: ManyRenderer | None = None) -> int:
        """One email per owner listing all their open tasks, at most one per owner and day
        (the outbox key is derived from both): running it twice on a day queues nothing more."""
        now = utc(now)
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
            rendered = (render_many or one_by_one(render))(
                (name, email, views) for _, email, name, views in parts)
            rows: list[dict[str, Any]] = []
            for (key, owner_email, owner_name, views), (subject, text, html) in zip(
                    parts, rendered, strict=True):
                rows.append(QueuedEmail(key, owner_email, owner_name, subject, text, html,
                                        "daily_digest", tuple(v["task_id"] for v in views))
                            .values(now, f"digest-{day.isoformat()}"))
                count += 1
                if len(rows) == EMAIL_CHUNK:  # stored as they come, not all held to the end
                    insert_rows(session, OutboxEmail.__table__, rows)
                    rows = []
            insert_rows(session, OutboxEmail.__table__, rows)
            crash_point("digest.written")
        crash_point("digest.committed")
        log.info("task store: %d daily digest(s) queued for %s", count, day)
        return count

    def open_task_count(self) -> int:
        with self.session() as session:
            return session.scalar(select(func.count()).select_from(Task).where(
                Task.status.in_(OPEN_STATUSES))) or 0
