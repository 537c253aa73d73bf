"""Escalations arrive as one email per recipient and run, not one per task (issue 17): a
generated base a week overdue, escalated by the shipped owners directory and calendar."""

from __future__ import annotations

import collections
import datetime as dt
import math
from pathlib import Path

import pytest

from kamflow import config
from kamflow.core.links import LinkSigner
from kamflow.flows.delivery import dispatch, escalate_overdue
from kamflow.worklist import TaskStore
from kamflow.worklist.grouping import MAX_TASKS_PER_EMAIL

ACCOUNTS = 10_000
RUN_AT = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)  # the daily run, 10:00 in Shanghai
WEEK_LATER = RUN_AT + dt.timedelta(days=7)


@pytest.fixture(scope="module")
def decisions():
    """The shipped rules' decisions on a generated base of ACCOUNTS clean accounts."""
    from kamflow.generate import make_snapshot, typed_tables
    from kamflow.intake import build_customer_view
    from kamflow.rules import decide, load_ruleset
    from kamflow.scoring import score_accounts

    as_of = RUN_AT.date()
    tables = typed_tables(make_snapshot(ACCOUNTS, as_of, seed=17, bad_share=0.0))
    view = build_customer_view(tables, as_of).drop(columns=["_row"], errors="ignore")
    return decide(score_accounts(view, config.load_scoring()), load_ruleset())


def titles() -> dict[str, tuple[str, str]]:
    from kamflow.rules import load_ruleset

    return {k: (a.title_en, a.title_zh) for k, a in load_ruleset().actions.items()}


def escalation_rows(store: TaskStore) -> list:
    return [e for e in store.unsent_emails() if e.kind == "escalation"]


def test_a_week_overdue_base_is_a_storm_one_summary_per_recipient_one_ops_alert(
        decisions, tmp_path: Path) -> None:
    """The issue's scenario: 10,000 accounts, sla-watch a week later. Every overdue task still
    escalates, each new owner gets exactly one (summary) email naming all of theirs, ops get one
    alert; the next day's run, still in the storm, again one email per owner and no alert."""
    owners, calendar, links = config.load_owners(), config.load_calendar(), LinkSigner(b"e" * 32)
    due_days = config.load_escalation_due_days()
    with TaskStore(f"sqlite:///{tmp_path / 'k.db'}") as store:
        dispatch(decisions, titles(), owners, store, "daily", RUN_AT, calendar, links)
        seen = 0
        for at, alerted in ((WEEK_LATER, True), (WEEK_LATER + dt.timedelta(days=1, hours=1),
                                                 False)):
            result = escalate_overdue(store, owners, calendar, due_days, at, titles(), links,
                                      ops_email="ops@operator.example")
            assert result.storm and result.ops_alerted is alerted and len(result.escalated) > 100
            emails = escalation_rows(store)[seen:]
            seen += len(emails)
            per_recipient = collections.Counter(e.recipient for e in emails)
            assert per_recipient == dict.fromkeys({s["to"] for s in result.escalated}, 1)
            listed = sorted(int(i) for e in emails for i in e.task_ids.split(","))
            assert listed == sorted(step["task_id"] for step in result.escalated)
            assert all(e.body_text.count("/t/v1.") <= 40 for e in emails)  # a summary: top 20
        alerts = [e for e in store.unsent_emails() if e.kind == "storm_alert"]
    assert [a.recipient for a in alerts] == ["ops@operator.example"]
    assert "overdue at once" in alerts[0].subject and "calendar.yaml" in alerts[0].body_text


def test_a_week_overdue_base_sends_one_escalation_email_per_recipient(decisions,
                                                                      tmp_path: Path) -> None:
    """Without the storm policy every open task a week overdue escalates, yet each new owner
    gets one email listing all of theirs (more only past the per-email maximum of 200 tasks),
    each task in exactly one email; the daily run's urgent tasks are one email per owner too."""
    owners, calendar, links = config.load_owners(), config.load_calendar(), LinkSigner(b"e" * 32)
    with TaskStore(f"sqlite:///{tmp_path / 'k.db'}") as store:
        raised = dispatch(decisions, titles(), owners, store, "daily", RUN_AT, calendar, links)
        urgent = collections.Counter(e.recipient for e in store.unsent_emails()
                                     if e.kind == "urgent_tasks")
        assert urgent and set(urgent.values()) == {1}  # one urgent email per owner and run
        result = escalate_overdue(store, owners, calendar, config.load_escalation_due_days(),
                                  WEEK_LATER, titles(), links, storm=None)
        assert not result.storm
        assert len(result.escalated) + len(result.at_top) == result.overdue > 100
        assert raised.created >= result.overdue
        to = collections.Counter(step["to"] for step in result.escalated)
        emails = escalation_rows(store)
    per_recipient = collections.Counter(e.recipient for e in emails)
    assert per_recipient == {r: math.ceil(n / MAX_TASKS_PER_EMAIL) for r, n in to.items()}
    assert len(emails) < len(result.escalated) / 10  # the storm of one email per task is gone
    listed = [int(i) for e in emails for i in e.task_ids.split(",")]
    assert sorted(listed) == sorted(step["task_id"] for step in result.escalated)


def test_the_escalation_email_lists_by_priority_then_longest_overdue_with_the_ladder() -> None:
    """One new owner's escalation email: priority first, then the task overdue longest; each
    task with who held it since when (in the business zone) and its links."""
    from kamflow.notifications import render_escalations

    def task(task_id: int, priority: int, overdue_day: int) -> dict:
        since = dt.datetime(2026, 12, overdue_day, 10, 0, tzinfo=dt.UTC)
        return {"task_id": task_id, "account_id": f"KA{task_id}", "account_name": f"A{task_id}",
                "action": "care_call", "action_title": "Care call", "priority": priority,
                "due_at": WEEK_LATER, "reason": "r", "rule_id": "r1", "escalation_level": 1,
                "overdue_since": since, "ack_url": f"https://k/ack/{task_id}",
                "ladder": [("wang@op.example", since - dt.timedelta(days=2)),
                           ("Zhao <zhao@op.example>", WEEK_LATER)]}

    subject, text, html = render_escalations(
        "Zhao", [task(1, 3, 5), task(2, 1, 6), task(3, 3, 2), task(4, 1, 1)], "en",
        "Asia/Shanghai")
    order = [int(line.split("(KA")[1].split(")")[0]) for line in text.splitlines()
             if line[:1].isdigit() and "(KA" in line]
    assert order == [4, 2, 3, 1]
    assert "4 tasks" in subject and "A4 (KA4)" in subject
    assert "wang@op.example since 2026-11-29 18:00 -> Zhao <zhao@op.example> since " \
           "2026-12-10 10:00" in text
    assert "Overdue since: 2026-12-01 18:00" in text and "https://k/ack/4" in html
