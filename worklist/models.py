"""The task store's tables (SQLAlchemy 2): tasks, their history, and the email outbox."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Open: with an owner, counted as their work, watched by sla_watch (overdue, escalated).
OPEN_STATUSES = ("open", "acknowledged", "escalated")
# Queued: decided but held back by its owner's capacity (worklist/capacity.py); released as
# capacity frees up. Not open (no deadline runs, sla_watch ignores it), but it holds the
# (account, action) key, so the action is neither raised twice nor open and queued at once.
QUEUED = "queued"
WITHDRAWN = "withdrawn"  # a queued task whose rule no longer fires; never worked, no cooldown
KEYED_STATUSES = (*OPEN_STATUSES, QUEUED)  # the statuses that hold ``open_key``
# Held out: a decision of the action's randomised control group (rules/holdout.py), stored
# like a task (owner, scores, value at risk, reason) but never anyone's work: no owner's
# capacity, no email, no deadline watched, no cooldown. One per account, action and experiment
# period (``holdout_key``).
HELD_OUT = "held_out"
STATUSES = (*OPEN_STATUSES, QUEUED, "done", "cancelled", WITHDRAWN, HELD_OUT)
NOT_WORK = (QUEUED, WITHDRAWN, HELD_OUT)  # rows that were never an owner's work


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    account_name: Mapped[str] = mapped_column(String(500))
    action: Mapped[str] = mapped_column(String(64))
    action_title: Mapped[str] = mapped_column(String(200))
    owner_role: Mapped[str] = mapped_column(String(64))
    owner_name: Mapped[str] = mapped_column(String(200))
    owner_email: Mapped[str] = mapped_column(String(320), index=True)
    priority: Mapped[int] = mapped_column(Integer)
    rule_id: Mapped[str] = mapped_column(String(128))
    ruleset_version: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    # the decision's top churn factors as data (kamflow.core.factors: JSON), from which emails
    # word them in their reader's language; NULL on a task stored without them, whose reason's
    # text migration 0015 could not read (emails then read the reason)
    factors: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cooldown_days: Mapped[float] = mapped_column(default=0.0)
    run_id: Mapped[str] = mapped_column(String(64))
    # "<account>|<action>" while the task is open, NULL once closed: a unique constraint on it
    # guarantees one open task per (account, action) on SQLite and PostgreSQL alike.
    open_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    # 0 while with the first owner; +1 for each step up the escalation ladder (sla_watch)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # CNY a month: the account's monthly revenue x churn probability when decided (NULL when
    # the decisions carried none); emails show it a year (x 12)
    value_at_risk: Mapped[float | None] = mapped_column(Float, nullable=True)
    # when the task became open (raised open, or released from the queue): an owner's new
    # tasks of a day are counted by it (capacity ``new_per_day``); NULL while queued
    released_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                            nullable=True)
    # what the task is worth (worklist/worth.py, conf/effects.yaml): the manager's hours it
    # takes, the revenue it is expected to keep (CNY a year, net of its cost), and whether that
    # effect is the operator's prior or measured by the holdout ("prior", "measured n=1234")
    effort_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    expected_retained_cny_yearly: Mapped[float | None] = mapped_column(Float, nullable=True)
    effect_source: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # must-do work (escalations, complaint follow-ups, SLA reviews, urgent actions): listed and
    # released first whatever it is expected to keep
    must_do: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # the holdout's experiment period (``2026Q4``) on every task of an action under experiment,
    # raised or held out; NULL for the others (rules/holdout.py)
    experiment_period: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # "<account>|<action>|<period>" on a held-out row: a unique index keeps one per period
    holdout_key: Mapped[str | None] = mapped_column(String(220), nullable=True)
    # The manager's outcome (conf/outcomes.yaml, worklist/outcomes.py): the code last recorded,
    # when, and the minutes spent over every attempt; NULL until one is recorded
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                           nullable=True)
    minutes_spent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # not reached: when to try again (the task stays open)
    retry_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # a follow-up task: the task whose outcome "follow-up needed" raised it
    follow_up_of: Mapped[int | None] = mapped_column(Integer, nullable=True)


class TaskEvent(Base):
    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    event: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    # an outcome recorded by this event (conf/outcomes.yaml code), the minutes it took and the
    # manager's note, as fields; ``outcome_key`` makes a resubmitted form or a re-imported
    # row record nothing more (unique; NULL for events that carry no outcome)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    minutes_spent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome_key: Mapped[str | None] = mapped_column(String(100), nullable=True)


class OutboxEmail(Base):
    """An email written in the same transaction as the tasks it announces (transactional outbox).

    ``sent_at`` stays NULL until a backend accepted it; every run drains what is unsent.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    recipient: Mapped[str] = mapped_column(String(320))
    recipient_name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(500))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    task_ids: Mapped[str] = mapped_column(Text)  # comma-separated, for the email's custom args
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    run_id: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    backend: Mapped[str | None] = mapped_column(String(32), nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(500), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # new_tasks | urgent_tasks | escalation | reassignment | daily_digest: its category, template
    kind: Mapped[str] = mapped_column(String(32), default="new_tasks", server_default="new_tasks")
    # set just before a backend is called, cleared when the outcome is recorded: a row still
    # in flight at the next drain was interrupted mid-send and may already have been delivered
    in_flight_since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                                nullable=True)
    # permanent refusals so far; at KAMFLOW_DEAD_LETTER_AFTER the email is a dead letter
    # (``dead_at``): no longer retried, counted in the run summary, ops alerted once
    permanent_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dead_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # the drain that claimed it (a random token) and until when: another drain skips a row
    # under a live lease, and takes back one whose lease expired (its drain died)
    claim_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                            nullable=True)
    # pictures the HTML shows by cid (the weekly report's charts): JSON [{cid, filename, png
    # (base64)}]; NULL for the task emails
    inline_images: Mapped[str | None] = mapped_column(Text, nullable=True)


