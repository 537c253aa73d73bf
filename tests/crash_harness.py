"""A separate process that dispatches, sends, escalates and digests like the flows do, so tests
can kill it at a named step (KAMFLOW_TEST_CRASH_AT, see worklist/faults.py) and run it again.

    python tests/crash_harness.py --db URL --outbox DIR [--sendgrid URL] PHASE [PHASE ...]

PHASE: dispatch | send | digest | escalate. The decisions are fixed (DECISIONS below): five
decisions for three owners, so a correct end state has exactly five tasks, three new-task emails
and three digests, whatever crashed in between. Escalation sends one email per new owner: zhao
(four tasks) and the head (one). With ``--urgent`` the key-account department's actions are
``email: own`` and one more is raised (URGENT_DECISIONS): one urgent email lists both. With
``--storm`` the escalation counts as a storm: one summary per new owner and one alert to OPS.
``--capacity N`` gives account managers N new tasks a day (the rest queued) and ``--day D``
moves the clock D days on (the same decisions: a later day's run releases queued tasks);
``finish`` marks every open task done, freeing the managers' capacity. ``--holdout`` holds
out HOLDOUT's share of the care calls (rules/holdout.py, as the plan does): KA2's and KA4's.
``--lease`` is the drain's claim lease in seconds: a killed drain's rows go to the next drain
once it has expired; the default (0 s: expired at once) means a rerun takes
them back at once, as it did before drains held leases.

The soak test (tests/test_soak.py) runs several of these at once against one store:
``--round N`` raises the decisions for the accounts of rounds 1 to N (``KA1-r3``...) and shifts
every clock by N days (a new digest day, older tasks overdue); ``--smtp PORT`` sends through an
SMTP server on 127.0.0.1; ``--lock`` holds the store's ``retention_run`` lock across the
phases, as the flow does around dispatch and send; ``click`` acknowledges or finishes a few
open tasks, as the links do.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import logging
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from kamflow import notifications
from kamflow.core.links import LinkSigner
from kamflow.flows.delivery import (
    StormPolicy,
    dispatch,
    drain_outbox,
    escalate_overdue,
    queue_daily_digests,
)
from kamflow.rules.holdout import HoldoutPolicy, hold_out
from kamflow.worklist import OPEN_STATUSES, Owner, OwnerDirectory, TaskClosedError, TaskStore
from kamflow.worklist.calendar import BusinessCalendar
from kamflow.worklist.capacity import Capacity
from kamflow.worklist.locks import lock_owner, run_lock

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)  # Wednesday 10:00 in Shanghai
LATER = NOW + dt.timedelta(days=9)  # every task overdue
TITLES = {"care_call": ("Proactive care call", "主动关怀回访"),
          "escalate_to_key_account": ("Escalation to the key-account department", "升级至大客户部")}
OWNERS = OwnerDirectory(
    roles={"key_account_department": Owner("KA dept", "ka@staff.example.test", "zh-CN")},
    fallback=Owner("Fallback queue", "fallback@staff.example.test"),
    people={"wang@staff.example.test": Owner("王芳", "wang@staff.example.test", "zh-CN",
                                             supervisor="zhao@staff.example.test"),
            "zhao@staff.example.test": Owner("赵主管", "zhao@staff.example.test", "zh-CN")},
    department_head=Owner("KA head", "head@staff.example.test", "en"),
    default_supervisor="zhao@staff.example.test")
DECISIONS = [  # (account, action, owner role, manager email)
    ("KA1", "care_call", "account_manager", "wang@staff.example.test"),
    ("KA2", "care_call", "account_manager", "wang@staff.example.test"),
    ("KA2", "escalate_to_key_account", "key_account_department", "wang@staff.example.test"),
    ("KA3", "care_call", "account_manager", "li@staff.example.test"),
    ("KA4", "care_call", "account_manager", "li@staff.example.test"),
]
URGENT_DECISIONS = [*DECISIONS, ("KA4", "escalate_to_key_account", "key_account_department",
                                   "li@staff.example.test")]
HOLDOUT = HoldoutPolicy({"care_call": 0.4})
SECRET = b"crash-harness-link-secret-0123456789"
OPS = "ops@staff.example.test"


def decisions(urgent: bool = False, round_: int = 0) -> pd.DataFrame:
    """The fixed decisions; ``urgent``: URGENT_DECISIONS, the department's with ``email: own``;
    ``round_`` > 0: the same decisions for the accounts of that soak round."""
    if round_:
        return decisions_of(round_decisions(round_))
    if urgent:
        frame = decisions_of(URGENT_DECISIONS)
        return frame.assign(email=["own" if a == "escalate_to_key_account" else "digest"
                                   for a in frame["action"]])
    return decisions_of(DECISIONS)


def round_decisions(round_: int) -> list[tuple[str, str, str, str]]:
    """The decisions of soak rounds 1 to ``round_``: a round's retention run raises its own and
    any a killed earlier run left (the open and cooling ones are skipped, as in production)."""
    return [(f"{a}-r{n}", b, c, d) for n in range(1, round_ + 1) for a, b, c, d in DECISIONS]


def decisions_of(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "account_id": account, "account_name": f"客户 {account}", "account_manager": "经理",
        "manager_email": email, "value_class": "high", "churn_band": "critical",
        "churn_risk": 70.0, "rule_id": "r1", "action": action, "owner_role": role,
        "priority": 1 if role != "account_manager" else 3, "due_in_days": 2.0,
        "cooldown_days": 30.0, "why": "churn_band=critical", "churn_factors": "revenue_decline",
        "ruleset_version": "v-test",
    } for account, action, role, email in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--sendgrid", default=None, help="base URL of a SendGrid stand-in")
    parser.add_argument("--urgent", action="store_true", help="raise URGENT_DECISIONS")
    parser.add_argument("--storm", action="store_true",
                        help="escalate as a storm (any overdue share counts), alerting OPS")
    parser.add_argument("--lease", type=float, default=0.0,
                        help="the drain's claim lease in seconds")
    parser.add_argument("--slice", type=int, default=20_000, help="dispatch slice size")
    parser.add_argument("--round", type=int, default=0, help="the soak round (see the doc)")
    parser.add_argument("--smtp", type=int, default=None, help="an SMTP port on 127.0.0.1")
    parser.add_argument("--lock", action="store_true", help="hold the retention_run lock")
    parser.add_argument("--capacity", type=int, default=None,
                        help="account managers' new tasks a day")
    parser.add_argument("--day", type=int, default=0, help="days the clock moves on")
    parser.add_argument("--holdout", action="store_true", help="hold out HOLDOUT's share")
    parser.add_argument("--lock-wait", type=float, default=120.0)
    parser.add_argument("--lock-lease", type=float, default=600.0)
    parser.add_argument("phases", nargs="+",
                        choices=["dispatch", "send", "digest", "escalate", "click", "finish"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    shift = dt.timedelta(days=args.round + args.day)
    owners = OWNERS if args.capacity is None else dataclasses.replace(
        OWNERS, capacity={"account_manager": Capacity(args.capacity, None)})
    if args.smtp:
        backend: notifications.EmailBackend = notifications.SmtpBackend("127.0.0.1", args.smtp,
                                                                          timeout=20)
    elif args.sendgrid:
        backend = notifications.SendGridBackend("SG.harness", host=args.sendgrid, timeout=5,
                                                max_retries=0)
    else:
        backend = notifications.FileOutbox(Path(args.outbox))
    calendar = BusinessCalendar()
    links = LinkSigner(SECRET)
    with TaskStore(args.db) as store, (run_lock(
            store, "retention_run", lock_owner(f"harness-{args.round}"), wait=args.lock_wait,
            lease=dt.timedelta(seconds=args.lock_lease), poll=0.2)
            if args.lock else contextlib.nullcontext()):
        for phase in args.phases:
            if phase == "dispatch":
                decided = decisions(args.urgent, args.round)
                if args.holdout:
                    decided = hold_out(decided, (NOW + shift).date(), HOLDOUT)
                dispatch(decided, TITLES, owners, store,
                         f"harness-{args.day}", NOW + shift, calendar, links,
                         slice_size=args.slice)
            elif phase == "send":
                drain_outbox(store, backend, "kamflow@operator.example",
                             lease=dt.timedelta(seconds=args.lease))
            elif phase == "digest":
                queue_daily_digests(store, OWNERS, calendar, NOW + shift, TITLES, links)
            elif phase == "escalate":
                storm = StormPolicy(share=0.5, minimum=1) if args.storm else StormPolicy()
                escalate_overdue(store, OWNERS, calendar, 1.0, LATER + shift, TITLES, links,
                                 storm=storm, ops_email=OPS)
            elif phase == "click":
                click(store, random.Random(args.round), NOW + shift)
            elif phase == "finish":
                for task in store.list_tasks():
                    if task.status in OPEN_STATUSES:
                        store.transition(task.id, "done", NOW + shift, task.owner_email)
    return 0


def click(store: TaskStore, rng: random.Random, now: dt.datetime, count: int = 3) -> None:
    """Acknowledge or finish a few open tasks as their one-click links do (a task another
    process closed meanwhile is refused, as the web page would say)."""
    open_tasks = [t for t in store.list_tasks() if t.status in OPEN_STATUSES]
    for task in rng.sample(open_tasks, min(count, len(open_tasks))):
        with contextlib.suppress(TaskClosedError):
            store.transition(task.id, rng.choice(["ack", "done"]), now, task.owner_email)


if __name__ == "__main__":
    sys.exit(main())
