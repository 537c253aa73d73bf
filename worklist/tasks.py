"""Task lifecycle: raise, acknowledge, finish, reassign and escalate tasks, with their history.

``raise_tasks`` writes new tasks, their history rows and the outbox emails announcing them in one
transaction per slice of whole owners, so a crash leaves either all of a slice or none of it.
One open task per (account, action) is enforced by a unique key; a closed task blocks its action
for the rule's cooldown. Every other change is one conditional update plus its history row (and
email, if any) in one transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import CursorResult, Result, Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from kamflow.worklist.bulk import as_datetime, insert_returning_ids, insert_rows, records
from kamflow.worklist.calendar import BusinessCalendar
from kamflow.worklist.capacity import DEFAULT_ORDER, UNLIMITED, Capacity, allocate, urgent_tasks
from kamflow.worklist.db import StoreBase, aware, utc
from kamflow.worklist.faults import crash_point
from kamflow.worklist.grouping import (
    ManyRenderer,
    Renderer,
    escalation_emails,
    new_task_emails,
    one_by_one,
)
from kamflow.worklist.models import (
    HELD_OUT,
    KEYED_STATUSES,
    OPEN_STATUSES,
    QUEUED,
    STATUSES,
    WITHDRAWN,
    OutboxEmail,
    Task,
    TaskEvent,
)
from kamflow.worklist.outbox import QueuedEmail
from kamflow.worklist.outcomes import NotTheOwnerError, OutcomeRecord, next_dates, not_recordable
from kamflow.worklist.plan import owner_address

__all__ = ["TASK_FIELDS", "Escalation", "HeldOutError", "RaiseResult", "TaskClosedError",
           "TaskLifecycle"]

log = logging.getLogger(__name__)

# new tasks committed per transaction by a big dispatch (whole owners per slice): small enough
# that link clicks and sla_watch get the store between slices, big enough to stay fast
DISPATCH_SLICE = 20_000
# what a task is worth (worklist/worth.py): kept on the task, shown in emails and tasks list
WORTH_FIELDS = ("effort_hours", "expected_retained_cny_yearly", "effect_source", "must_do")
TASK_FIELDS = ("account_id", "account_name", "action", "action_title", "owner_role", "owner_name",
               "owner_email", "priority", "rule_id", "ruleset_version", "reason", "created_at",
               "due_at", "cooldown_days", "open_key", "value_at_risk", *WORTH_FIELDS,
               "experiment_period", "factors")
# what a queued task planned again takes from this run's plan
_RERANKED = ("priority", "value_at_risk", "reason", "factors", "owner_email", "owner_name",
             "due_at", "rule_id", "ruleset_version", "action_title", *WORTH_FIELDS)
# what decides a queued task's place and words: a change rewrites it (the deadline counts only
# once it is released)
_RANKED = ("priority", "value_at_risk", "reason", "owner_email", "rule_id")
CapacityOf = Callable[[str, str], Capacity]


class TaskClosedError(ValueError):
    """The task is closed (done or cancelled): it can no longer be acknowledged or moved."""


class HeldOutError(TaskClosedError):
    """An outcome asked for on a held-out decision (the holdout's control group): refused."""


@dataclass(frozen=True)
class RaiseResult:
    created: int  # new tasks written, open or queued
    skipped_open: int
    skipped_cooldown: int
    emails: int
    created_by_action: dict[str, int] = field(default_factory=dict)
    released: int = 0  # tasks that became open: new ones released at once, and queued ones
    released_from_queue: int = 0  # of which were queued before this run
    queued: int = 0  # tasks waiting for capacity after this run (new and older)
    withdrawn: int = 0  # queued tasks whose rule no longer fires
    released_by_owner: dict[str, int] = field(default_factory=dict)
    queued_by_owner: dict[str, int] = field(default_factory=dict)
    # the randomised holdout: decisions held out now (new ``held_out`` rows), by action, and
    # those already held out earlier in the same experiment period (nothing written again)
    held_out: int = 0
    held_out_by_action: dict[str, int] = field(default_factory=dict)
    held_out_before: int = 0


@dataclass(frozen=True)
class Escalation:
    """One planned step up the ladder: the task as read, its new owner and deadline, the history
    detail, and the task as the new owner's email shows it (``view``)."""

    task: Task
    owner_email: str
    owner_name: str
    due_at: dt.datetime
    detail: str
    view: dict[str, Any]


_MOVE = re.compile(r"(\S+@\S+) -> (\S+@\S+)")  # "from -> to" in escalation/reassignment details


class TaskLifecycle(StoreBase):
    """Tasks from their creation to done: the only code that changes a task."""

    # -- raising tasks ---------------------------------------------------------------------
    def raise_tasks(self, planned: pd.DataFrame, run_id: str, render: Renderer,
                    now: dt.datetime, render_many: ManyRenderer | None = None,
                    slice_size: int = DISPATCH_SLICE,
                    capacity: CapacityOf | None = None, day_start: dt.datetime | None = None,
                    order: str = DEFAULT_ORDER, seed: int = 0) -> RaiseResult:
        """Raise the planned tasks not already open or cooling down, and release queued ones,
        within each owner's ``capacity`` (worklist/capacity.py; None: no limit).

        The candidates are the planned tasks not yet in the store and the queued tasks planned
        again (re-ranked with this run's priority, value at risk, reason, owner and deadline);
        ``allocate`` picks, per owner, those released now (``order``, ``seed``); tasks released
        since ``day_start`` (default: UTC midnight) count as today's. Released tasks become
        ``open`` with a history row and are listed in the owner's email of new tasks; the rest
        are (or stay) ``queued``, with no email. A queued task not planned again (its rule no
        longer fires) is ``withdrawn`` with a history row saying so.

        Written in slices of about ``slice_size`` candidates, each holding whole owners (one
        email per owner still lists all they receive), each committed with its history rows
        and emails: killed between slices, a rerun finds the committed slices' tasks open (or
        queued) and counts them against the owners' capacity, so no task is raised, released
        or emailed twice, and none is lost."""
        day_start = day_start or dt.datetime.combine(utc(now).date(), dt.time(0), dt.UTC)
        with self.session() as session:
            held = session.execute(select(Task.open_key, Task.status).where(
                Task.open_key.is_not(None))).tuples().all()
            open_keys = {key for key, status in held if status != QUEUED}
            del held
            cooling = _cooling(session, now)
            # the backlog as ranked: a queued task planned again is rewritten only if this
            # run changes its rank or reason, or releases it (an ordinary day rewrites few rows)
            backlog = session.execute(select(
                Task.id, Task.open_key, *(getattr(Task, k) for k in _RANKED)).where(
                Task.status == QUEUED)).tuples().all()
            open_now, released_today, hours_today = _owner_counts(session, day_start)
        if planned.empty:  # nothing fires: every queued task is withdrawn
            return RaiseResult(0, 0, 0, 0, {}, withdrawn=self._withdraw(
                [row[0] for row in backlog], run_id, now))
        queued_ids = {row[1]: row[0] for row in backlog}
        ranked_as = {row[0]: tuple(row[2:]) for row in backlog}
        planned = _with_optional_columns(planned)
        is_open = planned["open_key"].isin(open_keys)
        is_queued = planned["open_key"].isin(queued_ids.keys()) & ~is_open
        in_cooldown = planned["open_key"].map(cooling).notna() & ~is_open & ~is_queued
        if in_cooldown.any():
            # still cooling when closed_at + this decision's cooldown is in the future
            until = planned.loc[in_cooldown, "open_key"].map(cooling) + pd.to_timedelta(
                planned.loc[in_cooldown, "cooldown_days"].astype(float), unit="D")
            in_cooldown.loc[in_cooldown] = (until > pd.Timestamp(now)).to_numpy()
        fresh = planned.loc[~is_open & ~is_queued & ~in_cooldown]
        # a new decision of its action's control group is recorded, not raised: no task for
        # its owner, no capacity used, no email (rules/holdout.py)
        held_out = fresh["held_out"].to_numpy(dtype=bool)
        held, fresh = fresh.loc[held_out], fresh.loc[~held_out]
        held_new, held_before = self._hold_out(held, run_id, now)
        del held
        again = planned.loc[is_queued]
        planned_keys = set(planned["open_key"])
        gone = [row[0] for row in backlog if row[1] not in planned_keys]
        del open_keys, cooling, backlog, planned_keys
        withdrawn = self._withdraw(gone, run_id, now)
        again = again.assign(task_id=again["open_key"].map(queued_ids).astype("int64"))
        again["changed"] = _rank_changed(again, ranked_as)
        del ranked_as
        candidates = pd.concat([fresh.assign(task_id=-1, changed=True), again],
                               ignore_index=True)
        candidates["urgent"] = urgent_tasks(candidates)
        candidates["release"] = allocate(candidates, capacity or (lambda _e, _r: UNLIMITED),
                                         open_now, released_today, order, seed, hours_today)
        created = emails = released = 0
        waiting = candidates.loc[~candidates["release"]]
        backlog_by_owner = _per_owner(waiting)
        for part in _owner_slices(candidates, slice_size):
            with self.session() as session:
                ids, opened = self._write_slice(session, part, run_id, now)
                crash_point("dispatch.tasks_written")
                announced = part.loc[opened]
                emails += new_task_emails(session, announced, ids, run_id,
                                          render_many or one_by_one(render), now,
                                          backlog_by_owner)
                crash_point("dispatch.emails_written")
            created += int((part["task_id"] < 0).sum())
            released += len(ids)
            if len(candidates) > slice_size:
                log.info("task store: %d of %d candidate task(s) committed", created,
                         len(candidates))
        crash_point("dispatch.committed")
        going = candidates.loc[candidates["release"]]
        result = RaiseResult(
            created, int(is_open.sum()), int(in_cooldown.sum()), emails,
            {str(k): int(v) for k, v in fresh["action"].value_counts().items()},
            released=released, released_from_queue=int((going["task_id"] >= 0).sum()),
            queued=len(waiting), withdrawn=withdrawn,
            released_by_owner=_per_owner(going), queued_by_owner=backlog_by_owner,
            held_out=sum(held_new.values()), held_out_by_action=held_new,
            held_out_before=held_before)
        log.info("task store: %d new task(s), %d released (%d from the queue), %d queued, %d "
                 "withdrawn, %d already open, %d in cooldown, %d email(s) queued",
                 result.created, result.released, result.released_from_queue, result.queued,
                 result.withdrawn, result.skipped_open, result.skipped_cooldown, result.emails)
        return result

    def _hold_out(self, held: pd.DataFrame, run_id: str,
                  now: dt.datetime) -> tuple[dict[str, int], int]:
        """Record the held-out decisions not yet recorded in their experiment period, each a
        ``held_out`` row (with its owner, scores, value at risk and reason, no open key) and
        a history row, in one transaction. Returns the new rows by action, and how many were
        recorded before (a rerun, a later day of the period: the account keeps its group)."""
        if held.empty:
            crash_point("dispatch.held_out_written")
            return {}, 0
        keys = (held["account_id"].astype(str) + "|" + held["action"].astype(str) + "|"
                + held["experiment_period"].astype(str))
        with self.session() as session:
            known = set(session.scalars(select(Task.holdout_key).where(
                Task.status == HELD_OUT,
                Task.experiment_period.in_(sorted(set(held["experiment_period"]))))))
            fresh = ~keys.isin(known).to_numpy()
            new = held.loc[fresh]
            rows = []
            for record, key in zip(records(new, TASK_FIELDS), keys.to_numpy()[fresh],
                                   strict=True):
                row = _task_row(record, run_id, None)
                row.update(status=HELD_OUT, open_key=None, holdout_key=key)
                rows.append(row)
            ids = insert_returning_ids(session, Task.__table__, rows)
            if ids:
                insert_rows(session, TaskEvent.__table__, [
                    {"task_id": i, "at": now, "event": "held_out",
                     "detail": f"run {run_id}: held out (the control group of {action}, "
                               f"period {period}): no task, no email"}
                    for i, action, period in zip(ids, new["action"], new["experiment_period"],
                                                 strict=True)])
            crash_point("dispatch.held_out_written")
        by_action = {str(k): int(v) for k, v in new["action"].value_counts().items()}
        return by_action, len(held) - len(new)

    def _write_slice(self, session: Session, part: pd.DataFrame, run_id: str,
                     now: dt.datetime) -> tuple[list[int], np.ndarray]:
        """One slice's writes: its new tasks (open or queued) and their history, its queued
        tasks re-ranked or released (each released one only if still queued: released once).
        Returns the ids of the tasks released now and which of ``part``'s rows they are."""
        new = (part["task_id"] < 0).to_numpy()
        release = part["release"].to_numpy(dtype=bool)
        rows = [_task_row(record, run_id, now if go else None)
                for record, go in zip(records(part.loc[new], TASK_FIELDS), release[new],
                                      strict=True)]
        new_ids = insert_returning_ids(session, Task.__table__, rows)
        del rows  # written: let the row dicts go before the emails are rendered
        if new_ids:
            insert_rows(session, TaskEvent.__table__, [
                {"task_id": i, "at": now, "event": "created",
                 "detail": f"run {run_id}" if go else f"run {run_id}; queued: its owner's "
                                                      "capacity is used up"}
                for i, go in zip(new_ids, release[new], strict=True)])
        ids = np.full(len(part), -1, dtype="int64")
        ids[new] = new_ids
        old = part.loc[~new]
        # first: only tasks still queued take the day's values; those that stay queued and
        # rank as before keep their row (a released one takes today's deadline)
        _rerank(session, old.loc[old["release"] | old["changed"]])
        freed = _release(session, old.loc[old["release"]], now)
        if freed:
            insert_rows(session, TaskEvent.__table__, [
                {"task_id": i, "at": now, "event": "released",
                 "detail": f"run {run_id}: capacity free"} for i in sorted(freed)])
        ids[~new] = old["task_id"].to_numpy()
        opened = (new & release) | (~new & np.isin(ids, list(freed)))
        return [int(i) for i in ids[opened]], opened

    def _withdraw(self, task_ids: list[int], run_id: str, now: dt.datetime) -> int:
        """Queued tasks whose rule no longer fires: ``withdrawn`` (closed, no cooldown), each
        with a history row giving the reason; only those still queued. Returns how many."""
        done = 0
        for start in range(0, len(task_ids), 500):
            chunk = task_ids[start:start + 500]
            with self.session() as session:
                changed = session.scalars(update(Task).where(
                    Task.id.in_(chunk), Task.status == QUEUED).values(
                    status=WITHDRAWN, open_key=None, closed_at=now).returning(Task.id)).all()
                insert_rows(session, TaskEvent.__table__, [
                    {"task_id": i, "at": now, "event": WITHDRAWN,
                     "detail": f"rule no longer fires on run {run_id}"} for i in changed])
            done += len(changed)
        return done

    def set_status(self, task_id: int, status: str, now: dt.datetime, detail: str = "") -> Task:
        """Move a task to a new status, recording the change in its history."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; known: {', '.join(STATUSES)}")
        with self.session() as session:
            task = session.get(Task, task_id)
            if task is None:
                raise LookupError(f"no task with id {task_id}")
            closing = status not in KEYED_STATUSES
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

    def list_tasks(self, status: str | None = None, limit: int | None = None,
                   exclude: Sequence[str] = ()) -> list[Task]:
        """Tasks by id, of ``status`` if given, without those of the ``exclude`` statuses."""
        with self.session() as session:
            query = select(Task).order_by(Task.id)
            if status:
                query = query.where(Task.status == status)
            if exclude:
                query = query.where(Task.status.not_in(tuple(exclude)))
            if limit:
                query = query.limit(limit)
            return list(session.scalars(query))

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
        now = utc(now)
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
            changed = _changed(session.execute(
                update(Task).where(Task.id == task_id, Task.status == task.status).values(
                    status=status, closed_at=now if closing else None,
                    open_key=None if closing else Task.open_key)))
            if changed != 1:
                raise TaskClosedError(f"task {task_id} changed while it was being updated; "
                                      "try again")
            detail = f"by {actor}" + (f": {note}" if note else "")
            session.add(TaskEvent(task_id=task_id, at=now, event=status, detail=detail))
        return self.get_task(task_id), True

    # -- outcomes: what happened, and what comes next (worklist/outcomes.py) ------------------
    def record_outcome(self, record: OutcomeRecord, now: dt.datetime, actor: str,
                       calendar: BusinessCalendar | None = None) -> tuple[Task, bool]:
        """Record one outcome (``record_outcomes``); returns (task, recorded)."""
        [recorded] = self.record_outcomes([record], now, actor, calendar)
        return self.get_task(record.task_id), recorded

    def record_outcomes(self, records: Sequence[OutcomeRecord], now: dt.datetime, actor: str,
                        calendar: BusinessCalendar | None = None) -> list[bool]:
        """Record the outcomes in ONE transaction (all or none); per record, whether it was
        recorded (False: an event already carries its ``key``: a second submit or a
        re-import records nothing more).

        Each goes into its task's history as fields (outcome, minutes, note) and decides what
        happens next (``Outcome.then``): ``close`` and ``follow_up`` make the task done (a real
        contact: the action's cooldown starts), ``follow_up`` also raises the follow-up task
        (open, same account and action, due when the manager said; counted against its
        owner's capacity like any released task), ``retry`` keeps it open with a retry date,
        ``cancel`` cancels it without counting as done or starting a cooldown. A task that is
        not open raises ``TaskClosedError``, one another person owns ``NotTheOwnerError``."""
        now = utc(now)
        calendar = calendar or BusinessCalendar()
        done: list[bool] = []
        with self.session() as session:
            for record in records:
                done.append(self._record_outcome(session, record, now, actor, calendar))
        return done

    def _record_outcome(self, session: Session, record: OutcomeRecord, now: dt.datetime,
                        actor: str, calendar: BusinessCalendar) -> bool:
        if record.key and session.scalar(select(TaskEvent.id).where(
                TaskEvent.outcome_key == record.key)) is not None:
            return False
        task = session.get(Task, record.task_id)
        if task is None:
            raise LookupError(f"no task with id {record.task_id}")
        if record.owner is not None and owner_address(record.owner) != owner_address(
                task.owner_email):
            raise NotTheOwnerError(f"task {task.id} is with {task.owner_email}, not "
                                   f"{record.owner}: nothing was recorded")
        why = not_recordable(task.id, task.status)
        if why is not None:
            raise (HeldOutError if task.status == HELD_OUT else TaskClosedError)(why)
        outcome = record.outcome
        retry_at, follow_up_due = next_dates(record, now, calendar)
        status = {"close": "done", "follow_up": "done", "cancel": "cancelled"}.get(
            outcome.then, task.status)
        closing = status != task.status
        values: dict[str, Any] = {
            "outcome": outcome.code, "outcome_at": now,
            "minutes_spent": func.coalesce(Task.minutes_spent, 0) + record.minutes,
            "retry_at": retry_at}
        if closing:
            values.update(status=status, closed_at=now, open_key=None)
        changed = _changed(session.execute(update(Task).where(
            Task.id == task.id, Task.status == task.status).values(**values)))
        if changed != 1:
            raise TaskClosedError(f"task {task.id} changed while its outcome was being "
                                  "recorded; try again")
        detail = f"by {actor}"
        if retry_at is not None:
            detail += f"; retry from {retry_at.isoformat()}"
        if follow_up_due is not None:
            follow_up = Task(**{k: getattr(task, k) for k in (
                "account_id", "account_name", "action", "action_title", "owner_role",
                "owner_name", "owner_email", "priority", "rule_id", "ruleset_version",
                "cooldown_days", "value_at_risk", *WORTH_FIELDS, "experiment_period")},
                reason=f"Follow-up of task {task.id}" + (f": {record.note}" if record.note
                                                         else ""),
                status="open", created_at=now, due_at=follow_up_due, released_at=now,
                run_id=f"follow-up-{task.id}", open_key=f"{task.account_id}|{task.action}",
                escalation_level=0, follow_up_of=task.id,
                factors="[]")  # a follow-up names no factors: its note is never read as some
            session.add(follow_up)
            session.flush()
            session.add(TaskEvent(task_id=follow_up.id, at=now, event="created",
                                  detail=f"follow-up of task {task.id}, asked by {actor}"))
            detail += f"; follow-up task {follow_up.id} due {follow_up_due.isoformat()}"
        session.add(TaskEvent(task_id=task.id, at=now,
                              event=status if closing else "attempted", detail=detail,
                              outcome=outcome.code, minutes_spent=record.minutes,
                              note=record.note or None, outcome_key=record.key))
        return True

    def applied_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these outcome keys are already recorded (an import's rows done before)."""
        found: set[str] = set()
        with self.session() as session:
            for start in range(0, len(keys), 500):
                found.update(session.scalars(select(TaskEvent.outcome_key).where(
                    TaskEvent.outcome_key.in_(keys[start:start + 500]))))
        return found

    def owners_and_statuses(self, task_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """{task id: (owner address, status)} of those of ``task_ids`` that exist."""
        found: dict[int, tuple[str, str]] = {}
        ids = sorted(set(task_ids))
        with self.session() as session:
            for start in range(0, len(ids), 500):
                for task_id, owner, status in session.execute(select(
                        Task.id, Task.owner_email, Task.status).where(
                        Task.id.in_(ids[start:start + 500]))).tuples():
                    found[int(task_id)] = (owner, status)
        return found

    def reassign(self, task_id: int, owner_email: str, owner_name: str, now: dt.datetime,
                 actor: str, note: str = "", due_at: dt.datetime | None = None,
                 email: QueuedEmail | None = None) -> Task:
        """Give an open task to someone else (history row, optional new deadline, and the email
        telling the new owner, all in one transaction)."""
        now = utc(now)
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
                task.due_at = utc(due_at)
            detail = f"{previous} -> {owner_email} by {actor}" + (f": {note}" if note else "")
            if due_at is not None:
                detail += f"; due {utc(due_at).isoformat()}"
            session.add(TaskEvent(task_id=task_id, at=now, event="reassigned", detail=detail))
            if email is not None:
                session.add(email.row(now, f"reassign-{task_id}"))
        return self.get_task(task_id)

    # -- SLA: overdue tasks and escalation -------------------------------------------------------
    def overdue_tasks(self, now: dt.datetime) -> list[Task]:
        """Open tasks (open, acknowledged, escalated) whose deadline has passed, oldest first."""
        with self.session() as session:
            return list(session.scalars(select(Task).where(
                Task.status.in_(OPEN_STATUSES), Task.due_at < utc(now))
                .order_by(Task.due_at, Task.id)))

    def escalated_open_counts(self) -> dict[str, int]:
        """Per owner (lower-case address): their open tasks that reached them by escalation,
        which count against a supervisor's ``open_max``."""
        counts: dict[str, int] = {}
        with self.session() as session:
            for owner, count in session.execute(select(Task.owner_email, func.count()).where(
                    Task.status.in_(OPEN_STATUSES), Task.escalation_level > 0).group_by(
                    Task.owner_email)).tuples():
                counts[owner_address(owner)] = counts.get(owner_address(owner), 0) + int(count)
        return counts

    def escalate(self, task: Task, owner_email: str, owner_name: str, due_at: dt.datetime,
                 now: dt.datetime, detail: str, email: QueuedEmail | None) -> bool:
        """Move an overdue task one rung up the ladder: new owner and deadline, status
        ``escalated``, a history row and the email to the new owner, in one transaction.

        Only if the task is still as it was read (same level, still open and overdue); returns
        False when someone acted on it meanwhile, so a task escalates once per step.
        """
        now = utc(now)
        with self.session() as session:
            changed = _changed(session.execute(update(Task).where(
                Task.id == task.id, Task.escalation_level == task.escalation_level,
                Task.owner_email == task.owner_email, Task.status.in_(OPEN_STATUSES),
                Task.due_at < now).values(
                owner_email=owner_email, owner_name=owner_name, status="escalated",
                escalation_level=task.escalation_level + 1, due_at=utc(due_at))))
            if changed != 1:
                return False
            session.add(TaskEvent(task_id=task.id, at=now, event="escalated", detail=detail))
            if email is not None:
                session.add(email.row(now, f"sla-{task.id}-{task.escalation_level + 1}"))
            crash_point("escalate.written")
        crash_point("escalate.committed")
        return True


    def escalate_all(self, steps: Sequence[Escalation], now: dt.datetime, render: Renderer,
                     render_many: ManyRenderer | None = None, summary_size: int | None = None,
                     storm_alert: QueuedEmail | None = None,
                     alert_quiet: dt.timedelta = dt.timedelta(hours=24),
                     ) -> tuple[list[Escalation], bool]:
        """Take every planned step whose task is still as it was read (same owner and level,
        open, overdue), with its history row, and write ONE email per new owner listing the
        tasks escalated to them (split at ``MAX_TASKS_PER_EMAIL``; one summary of at most
        ``summary_size`` tasks each in a storm), all in one transaction: a crash leaves all of
        it or none, so each step is recorded and emailed exactly once. ``storm_alert`` (to
        ops) is written too unless one was written within ``alert_quiet``: one per storm.
        Returns the steps taken (the others were changed by someone meanwhile) and whether the
        alert was written."""
        now = utc(now)
        taken: list[Escalation] = []
        alerted = False
        with self.session() as session:
            if storm_alert is not None and not session.scalar(select(OutboxEmail.id).where(
                    OutboxEmail.kind == storm_alert.kind,
                    OutboxEmail.created_at > now - alert_quiet).limit(1)):
                session.add(storm_alert.row(now, f"sla-{now:%Y%m%dT%H%M%S}"))
                alerted = True
            for step in steps:
                task = step.task
                changed = _changed(session.execute(update(Task).where(
                    Task.id == task.id, Task.escalation_level == task.escalation_level,
                    Task.owner_email == task.owner_email, Task.status.in_(OPEN_STATUSES),
                    Task.due_at < now).values(
                    owner_email=step.owner_email, owner_name=step.owner_name,
                    status="escalated", escalation_level=task.escalation_level + 1,
                    due_at=utc(step.due_at))))
                if changed == 1:
                    taken.append(step)
            insert_rows(session, TaskEvent.__table__, [
                {"task_id": s.task.id, "at": now, "event": "escalated", "detail": s.detail}
                for s in taken])
            escalation_emails(session, [(s.owner_email, s.owner_name, s.view) for s in taken],
                              f"sla-{now:%Y%m%dT%H%M%S}", render_many or one_by_one(render), now,
                              summary_size)
        crash_point("escalate.committed")
        return taken, alerted

    def ladders(self, task_ids: Sequence[int]) -> dict[int, list[tuple[str, dt.datetime]]]:
        """Who held each task and since when, oldest first: its first owner from its creation,
        then every escalation and reassignment (read from the history)."""
        found: dict[int, list[tuple[str, dt.datetime]]] = {}
        ids = list(task_ids)
        with self.session() as session:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                owners = dict(session.execute(select(Task.id, Task.owner_email).where(
                    Task.id.in_(chunk))).tuples().all())
                events = session.execute(select(
                    TaskEvent.task_id, TaskEvent.at, TaskEvent.event, TaskEvent.detail).where(
                    TaskEvent.task_id.in_(chunk),
                    TaskEvent.event.in_(("created", "escalated", "reassigned")))
                    .order_by(TaskEvent.id)).tuples().all()
                for task_id, at, event, detail in events:
                    ladder = found.setdefault(task_id, [])
                    move = _MOVE.search(detail or "")
                    if event == "created":
                        ladder.append(("", aware(at)))  # its first owner: filled in below
                    elif move:
                        if ladder and not ladder[0][0]:
                            ladder[0] = (move.group(1).rstrip(";,"), ladder[0][1])
                        ladder.append((move.group(2).rstrip(";,"), aware(at)))
                for task_id, ladder in found.items():
                    if task_id in owners and ladder and not ladder[0][0]:
                        ladder[0] = (owners[task_id], ladder[0][1])
        return found


def _owner_slices(fresh: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """``fresh`` cut into pieces of about ``size`` rows, never splitting an owner's tasks (an
    owner with more than ``size`` new tasks gets a piece of their own)."""
    if len(fresh) <= size:
        return [fresh]
    pieces: list[list[str]] = [[]]
    count = 0
    for owner, tasks in fresh.groupby("owner_email", sort=True).size().items():
        if pieces[-1] and count + int(tasks) > size:
            pieces.append([])
            count = 0
        pieces[-1].append(str(owner))
        count += int(tasks)
    return [fresh.loc[fresh["owner_email"].isin(owners)] for owners in pieces]


def _changed(result: Result[Any]) -> int:
    """How many rows an UPDATE changed (its result is a CursorResult)."""
    return cast("CursorResult[Any]", result).rowcount


def _cooling(session: Session, now: dt.datetime) -> dict[str, pd.Timestamp]:
    """Latest close time per (account, action) key among recently closed tasks. A withdrawn
    task (queued, never released to its owner) was never worked: it starts no cooldown, nor a
    proactive rule's cadence (``every:``, which is this cooldown). Nor does a task cancelled
    with an outcome ("not relevant"): only a real contact starts the cooldown."""
    rows = session.execute(
        select(Task.account_id, Task.action, Task.closed_at).where(
            Task.closed_at.is_not(None), Task.status.not_in((*KEYED_STATUSES, WITHDRAWN)),
            ~((Task.status == "cancelled") & Task.outcome.is_not(None)),
            Task.closed_at > now - dt.timedelta(days=366)))
    latest: dict[str, pd.Timestamp] = {}
    for account_id, action, closed_at in rows:
        key = f"{account_id}|{action}"
        stamp = pd.Timestamp(aware(closed_at))
        if key not in latest or stamp > latest[key]:
            latest[key] = stamp
    return latest


def _task_row(record: dict[str, Any], run_id: str,
              released_at: dt.datetime | None) -> dict[str, Any]:
    row = record  # a fresh dict from records(): completed in place, not copied
    for key in ("created_at", "due_at"):
        row[key] = as_datetime(row[key])  # records() gives datetimes already
    row["priority"] = int(row["priority"])
    row["cooldown_days"] = float(row["cooldown_days"])
    row["value_at_risk"] = _money(row["value_at_risk"])
    _worth(row)
    row["status"] = "open" if released_at is not None else QUEUED
    row["released_at"] = released_at
    row["run_id"] = run_id
    period = row.get("experiment_period")
    row["experiment_period"] = period if isinstance(period, str) and period else None
    return row


def _worth(row: dict[str, Any], prefix: str = "") -> None:
    """A task row's worth fields as the database takes them (NaN and empty: none)."""
    hours = row[f"{prefix}effort_hours"]
    row[f"{prefix}effort_hours"] = None if hours is None or pd.isna(hours) else float(hours)
    key = f"{prefix}expected_retained_cny_yearly"
    row[key] = _money(row[key])
    source = row[f"{prefix}effect_source"]
    row[f"{prefix}effect_source"] = str(source) if isinstance(source, str) and source else None
    must = row[f"{prefix}must_do"]
    row[f"{prefix}must_do"] = None if must is None or pd.isna(must) else bool(must)


def _money(value: Any) -> float | None:
    """A value at risk as stored: a float, or None when the decision carried none."""
    return None if value is None or pd.isna(value) else float(value)


def _with_optional_columns(planned: pd.DataFrame) -> pd.DataFrame:
    """``planned`` with the columns the decisions may lack (``value_at_risk`` from the scoring
    of issue 12, ``email`` from rule sets without it, the holdout's): absent means none,
    digest, not held out."""
    extra: dict[str, Any] = {}
    if "value_at_risk" not in planned:
        extra["value_at_risk"] = np.nan
    if "email" not in planned:
        extra["email"] = "digest"
    for column in WORTH_FIELDS:  # decisions not appraised (no conf/effects.yaml)
        if column not in planned:
            extra[column] = np.nan if column in ("effort_hours",
                                                 "expected_retained_cny_yearly") else None
    if "held_out" not in planned:  # decided without the holdout (rules/holdout.py)
        extra["held_out"] = False
    if "experiment_period" not in planned:
        extra["experiment_period"] = ""
    if "factors" not in planned:  # decided without factor data: the reason's text stands
        extra["factors"] = None
    elif planned["factors"].isna().any():
        extra["factors"] = planned["factors"].astype(object).where(planned["factors"].notna(),
                                                                   None)
    return planned.assign(**extra) if extra else planned


def _owner_counts(session: Session, day_start: dt.datetime,
                  ) -> tuple[dict[str, int], dict[str, int], dict[str, float]]:
    """Per owner (lower-case address): open tasks now, tasks released since ``day_start``, and
    the hours of work (``effort_hours``) released since then."""
    open_now: dict[str, int] = {}
    for owner, count in session.execute(select(Task.owner_email, func.count()).where(
            Task.status.in_(OPEN_STATUSES)).group_by(Task.owner_email)).tuples():
        open_now[owner_address(owner)] = open_now.get(owner_address(owner), 0) + int(count)
    today: dict[str, int] = {}
    hours: dict[str, float] = {}
    for owner, count, effort in session.execute(select(
            Task.owner_email, func.count(), func.coalesce(func.sum(Task.effort_hours), 0.0)).where(
            Task.released_at >= utc(day_start)).group_by(Task.owner_email)).tuples():
        today[owner_address(owner)] = today.get(owner_address(owner), 0) + int(count)
        hours[owner_address(owner)] = hours.get(owner_address(owner), 0.0) + float(effort)
    return open_now, today, hours


def _release(session: Session, chosen: pd.DataFrame, now: dt.datetime) -> set[int]:
    """Queued tasks -> open, only those still queued (a conditional bulk update per 500): the
    ids released now. A task another run released meanwhile is not released (or emailed)
    again."""
    ids = [int(i) for i in chosen["task_id"]]
    freed: set[int] = set()
    for start in range(0, len(ids), 500):
        freed.update(session.scalars(update(Task).where(
            Task.id.in_(ids[start:start + 500]), Task.status == QUEUED).values(
            status="open", released_at=now).returning(Task.id)).all())
    return freed


def _rank_changed(again: pd.DataFrame, ranked_as: dict[int, tuple[Any, ...]]) -> np.ndarray:
    """Which queued tasks planned again would rank or read differently from their stored row:
    priority, value at risk (to the fen), reason, owner or rule."""
    if again.empty:
        return np.zeros(0, dtype=bool)
    stored = pd.DataFrame([ranked_as[int(i)] for i in again["task_id"]], columns=list(_RANKED),
                          index=again.index)
    risk_now = pd.to_numeric(again["value_at_risk"], errors="coerce").round(2)
    risk_then = pd.to_numeric(stored["value_at_risk"], errors="coerce").round(2)
    same_risk = (risk_now == risk_then) | (risk_now.isna() & risk_then.isna())
    same = ((again["priority"].astype("int64") == stored["priority"].astype("int64"))
            & same_risk
            & (again["reason"].astype(str) == stored["reason"].astype(str))
            & (again["owner_email"].map(owner_address) == stored["owner_email"].astype(str))
            & (again["rule_id"].astype(str) == stored["rule_id"].astype(str)))
    return ~same.to_numpy(dtype=bool)


def _rerank(session: Session, again: pd.DataFrame) -> None:
    """Queued tasks planned again take this run's priority, value at risk, reason, owner and
    deadline (one executemany; the deadline counts from this run, so a task released now has
    its full time). A task no longer queued (released by another run meanwhile) is left
    alone."""
    if again.empty:
        return
    rows = []
    for record in records(again, ("task_id", *_RERANKED)):
        task_id = int(record.pop("task_id"))
        row = {f"new_{k}": v for k, v in record.items()}
        row["new_priority"] = int(row["new_priority"])
        row["new_value_at_risk"] = _money(row["new_value_at_risk"])
        _worth(row, "new_")
        row["new_owner_email"] = owner_address(row["new_owner_email"])
        row["new_due_at"] = as_datetime(row["new_due_at"])
        row["target"] = task_id
        rows.append(row)
    table = cast("Table", Task.__table__)
    session.connection().execute(update(table).where(
        table.c.id == bindparam("target"), table.c.status == QUEUED).values(
        **{k: bindparam(f"new_{k}") for k in _RERANKED}), rows)


def _per_owner(frame: pd.DataFrame) -> dict[str, int]:
    """Rows per owner address, most first."""
    counts = frame["owner_email"].map(owner_address).value_counts()
    return {str(k): int(v) for k, v in counts.items()}