class RunLock(Base):
    """A job that must not run twice at once on one store (``retention_run``): who holds it,
    and until when unless its holder renews it (a killed holder's lock lapses by itself)."""

    __tablename__ = "run_locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class AccountRecord(Base):
    """Every key account a snapshot has held, with its manager when last seen. An account that
    leaves the snapshot is lost (``lost_at``: its manager's churn KPI); one that comes back is
    not lost any more."""

    __tablename__ = "accounts"
    # On SQLite one B-tree keyed by account id (no rowid): a national roster is 1M rows.
    __table_args__ = {"sqlite_with_rowid": False}

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    manager_email: Mapped[str] = mapped_column(String(320))
    manager_name: Mapped[str] = mapped_column(String(200))
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    lost_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # As last seen (a lost account keeps its last values): the department's measures
    # (worklist/measures.py) break churn and revenue down by these.
    monthly_revenue: Mapped[float | None] = mapped_column(Float, nullable=True)
    region: Mapped[str | None] = mapped_column(String(100), nullable=True)
    industry: Mapped[str | None] = mapped_column(String(50), nullable=True)
    value_class: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # CNY a month (monthly_revenue x churn_probability) as last scored; NULL until scored so
    value_at_risk: Mapped[float | None] = mapped_column(Float, nullable=True)


class AccountRevenue(Base):
    """An account's monthly revenue from ``at`` on: a row when it is first seen and whenever a
    snapshot changes it, so a period's partial churn can compare it with its start."""

    __tablename__ = "account_revenue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    monthly_revenue: Mapped[float] = mapped_column(Float)


class RunFigures(Base):
    """Each retention run's headline figures, so each has a trend across runs (the Prefect
    artifact ``churn-trend``)."""

    __tablename__ = "run_figures"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    accounts: Mapped[int] = mapped_column(Integer)  # on the roster, not lost
    accounts_lost: Mapped[int] = mapped_column(Integer)  # marked lost by this run
    churn_rate_12m: Mapped[float] = mapped_column(Float)  # trailing 12 months, 0..1
    churn_ceiling_12m: Mapped[float] = mapped_column(Float)  # pro rata for the roster's age
    revenue_churn_rate_12m: Mapped[float] = mapped_column(Float)
    revenue_lost_12m: Mapped[float] = mapped_column(Float)  # CNY a month
    top_value_share: Mapped[float] = mapped_column(Float)  # high + secondary, share of accounts
    tasks_created: Mapped[int] = mapped_column(Integer)
    # retained accounts that lost most of their revenue, trailing 12 months, 0..1
    partial_churn_rate_12m: Mapped[float | None] = mapped_column(Float, nullable=True)
    value_at_risk: Mapped[float | None] = mapped_column(Float, nullable=True)  # CNY/month


Index("ix_outbox_unsent", OutboxEmail.sent_at)
Index("ix_account_revenue_account_at", AccountRevenue.account_id, AccountRevenue.at)
Index("ix_tasks_due_at", Task.due_at)  # sla_watch looks for open tasks past their deadline
Index("ix_tasks_owner_status", Task.owner_email, Task.status)  # capacity: open/queued per owner
Index("ix_tasks_released_at", Task.released_at)  # capacity: tasks released today per owner
Index("ix_tasks_holdout_key", Task.holdout_key, unique=True)  # one held-out row a period
# an outcome recorded once: a resubmitted form or a re-imported row finds its key taken
Index("ux_task_events_outcome_key", TaskEvent.outcome_key, unique=True)
