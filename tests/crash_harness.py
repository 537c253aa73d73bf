"""A separate process that dispatches, sends, escalates and digests like the flows do, so tests
can kill it at a named step (KAMFLOW_TEST_CRASH_AT, see worklist/faults.py) and run it again.

    python tests/crash_harness.py --db URL --outbox DIR [--sendgrid URL] PHASE [PHASE ...]

PHASE: dispatch | send | digest | escalate. The decisions are fixed (DECISIONS below): five
decisions for three owners, so a correct end state has exactly five tasks, three new-task emails
and three digests, whatever crashed in between. Escalation sends one email per new owner: zhao
(four tasks) and the head (one). With ``--urgent`` the key-account department's actions are
``email: own`` and one more is raised (URGENT_DECISIONS): one urgent email lists both. With
``--storm`` the escalation counts as a storm: one summary per new owner and one alert to OPS.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from kamflow.worklist import Owner, OwnerDirectory, TaskStore
from kamflow.worklist.calendar import BusinessCalendar

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
SECRET = b"crash-harness-link-secret-0123456789"
OPS = "ops@staff.example.test"


def decisions(urgent: bool = False) -> pd.DataFrame:
    """The fixed decisions; ``urgent``: URGENT_DECISIONS, the department's with ``email: own``."""
    if urgent:
        frame = decisions_of(URGENT_DECISIONS)
        return frame.assign(email=["own" if a == "escalate_to_key_account" else "digest"
                                   for a in frame["action"]])
    return decisions_of(DECISIONS)


def decisions_of(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "account_id": account, "account_name": f"客户 {account}", "account_manager": "经理",
        "manager_email": email, "value_class": "high", "churn_band": "critical",
        "churn_risk": 70.0, "rule_id": "r1", "action": action, "owner_role": role,
        "priority": 1 if role != "account_manager" else 3, "due_in_days": 2.0,
        "cooldown_days": 30.0, "why": "churn_band=critical", "churn_factors": "revenue_decline",
        "ruleset_version": "v-test",
    } for account, action, role, email in rows])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--sendgrid", default=None, help="base URL of a SendGrid stand-in")
    parser.add_argument("--urgent", action="store_true", help="raise URGENT_DECISIONS")
    parser.add_argument("--storm", action="store_true",
                        help="escalate as a storm (any overdue share counts), alerting OPS")
    parser.add_argument("phases", nargs="+",
                        choices=["dispatch", "send", "digest", "escalate"])
    args = parser.parse_args()
    if args.sendgrid:
        backend = notifications.SendGridBackend("SG.harness", host=args.sendgrid, timeout=5,
                                                max_retries=0)
    else:
        backend = notifications.FileOutbox(Path(args.outbox))
    calendar = BusinessCalendar()
    links = LinkSigner(SECRET)
    with TaskStore(args.db) as store:
        for phase in args.phases:
            if phase == "dispatch":
                dispatch(decisions(args.urgent), TITLES, OWNERS, store, "harness", NOW,
                         calendar, links)
            elif phase == "send":
                drain_outbox(store, backend, "kamflow@operator.example")
            elif phase == "digest":
                queue_daily_digests(store, OWNERS, calendar, NOW, TITLES, links)
            elif phase == "escalate":
                storm = StormPolicy(share=0.5, minimum=1) if args.storm else StormPolicy()
                escalate_overdue(store, OWNERS, calendar, 1.0, LATER, TITLES, links,
                                 storm=storm, ops_email=OPS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
